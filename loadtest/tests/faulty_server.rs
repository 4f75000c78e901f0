//! The swarm against relays that misbehave on purpose: it must report exactly the loss a relay
//! caused, and a stall as latency rather than as missing samples.

mod common;

use std::time::Duration;

use common::{args, start_relay, swarm, Faults};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_drops_every_seventh_message_loses_exactly_that() {
    let addr = start_relay(Faults {
        drop_every: 7,
        ..Faults::default()
    })
    .await;
    let url = format!("ws://{addr}/");
    let out = swarm(args(&format!(
        "--url {url} --protocol raw --clients 20 --senders 4 --rate 200 --duration 1s --settle 100ms --drain 500ms --quiet"
    )))
    .await;
    let r = &out.report;
    // 200 messages, every 7th dropped before anyone got it: 28 messages, each owed to all 20.
    assert_eq!(r.sent, 200, "{}", r.human());
    assert_eq!(r.expected, 200 * 20);
    assert_eq!(r.lost, 28 * 20, "{}", r.human());
    assert_eq!(r.lost_silent, r.lost);
    assert_eq!(r.lost_lagged, 0);
    assert_eq!(r.delivered, r.expected - r.lost);
    assert_eq!(r.latency_ms.samples, r.delivered);
    assert_eq!((r.duplicates, r.out_of_order, r.unexpected), (0, 0, 0));
    assert!(!r.passed, "loss must fail the run with --max-loss 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_within_max_loss_passes() {
    let addr = start_relay(Faults {
        drop_every: 10,
        ..Faults::default()
    })
    .await;
    let url = format!("ws://{addr}/");
    let out = swarm(args(&format!(
        "--url {url} --protocol raw --clients 10 --senders 2 --rate 100 --duration 500ms --settle 100ms --drain 300ms --max-loss 0.1 --quiet"
    )))
    .await;
    let r = &out.report;
    assert_eq!(r.lost, 5 * 10, "{}", r.human());
    assert!(r.passed, "{}", r.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_relay_shows_up_as_latency_not_as_fewer_samples() {
    let stall = Duration::from_millis(1200);
    let addr = start_relay(Faults {
        stall_at: Some(50),
        stall,
        ..Faults::default()
    })
    .await;
    let url = format!("ws://{addr}/");
    let out = swarm(args(&format!(
        "--url {url} --protocol raw --clients 20 --senders 4 --rate 100 --duration 2s --settle 100ms --drain 3s --quiet"
    )))
    .await;
    let r = &out.report;
    assert_eq!(r.sent, 200, "{}", r.human());
    assert_eq!(r.expected, 200 * 20);
    assert_eq!(r.delivered, r.expected, "{}", r.human());
    assert_eq!(r.lost, 0);
    // Every delivery is a sample, the delayed ones included, and the worst waited the stall.
    assert_eq!(r.latency_ms.samples, r.delivered);
    assert!(
        r.latency_ms.max >= stall.as_millis() as f64,
        "{}",
        r.human()
    );
    assert!(r.passed, "{}", r.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_the_server_declares_with_lagged_notices_is_counted_apart() {
    let addr = start_relay(Faults {
        drop_every: 5,
        chat: true,
        ..Faults::default()
    })
    .await;
    let url = format!("ws://{addr}/ws");
    let out = swarm(args(&format!(
        "--url {url} --clients 10 --senders 2 --rate 100 --duration 500ms --settle 100ms --drain 300ms --quiet"
    )))
    .await;
    let r = &out.report;
    // 50 messages, every 5th replaced by a lagged notice to all 10 clients.
    assert_eq!(r.sent, 50, "{}", r.human());
    assert_eq!(r.lost, 10 * 10, "{}", r.human());
    assert_eq!(r.lost_lagged, r.lost);
    assert_eq!(r.lost_silent, 0);
    assert_eq!(r.lagged_notices, 10 * 10);
    assert_eq!(r.latency_ms.samples, r.delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_addresses_spread_the_connections() {
    let relay = common::start_relay_with_peers(Faults::default()).await;
    let url = format!("ws://{}/", relay.addr);
    let out = swarm(args(&format!(
        "--url {url} --protocol raw --clients 12 --senders 1 --rate 20 --duration 300ms \
         --settle 100ms --drain 300ms --source-addrs 127.0.0.1-127.0.0.3 --quiet"
    )))
    .await;
    assert_eq!(out.report.clients_connected, 12, "{}", out.report.human());
    assert_eq!(out.report.delivered, out.report.expected);
    let peers = relay.peers.lock().unwrap().clone();
    let expected: std::collections::HashSet<std::net::IpAddr> = (1..=3)
        .map(|i| std::net::Ipv4Addr::new(127, 0, 0, i).into())
        .collect();
    assert_eq!(peers, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_loopback_the_swarm_spreads_over_source_addresses_by_default() {
    let relay = common::start_relay_with_peers(Faults::default()).await;
    let url = format!("ws://{}/", relay.addr);
    // 251 clients need a second address at 250 per address.
    let out = swarm(args(&format!(
        "--url {url} --protocol raw --clients 251 --senders 1 --rate 20 --duration 300ms \
         --settle 100ms --drain 500ms --close-timeout 10s --quiet"
    )))
    .await;
    assert_eq!(out.report.clients_connected, 251, "{}", out.report.human());
    assert_eq!(out.report.source_addrs, 2);
    let peers = relay.peers.lock().unwrap().clone();
    let expected: std::collections::HashSet<std::net::IpAddr> = (1..=2)
        .map(|i| std::net::Ipv4Addr::new(127, 0, 0, i).into())
        .collect();
    assert_eq!(peers, expected);
}
