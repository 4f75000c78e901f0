//! The swarm against the real wschat server, started in this process on an ephemeral port: the
//! counts must be exact, and the JSON report must carry every stable key.

mod common;

use common::{args, start_wschat as start, swarm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_clients_in_several_rooms_get_every_message_exactly_once() {
    let (addr, _stop) = start(wschat::Config::for_tests()).await;
    let url = format!("ws://{addr}/ws");
    let json = std::env::temp_dir().join(format!("loadtest-wschat-{}.json", std::process::id()));
    let pid = std::process::id().to_string();
    let out = swarm(args(&format!(
        "--url {url} --clients 300 --rooms 5 --senders 10 --rate 200 --duration 2s --settle 300ms --drain 3s --close-timeout 10s --server-pid {pid} --json {} --quiet",
        json.display()
    )))
    .await;
    let r = &out.report;
    assert_eq!(r.clients_connected, 300, "{}", r.human());
    assert_eq!(r.connect_errors, 0);
    assert_eq!(r.sent, 400, "{}", r.human());
    assert_eq!(r.refused, 0, "{}", r.human());
    // Each room holds 60 clients, each message is owed to all 60 (its sender included).
    assert_eq!(r.expected, 400 * 60);
    assert_eq!(r.delivered, r.expected, "{}", r.human());
    assert_eq!(r.lost, 0);
    assert_eq!(
        (r.duplicates, r.out_of_order, r.unexpected, r.foreign),
        (0, 0, 0, 0)
    );
    assert_eq!(r.latency_ms.samples, r.delivered);
    assert_eq!(r.close_codes.get("1000"), Some(&300), "{}", r.human());
    assert!(r.passed, "{}", r.human());

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    for key in [
        "clients_requested",
        "clients_connected",
        "connect_errors",
        "sent",
        "expected",
        "delivered",
        "lost",
        "duplicates",
        "out_of_order",
        "deliveries_per_sec",
    ] {
        assert!(v[key].is_number(), "JSON key {key}: {v}");
    }
    assert_eq!(v["delivered"], 400 * 60);
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ms"][key].is_number(), "latency_ms.{key}");
    }
    for key in [
        "rss_idle_bytes",
        "rss_connected_bytes",
        "rss_peak_bytes",
        "bytes_per_connection",
        "cpu_seconds",
    ] {
        assert!(v["server"][key].is_number(), "server.{key}");
    }
}

/// `--protocol socketio`: the same exact counts through `/socket.io/`, with the server pinging
/// every 100 ms and dropping a client that has not answered in 1 s, well inside the run: a swarm
/// that did not answer pings would lose its clients, and so messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_clients_get_every_message_exactly_once() {
    let config = wschat::Config {
        socketio_ping_interval: std::time::Duration::from_millis(100),
        socketio_ping_timeout: std::time::Duration::from_secs(1),
        ..wschat::Config::for_tests()
    };
    let (addr, _stop) = start(config).await;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let out = swarm(args(&format!(
        "--url {url} --protocol socketio --clients 60 --rooms 3 --senders 6 --rate 100 --duration 1500ms --settle 300ms --drain 3s --close-timeout 10s --quiet"
    )))
    .await;
    let r = &out.report;
    assert_eq!(r.clients_connected, 60, "{}", r.human());
    assert_eq!(r.sent, 150, "{}", r.human());
    assert_eq!(r.expected, 150 * 20);
    assert_eq!(r.delivered, r.expected, "{}", r.human());
    assert_eq!(
        (r.lost, r.duplicates, r.out_of_order, r.unexpected),
        (0, 0, 0, 0)
    );
    assert_eq!(r.close_codes.get("1000"), Some(&60), "{}", r.human());
    assert!(r.passed, "{}", r.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_counted_apart_and_cost_the_others_nothing() {
    let mut config = wschat::Config::for_tests();
    // A second of traffic in the channel, so a reader that keeps up never lags even on a busy
    // machine; the slow ones stall their socket and are cut off after a second.
    config.channel_capacity = 1024;
    config.rate_limit = 0.0;
    config.write_timeout = std::time::Duration::from_secs(1);
    let (addr, _stop) = start(config).await;
    let url = format!("ws://{addr}/ws");
    let out = swarm(args(&format!(
        "--url {url} --clients 12 --senders 2 --slow-readers 2 --rate 1000 --payload 4000 --duration 2s --settle 200ms --drain 2s --quiet"
    )))
    .await;
    let r = &out.report;
    // 8 MB for each slow reader: more than the kernel buffers (4 MB of send buffer at most),
    // so the server has to deal with them. The 10 readers that keep up get everything.
    assert_eq!(r.clients_connected, 12, "{}", r.human());
    assert_eq!(r.expected, r.sent * 10, "{}", r.human());
    assert_eq!(r.delivered, r.expected, "{}", r.human());
    assert_eq!(r.latency_ms.samples, r.delivered);
    let slow = r.slow_readers.as_ref().expect("slow reader figures");
    assert_eq!(slow.clients, 2);
    assert_eq!(slow.expected, r.sent * 2);
    assert!(slow.delivered < slow.expected, "{}", r.human());
    println!("{}", r.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_the_server_refuses_are_not_owed_to_anyone() {
    let mut config = wschat::Config::for_tests();
    config.rate_limit = 10.0;
    config.rate_burst = 5.0;
    let (addr, _stop) = start(config).await;
    let url = format!("ws://{addr}/ws");
    // 2 senders at 40 msg/s each against a limit of 10/s: most are refused with `rate_limited`.
    let out = swarm(args(&format!(
        "--url {url} --clients 20 --senders 2 --rate 80 --duration 1s --settle 200ms \
         --drain 1s --quiet"
    )))
    .await;
    let r = &out.report;
    assert_eq!(r.sent, 80, "{}", r.human());
    assert!(r.refused > 0, "{}", r.human());
    assert!(r.refusal_notices > 0);
    assert_eq!(
        r.refused_codes.get("rate_limited"),
        Some(&r.refusal_notices)
    );
    assert_eq!(r.expected, (r.sent - r.refused) * 20, "{}", r.human());
    assert_eq!(r.delivered, r.expected, "{}", r.human());
    assert_eq!(r.lost, 0);
}

/// `--token-secret`: against a server with authentication on, every client presents a token of
/// its own and gets in; without it, every one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_token_secret_every_client_presents_its_own_token() {
    const SECRET: &str = "swarm-test-secret-of-thirty-two-bytes";
    let (addr, _stop) = start(wschat::Config {
        auth_secret: Some(SECRET.parse().unwrap()),
        ..wschat::Config::for_tests()
    })
    .await;
    let base = format!(
        "--url ws://{addr}/ws --clients 40 --rooms 4 --senders 4 --rate 40 --duration 1s --settle 200ms --drain 3s --quiet"
    );
    let out = swarm(args(&format!("{base} --token-secret {SECRET}"))).await;
    let r = &out.report;
    assert_eq!(
        (r.clients_connected, r.connect_errors),
        (40, 0),
        "{}",
        r.human()
    );
    assert_eq!(r.delivered, r.expected, "{}", r.human());

    let refused = swarm(args(&format!("{base} --max-connect-errors 1"))).await;
    assert_eq!(
        refused.report.clients_connected,
        0,
        "no token, no entry: {}",
        refused.report.human()
    );
}
