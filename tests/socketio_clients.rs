//! The official Socket.IO clients against wschat: `socket.io-client` (npm, on Node) and
//! `python-socketio`'s client (PyPI), each driven by a small script in `tests/socketio/` that
//! reads commands as JSON lines and prints what it sees, beside native `/ws` clients.
//!
//! The scripts need `npm ci` in `tests/socketio/` and `pip install python-socketio[client]`
//! (`.ci/run` does both). Without them a test prints `SKIPPED: ...` and passes, unless
//! `WSCHAT_REQUIRE_SOCKETIO=1` (set by CI), which turns the absence into a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{next_of_type, say, TestServer, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use wschat::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    /// socket.io-client on Node.
    Node,
    /// python-socketio's client.
    Python,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/socketio")
}

/// Whether `lang`'s client is installed; if not, says so loudly, or fails in CI.
fn available(lang: Lang) -> bool {
    let (found, install) = match lang {
        Lang::Node => (
            dir().join("node_modules/socket.io-client").is_dir()
                && std::process::Command::new("node")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success()),
            "cd tests/socketio && npm ci",
        ),
        Lang::Python => (
            std::process::Command::new("python3")
                .args(["-c", "import socketio, websocket"])
                .output()
                .is_ok_and(|o| o.status.success()),
            "pip install 'python-socketio[client]'",
        ),
    };
    if found {
        return true;
    }
    if std::env::var("WSCHAT_REQUIRE_SOCKETIO").is_ok_and(|v| v == "1") {
        panic!("WSCHAT_REQUIRE_SOCKETIO=1 but the {lang:?} Socket.IO client is not installed ({install})");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: the {lang:?} Socket.IO client is not installed ({install})"
    );
    false
}

/// One official client in a child process (killed when dropped).
struct Agent {
    lang: Lang,
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Agent {
    /// Starts `lang`'s client against `server` on namespace `nsp` with `options`
    /// (`{"auth":{...},"query":{...}}`).
    fn start(lang: Lang, server: &TestServer, nsp: &str, options: Value) -> Agent {
        let (program, script) = match lang {
            Lang::Node => ("node", "agent.js"),
            Lang::Python => ("python3", "agent.py"),
        };
        let mut child = Command::new(program)
            .arg(script)
            .arg(server.base())
            .arg(nsp)
            .arg(options.to_string())
            .current_dir(dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the client script");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Agent {
            lang,
            _child: child,
            stdin,
            lines,
        }
    }

    async fn command(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("command");
        self.stdin.flush().await.unwrap();
    }

    async fn emit(&mut self, name: &str, args: Value, ack: bool) {
        self.command(json!({"emit": name, "args": args, "ack": ack}))
            .await;
    }

    /// The next line whose `event` is `name`, skipping others; fails on a disconnect or error
    /// not asked for, or after [`WAIT`].
    async fn next(&mut self, name: &str) -> Value {
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("{:?}: no {name} in time", self.lang))
                .expect("read")
                .unwrap_or_else(|| panic!("{:?}: the client exited before {name}", self.lang));
            let seen: Value = serde_json::from_str(&line).expect("a JSON line");
            if seen["event"] == name {
                return seen;
            }
            for unexpected in ["disconnect", "connect_error"] {
                assert_ne!(seen["event"], unexpected, "{:?}: {seen}", self.lang);
            }
        }
    }

    /// The next `message` event's object sent by `from` (the sender gets its own, too).
    async fn message_from(&mut self, from: &str) -> Value {
        loop {
            let message = self.next("message").await["args"][0].clone();
            if message["from"] == from {
                return message;
            }
        }
    }

    /// Connects (the `connect` line) and returns the welcome's object.
    async fn connected(&mut self) -> Value {
        self.next("connect").await;
        self.next("welcome").await["args"][0].clone()
    }
}

/// Runs `body` once per installed client.
async fn each_client<F, Fut>(body: F)
where
    F: Fn(Lang) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for lang in [Lang::Node, Lang::Python] {
        if available(lang) {
            body(lang).await;
        }
    }
}

#[tokio::test]
async fn connect_emit_receive_and_ack_beside_a_native_client() {
    each_client(|lang| async move {
        let server = TestServer::start().await;
        let (mut native, _) = server.join("room=mixed&name=native").await;
        let mut agent = Agent::start(
            lang,
            &server,
            "/",
            json!({"query": {"room": "mixed", "name": "official"}}),
        );
        let welcome = agent.connected().await;
        assert_eq!(
            (welcome["room"].clone(), welcome["you"].clone()),
            (json!("mixed"), json!("official"))
        );
        assert_eq!(next_of_type(&mut native, "join").await["name"], "official");

        agent
            .emit("message", json!(["hello from the client"]), true)
            .await;
        let ack = agent.next("ack").await;
        assert_eq!(ack["args"][0]["id"], 1, "{lang:?}");
        let native_saw = next_of_type(&mut native, "message").await;
        let agent_saw = agent.next("message").await["args"][0].clone();
        assert_eq!(native_saw, agent_saw, "{lang:?}: one object on both wires");
        assert_eq!(agent_saw["text"], "hello from the client");

        say(&mut native, "hello from native").await;
        let seen = agent.next("message").await["args"][0].clone();
        assert_eq!(
            (seen["id"].clone(), seen["from"].clone()),
            (json!(2), json!("native"))
        );

        agent
            .emit("message", json!([{"text": "object form"}]), false)
            .await;
        assert_eq!(agent.next("message").await["args"][0]["id"], 3);

        agent.command(json!({"disconnect": true})).await;
        assert_eq!(next_of_type(&mut native, "leave").await["name"], "official");
    })
    .await;
}

#[tokio::test]
async fn the_chat_namespace_with_room_and_name_in_auth() {
    each_client(|lang| async move {
        let server = TestServer::start().await;
        let (mut native, _) = server.join("room=flask&name=native").await;
        let mut agent = Agent::start(
            lang,
            &server,
            "/chat",
            json!({"auth": {"room": "flask", "name": "ported", "token": "not checked yet"}}),
        );
        let welcome = agent.connected().await;
        assert_eq!(welcome["you"], "ported");
        agent.emit("message", json!(["hi"]), true).await;
        assert_eq!(agent.next("ack").await["args"][0]["id"], 1);
        assert_eq!(next_of_type(&mut native, "message").await["from"], "ported");
    })
    .await;
}

#[tokio::test]
async fn an_invalid_namespace_or_room_is_a_connect_error() {
    each_client(|lang| async move {
        let server = TestServer::start().await;
        let mut agent = Agent::start(lang, &server, "/admin", json!({}));
        let error = agent.next("connect_error").await;
        assert_eq!(error["message"], "Invalid namespace", "{lang:?}");
        // A room `/ws` would refuse is refused here too, with the same reason.
        let mut agent = Agent::start(lang, &server, "/", json!({"auth": {"room": "no spaces"}}));
        let error = agent.next("connect_error").await;
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("room must be")),
            "{lang:?}: {error}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_javascript_and_python_clients_chat_with_each_other() {
    if !(available(Lang::Node) && available(Lang::Python)) {
        return;
    }
    let server = TestServer::start().await;
    let mut js = Agent::start(
        Lang::Node,
        &server,
        "/",
        json!({"query": {"room": "both", "name": "js"}}),
    );
    js.connected().await;
    let mut py = Agent::start(
        Lang::Python,
        &server,
        "/chat",
        json!({"auth": {"room": "both", "name": "py"}}),
    );
    py.connected().await;
    assert_eq!(js.next("join").await["args"][0]["name"], "py");
    js.emit("message", json!(["from js"]), false).await;
    assert_eq!(py.message_from("js").await["text"], "from js");
    py.emit("message", json!(["from py"]), false).await;
    assert_eq!(js.message_from("py").await["text"], "from py");
    py.emit("typing", json!([]), false).await;
    assert_eq!(js.next("typing").await["args"][0]["name"], "py");
}

#[tokio::test]
async fn the_heartbeat_keeps_an_idle_client_past_ping_interval_and_timeout() {
    each_client(|lang| async move {
        // A short interval, so the test is quick; a long timeout, so a client process slowed by
        // a busy machine still answers each ping in time (the property here is that the server
        // pings at all: without its pings the client gives up after interval + timeout).
        let interval = Duration::from_millis(300);
        let timeout = Duration::from_secs(2);
        let config = Config {
            socketio_ping_interval: interval,
            socketio_ping_timeout: timeout,
            ..Config::for_tests()
        };
        let server = TestServer::with_config(config).await;
        let mut agent = Agent::start(lang, &server, "/", json!({}));
        agent.connected().await;
        // Idle for twice what a client waits for a ping before it gives up: without the
        // server's pings, the client would disconnect (and `next` fails on a `disconnect`).
        tokio::time::sleep(2 * (interval + timeout)).await;
        agent.emit("message", json!(["still here"]), true).await;
        assert_eq!(agent.next("ack").await["args"][0]["id"], 1, "{lang:?}");
    })
    .await;
}

#[tokio::test]
async fn under_redis_an_official_client_chats_with_a_native_client_on_another_server() {
    let Some(redis) = common::redis::RedisServer::start("socketio_clients").await else {
        return;
    };
    let url = redis.url();
    each_client(|lang| {
        let url = url.clone();
        async move {
            let config = Config {
                redis: Some(url),
                ..Config::for_tests()
            };
            let a = TestServer::with_config(config.clone()).await;
            let b = TestServer::with_config(config).await;
            let room = format!("across-{lang:?}");
            let (mut native, _) = b.join(&format!("room={room}&name=native")).await;
            let mut agent = Agent::start(
                lang,
                &a,
                "/chat",
                json!({"auth": {"room": room, "name": "official"}}),
            );
            let welcome = agent.connected().await;
            assert_eq!(welcome["users"], json!(["native", "official"]), "{lang:?}");
            assert_eq!(next_of_type(&mut native, "join").await["name"], "official");

            // The ack waits for the id Redis assigns: the one the other server's client sees.
            agent.emit("message", json!(["hi across"]), true).await;
            let ack = agent.next("ack").await;
            assert_eq!(ack["args"][0]["id"], 1, "{lang:?}: {ack}");
            let seen = next_of_type(&mut native, "message").await;
            assert_eq!(
                (seen["id"].clone(), seen["from"].clone()),
                (json!(1), json!("official"))
            );

            say(&mut native, "and back").await;
            let back = agent.message_from("native").await;
            assert_eq!(back["id"], 2, "{lang:?}: one id sequence");

            agent.command(json!({"disconnect": true})).await;
            assert_eq!(next_of_type(&mut native, "leave").await["name"], "official");
        }
    })
    .await;
}
