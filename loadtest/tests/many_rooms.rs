//! Many rooms of unequal sizes (`--room-sizes zipf:S`) against the real wschat server: every
//! room gets exactly what its senders sent, and the largest room's figures are its own.

mod common;

use common::{args, start_wschat, swarm};
use loadtest::rooms::{Layout, RoomSizes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipf_rooms_get_every_message_exactly_once_and_the_largest_is_reported_apart() {
    let (addr, _stop) = start_wschat(wschat::Config::for_tests()).await;
    let url = format!("ws://{addr}/ws");
    let json = std::env::temp_dir().join(format!("loadtest-zipf-{}.json", std::process::id()));
    let out = swarm(args(&format!(
        "--url {url} --clients 300 --rooms 20 --room-sizes zipf:1.0 --senders 10 --rate 200 \
         --duration 2s --settle 300ms --drain 3s --close-timeout 10s --json {} --quiet",
        json.display()
    )))
    .await;
    let r = &out.report;
    // 400 messages, 40 per sender; each is owed to every client of its sender's room.
    let layout = Layout::new(300, 20, 10, RoomSizes::Zipf(1.0));
    let owed = |k: usize| 40 * layout.size(layout.room_of(k)) as u64;
    assert_eq!(r.clients_connected, 300, "{}", r.human());
    assert_eq!(r.sent, 400, "{}", r.human());
    assert_eq!(r.expected, (0..10).map(owed).sum::<u64>(), "{}", r.human());
    assert_eq!(r.delivered, r.expected, "{}", r.human());
    assert_eq!(r.lost, 0);
    assert_eq!((r.duplicates, r.out_of_order, r.unexpected), (0, 0, 0));

    // Room 0 is the largest: 300 / H_20 = 83 clients, and 10 * 83 / 300 of the senders.
    let room = r.largest_room.as_ref().expect("largest room figures");
    assert_eq!((room.room, room.clients), (0, layout.size(0)));
    assert!(room.clients > 3 * layout.size(5), "{}", r.human());
    assert_eq!(room.senders, layout.senders_in_room(0));
    assert_eq!(room.receivers, room.clients as u64);
    let room_owed: u64 = (0..10).filter(|&k| layout.room_of(k) == 0).map(owed).sum();
    assert_eq!(room.expected, room_owed);
    assert_eq!(room.delivered, room.expected, "{}", r.human());
    assert_eq!(room.latency_ms.samples, room.delivered);
    assert!(r.human().contains("largest     room 0"), "{}", r.human());

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(v["room_sizes"], "zipf:1");
    assert_eq!(v["largest_room"]["delivered"], room.delivered);
    assert!(v["largest_room"]["latency_ms"]["p99"].is_number());
}
