//! The real `wschat` binary, started by a test on an ephemeral port and killed (by its PID) if the
//! test fails first: for what only a process shows (signals, exit codes, its log, its memory).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::peer::WAIT;

pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every line the server prints on stdout after its address line (its log).
    pub lines: mpsc::Receiver<String>,
}

impl Binary {
    /// Starts `wschat --addr 127.0.0.1:0 --echo ARGS` with `RUST_LOG=warn`.
    pub fn start(args: &[&str]) -> Binary {
        Self::start_logging(args, Some("warn"))
    }

    /// Starts the binary with `RUST_LOG` set to `log` (`None`: unset, the binary's default), and
    /// reads the address it bound from its first line (`wschat listening on http://ADDR/`).
    pub fn start_logging(args: &[&str], log: Option<&str>) -> Binary {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wschat"));
        command
            .args(["--addr", "127.0.0.1:0", "--echo"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match log {
            Some(log) => command.env("RUST_LOG", log),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command.spawn().expect("start the wschat binary");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        // Keeps draining stdout, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = lines
                .recv_timeout(WAIT)
                .expect("the binary prints its address");
            // Log lines may come first (the `listening` line is logged before it is printed).
            if let Some(rest) = line.strip_prefix("wschat listening on http://") {
                break rest
                    .strip_suffix('/')
                    .expect("address line")
                    .parse()
                    .expect("a socket address");
            }
        };
        Binary { child, addr, lines }
    }

    /// The server process's resident memory, in bytes (from `/proc`, as the swarm reads it).
    pub fn rss_bytes(&self) -> u64 {
        super::vm_rss(&self.child.id().to_string())
    }

    /// Sends `signal` (`-TERM`, `-INT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..(WAIT.as_millis() / 20) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not exit within {WAIT:?}");
    }

    /// The log lines printed so far.
    pub fn drain_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
