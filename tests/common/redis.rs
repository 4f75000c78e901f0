//! A `redis-server` of the test's own, on a free loopback port, persistence off, stopped when
//! dropped. Absent `redis-server`, [`RedisServer::start`] returns `None` after printing
//! `SKIPPED` (the test passes), unless `WSCHAT_REQUIRE_REDIS=1` (CI), where it panics.
//!
//! For the fault tests: [`RedisServer::restart`] (on the same port, with or without its data)
//! and [`Cuttable`], a relay that cuts one wschat process off from Redis while the others go on.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::WAIT;

pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// Its own directory, where `SAVE` writes the data a restart reads back.
    dir: PathBuf,
}

impl RedisServer {
    pub async fn start(test: &str) -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("WSCHAT_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
                panic!("WSCHAT_REQUIRE_REDIS=1 but redis-server is not installed (apt-get install redis-server)");
            }
            eprintln!("SKIPPED: redis-server not installed ({test})");
            return None;
        }
        // A free port: bind port 0, read it, let it go. Another process could take it in the
        // instant between; then redis-server fails to start and the wait below says so.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("wschat-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = spawn(port, &dir);
        let server = RedisServer { child, port, dir };
        wait_until_listening(port).await;
        Some(server)
    }

    /// Stops this Redis at once (`SIGKILL`: no goodbye to its clients, as in a crash) and starts
    /// it again on the same port. `keep_data`: with what it held (written by `SAVE` first, read
    /// back at start), else empty, as a Redis without persistence comes back.
    pub async fn restart(&mut self, keep_data: bool) {
        if keep_data {
            self.command(&["SAVE"]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !keep_data {
            let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
        }
        self.child = spawn(self.port, &self.dir);
        wait_until_listening(self.port).await;
    }

    /// Runs one command with `redis-cli` against this server, and panics if it fails.
    pub fn command(&self, args: &[&str]) {
        let said = self.query(args);
        assert!(!said.starts_with("ERR"), "redis-cli {args:?}: {said}");
    }

    /// Runs one command with `redis-cli` and returns what it printed, trimmed.
    pub fn query(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server` on `port`, with persistence off (a `SAVE` still writes `dir/dump.rdb`, and a
/// start reads it back if it is there).
fn spawn(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn redis-server")
}

async fn wait_until_listening(port: u16) {
    let deadline = std::time::Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback relay in front of a Redis that the test can break: [`Cuttable::cut`] closes every
/// relayed connection and refuses new ones (accepted and closed at once); [`Cuttable::freeze`]
/// keeps every connection open but forwards nothing more, on them or on new ones (a network
/// partition that no kernel notices); both last until [`Cuttable::mend`], which drops what was
/// held. What a network fault does to one wschat process, while Redis keeps its data and the
/// other processes keep posting.
pub struct Cuttable {
    pub port: u16,
    link: watch::Sender<Link>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Open,
    Frozen,
    Cut,
}

impl Cuttable {
    pub async fn to(redis: &RedisServer) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let (link, watching) = watch::channel(Link::Open);
        let target = redis.port;
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let now = *watching.borrow();
                let mut watching = watching.clone();
                match now {
                    Link::Cut => continue,
                    Link::Frozen => {
                        tokio::spawn(async move {
                            let _ = watching.wait_for(|link| *link != Link::Frozen).await;
                            drop(client);
                        });
                    }
                    Link::Open => {
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await
                            else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                                _ = watching.wait_for(|link| *link != Link::Open) => {}
                            }
                            // Frozen: both ends held, nothing forwarded, until cut or mended.
                            let _ = watching.wait_for(|link| *link != Link::Frozen).await;
                        });
                    }
                }
            }
        });
        Cuttable { port, link, task }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn cut(&self) {
        self.link.send_replace(Link::Cut);
    }

    pub fn freeze(&self) {
        self.link.send_replace(Link::Frozen);
    }

    pub fn mend(&self) {
        self.link.send_replace(Link::Open);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.task.abort();
    }
}
