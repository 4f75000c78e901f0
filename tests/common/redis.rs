//! A `redis-server` of the test's own, on a free loopback port, persistence off, stopped when
//! dropped. Absent `redis-server`, [`RedisServer::start`] returns `None` after printing
//! `SKIPPED` (the test passes), unless `WSCHAT_REQUIRE_REDIS=1` (CI), where it panics.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::WAIT;

pub struct RedisServer {
    child: Child,
    pub port: u16,
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
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = RedisServer { child, port };
        let deadline = std::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(server)
    }

    /// Runs one command with `redis-cli` against this server, and panics if it fails.
    pub fn command(&self, args: &[&str]) {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !said.starts_with("ERR"),
            "redis-cli {args:?}: {said}"
        );
    }

    /// Runs one command with `redis-cli` and returns what it printed, trimmed.
    pub fn query(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
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
    }
}
