//! `--url A --url B`: clients spread round-robin over several servers, deliveries counted per
//! room across all of them. Two in-memory wschat processes share no rooms, so a room kept on one
//! server is exact, and a room split over both loses exactly what the other server holds.

mod common;

use common::{args, start_wschat, swarm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_each_on_one_server_get_every_message_exactly_once() {
    let (a, _stop_a) = start_wschat(wschat::Config::for_tests()).await;
    let (b, _stop_b) = start_wschat(wschat::Config::for_tests()).await;
    // Client i connects to server i mod 2 and joins room i mod 2: room 0 lives on A, room 1 on B.
    let out = swarm(args(&format!(
        "--url ws://{a}/ws --url ws://{b}/ws --clients 40 --rooms 2 --senders 4 --rate 80 \
         --duration 1s --settle 200ms --drain 2s --quiet"
    )))
    .await;
    let r = &out.report;
    assert_eq!(r.clients_connected, 40, "{}", r.human());
    assert_eq!(r.sent, 80, "{}", r.human());
    assert_eq!(r.expected, 80 * 20);
    assert_eq!(r.delivered, r.expected, "{}", r.human());
    assert_eq!(r.lost, 0);
    let shares: Vec<(String, u64)> = r
        .urls
        .iter()
        .map(|u| (u.url.clone(), u.clients_connected))
        .collect();
    assert_eq!(
        shares,
        [(format!("ws://{a}/ws"), 20), (format!("ws://{b}/ws"), 20)]
    );
    assert!(r.human().contains("servers     2 URLs"), "{}", r.human());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_split_over_servers_that_share_nothing_loses_exactly_the_other_half() {
    let (a, _stop_a) = start_wschat(wschat::Config::for_tests()).await;
    let (b, _stop_b) = start_wschat(wschat::Config::for_tests()).await;
    // One room, 20 clients alternating between A and B, sender 0 on A and sender 1 on B: each
    // message reaches the 10 clients of its sender's server and none of the other 10.
    let out = swarm(args(&format!(
        "--url ws://{a}/ws --url ws://{b}/ws --clients 20 --senders 2 --rate 40 --duration 1s \
         --settle 200ms --drain 500ms --max-loss 1 --quiet"
    )))
    .await;
    let r = &out.report;
    assert_eq!(r.sent, 40, "{}", r.human());
    assert_eq!(r.expected, 40 * 20);
    assert_eq!(r.delivered, 40 * 10, "{}", r.human());
    assert_eq!(r.lost, 40 * 10);
    assert_eq!(r.lost_silent, r.lost);
    assert_eq!((r.duplicates, r.unexpected), (0, 0));
}
