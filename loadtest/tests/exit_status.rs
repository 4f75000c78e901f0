//! The built binary, as scripts and CI use it: exit 0 on a clean run, 1 on loss, 2 when the run
//! cannot start; `--json` and `--plot` write their files.

mod common;

use std::process::Command;

use common::{start_relay, Faults};

/// Runs the binary with `flags` on a blocking thread; returns (exit code, stdout, stderr).
async fn loadtest(flags: String) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(flags.split_whitespace())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

const SHORT: &str = "--protocol raw --clients 8 --senders 2 --rate 50 --duration 400ms --settle 100ms --drain 300ms";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_exits_0_and_writes_json_and_svg() {
    let addr = start_relay(Faults::default()).await;
    let dir = std::env::temp_dir().join(format!("loadtest-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("r.json"), dir.join("r.svg"));
    let (code, stdout, stderr) = loadtest(format!(
        "--url ws://{addr}/ {SHORT} --json {} --plot {}",
        json.display(),
        svg.display()
    ))
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("result      PASS"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["lost"], 0);
    assert_eq!(v["delivered"], v["expected"]);
    assert_eq!(v["passed"], true);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("percentile"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_exits_1() {
    let addr = start_relay(Faults {
        drop_every: 3,
        ..Faults::default()
    })
    .await;
    let (code, stdout, _) = loadtest(format!("--url ws://{addr}/ {SHORT}")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("result      FAIL: lost"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_exits_1_with_advice_and_bad_flags_exit_2() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, stdout, _) = loadtest(format!("--url ws://127.0.0.1:{port}/ {SHORT}")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("refused"), "{stdout}");
    let (code, _, stderr) = loadtest("--clients 2 --senders 3".into()).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("--senders"), "{stderr}");
}
