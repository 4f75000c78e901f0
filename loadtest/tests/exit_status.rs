//! The built binary, as scripts and CI use it: exit 0 on a clean run, 1 on loss, 2 when the run
//! cannot start; `--json` and `--plot` write their files; Ctrl-C ends the run early with a report.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_senders_drains_and_reports_what_ran() {
    let addr = start_relay(Faults::default()).await;
    let flags = format!(
        "--url ws://{addr}/ --protocol raw --clients 8 --senders 2 --rate 50 --duration 60s \
         --settle 0s --drain 5s"
    );
    let (code, stdout) = tokio::task::spawn_blocking(move || {
        let child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(flags.split_whitespace())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Well into the steady phase (8 clients connect in milliseconds), long before its end.
        std::thread::sleep(std::time::Duration::from_secs(2));
        // SAFETY: a plain kill(2) of the child we started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
    .await
    .unwrap();
    // The senders stopped (far fewer than the 3,000 scheduled were sent), what was sent was
    // drained and counted, and the run passes with a warning that it was cut short.
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("warning     interrupted"), "{stdout}");
    assert!(stdout.contains("of 3,000 scheduled"), "{stdout}");
    assert!(!stdout.contains("sent        3,000"), "{stdout}");
    assert!(stdout.contains("lost 0 "), "{stdout}");
    // No send after Ctrl-C: what was sent fits the steady phase as it ran (its rate is counted
    // over that phase; senders that went on through the drain would show several times 50/s).
    let rate: f64 = stdout
        .split_once("scheduled (")
        .and_then(|(_, rest)| rest.split_once("/s)"))
        .map(|(rate, _)| rate.parse().unwrap())
        .expect("a sent line");
    assert!(rate < 75.0, "{stdout}");
}
