//! The room: exactly-once growth, history and welcome, presence, typing.

use super::*;
use serde_json::Value;
use tokio::sync::broadcast::error::TryRecvError;

fn json(frame: &[u8]) -> Value {
    let (_, n) = crate::ws::FrameHeader::parse(frame).unwrap().unwrap();
    serde_json::from_slice(&frame[n..]).unwrap()
}

fn next(rx: &mut Subscription) -> Value {
    json(rx.try_recv().expect("an event").frame.plain())
}

fn room(config: RoomConfig) -> Room {
    Room::new("lobby", config)
}

fn enter(room: &Room, nick: &str, since: Option<u64>) -> (Value, Subscription) {
    room.reserve();
    let entry = room.enter(nick, since).entry;
    (json(&entry.welcome.plain().concat()), entry.events)
}

/// Ids of the chat messages waiting for `rx`, in the order it gets them.
fn message_ids(rx: &mut Subscription) -> Vec<u64> {
    let mut ids = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(delivery) => {
                let event = json(delivery.frame.plain());
                if event["type"] == "message" {
                    ids.push(event["id"].as_u64().unwrap());
                }
            }
            Err(TryRecvError::Empty) => return ids,
            Err(err) => panic!("{err:?}"),
        }
    }
}

#[test]
fn ids_increase_by_one_and_reach_every_member() {
    let room = room(RoomConfig::default());
    let (_, mut ann) = enter(&room, "ann", None);
    let (_, mut bob) = enter(&room, "bob", None);
    assert_eq!(next(&mut ann)["type"], "join");
    for (i, text) in ["one", "two"].iter().enumerate() {
        assert_eq!(room.post("ann", text), i as u64 + 1);
    }
    for rx in [&mut ann, &mut bob] {
        assert_eq!(next(rx)["id"], 1);
        let two = next(rx);
        assert_eq!(
            (two["id"].as_u64(), two["text"].as_str()),
            (Some(2), Some("two"))
        );
    }
}

#[test]
fn a_new_room_is_small() {
    let room = room(RoomConfig::default());
    let (_, _ann) = enter(&room, "ann", None);
    let (_, _bob) = enter(&room, "bob", None);
    assert_eq!(room.channel_capacity(), INITIAL_CAPACITY);
}

#[test]
fn growth_delivers_every_event_once_in_order() {
    let room = room(RoomConfig {
        channel_capacity: 64,
        ..RoomConfig::default()
    });
    // Members that never read while the room grows past them, and members that join at
    // every size, each between two messages.
    let mut members = Vec::new();
    for i in 0..40u64 {
        let (welcome, rx) = enter(&room, &format!("m{i:02}"), None);
        members.push((welcome["last_id"].as_u64().unwrap(), rx));
        room.post("x", &format!("{i}"));
    }
    assert_eq!(room.channel_capacity(), 64, "grew to the largest");
    for (after, rx) in &mut members {
        let expected: Vec<u64> = (*after + 1..=40).collect();
        assert_eq!(message_ids(rx), expected, "member who joined after {after}");
    }
    // The room goes on: one more message reaches everyone exactly once.
    room.post("x", "last");
    for (_, rx) in &mut members {
        assert_eq!(message_ids(rx), [41]);
    }
}

#[test]
fn a_member_that_reads_keeps_the_room_small() {
    let room = room(RoomConfig::default());
    let (_, mut ann) = enter(&room, "ann", None);
    for i in 0..100 {
        room.post("ann", &format!("{i}"));
        assert_eq!(message_ids(&mut ann).len(), 1);
    }
    assert_eq!(room.channel_capacity(), INITIAL_CAPACITY);
}

#[test]
fn past_the_largest_capacity_a_slow_member_lags() {
    let room = room(RoomConfig {
        channel_capacity: 8,
        ..RoomConfig::default()
    });
    let (_, mut ann) = enter(&room, "ann", None);
    for i in 0..30 {
        room.post("ann", &format!("{i}"));
    }
    assert_eq!(room.channel_capacity(), 8);
    let mut lagged = false;
    loop {
        match ann.try_recv() {
            Ok(_) => {}
            Err(TryRecvError::Lagged(_)) => lagged = true,
            Err(TryRecvError::Empty) => break,
            Err(err) => panic!("{err:?}"),
        }
    }
    assert!(lagged, "a member more than the largest ring behind is told");
}

#[test]
fn a_member_leaving_mid_growth_releases_its_place() {
    let room = room(RoomConfig::default());
    let (_, mut ann) = enter(&room, "ann", None);
    let (_, bob) = enter(&room, "bob", None);
    for i in 0..20 {
        room.post("ann", &format!("{i}"));
    }
    assert!(room.channel_capacity() > INITIAL_CAPACITY);
    drop(bob); // never read: its pooled receivers in every later channel go with it
    room.exit("bob");
    message_ids(&mut ann);
    let state = room.lock();
    assert_eq!(state.tx.receiver_count(), 1);
    assert_eq!(state.tx.len(), 0, "nobody is behind");
}

#[test]
fn welcome_carries_history_users_and_cursor() {
    let room = room(RoomConfig {
        history: 3,
        ..RoomConfig::default()
    });
    let (welcome, _ann) = enter(&room, "ann", None);
    assert_eq!(welcome["last_id"], 0);
    assert_eq!(welcome["you"], "ann");
    assert_eq!(welcome["history"].as_array().unwrap().len(), 0);
    for i in 1..=5 {
        room.post("ann", &format!("m{i}"));
    }
    let (welcome, _bob) = enter(&room, "bob", None);
    let ids: Vec<u64> = welcome["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4, 5]);
    assert_eq!(welcome["users"], serde_json::json!(["ann", "bob"]));
    assert_eq!(
        (welcome["count"].as_u64(), welcome["last_id"].as_u64()),
        (Some(2), Some(5))
    );
}

#[test]
fn joiners_share_one_history_until_the_next_message() {
    let room = room(RoomConfig::default());
    room.reserve();
    room.enter("ann", None);
    room.post("ann", "hello");
    let tail = |nick: &str| {
        room.reserve();
        room.enter(nick, None).entry.welcome.plain()[1].clone()
    };
    let (bob, cat) = (tail("bob"), tail("cat"));
    assert_eq!(bob.as_ptr(), cat.as_ptr(), "one copy, shared");
    room.post("ann", "again");
    assert_ne!(
        tail("dan").as_ptr(),
        bob.as_ptr(),
        "rebuilt after a message"
    );
}

#[test]
fn history_is_bounded_in_bytes() {
    let room = room(RoomConfig {
        history: 100,
        history_bytes: 1000,
        ..RoomConfig::default()
    });
    let text = "\0".repeat(50); // 300 bytes of JSON
    for _ in 0..10 {
        room.post("ann", &text);
    }
    let (welcome, _) = enter(&room, "bob", None);
    let history = welcome["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "two fit in 1,000 bytes, three do not");
    assert_eq!(history[1]["id"], 10);
    let held: usize = history.iter().map(|m| m.to_string().len() + 1).sum();
    assert!(held <= 1000);
    // One message bigger than the whole budget is not kept; a resume across it is told.
    room.post("ann", &"\0".repeat(200));
    let (welcome, _) = enter(&room, "bob", None);
    assert_eq!(welcome["history"].as_array().unwrap().len(), 0);
    let (welcome, _) = enter(&room, "bob", Some(10));
    assert_eq!(welcome["truncated"], true);
}

#[test]
fn since_resumes_without_gap_or_duplicate() {
    let room = room(RoomConfig {
        history: 3,
        ..RoomConfig::default()
    });
    let (_, _ann) = enter(&room, "ann", None);
    for i in 1..=5 {
        room.post("ann", &format!("m{i}"));
    }
    let ids = |w: &Value| -> Vec<u64> {
        w["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    let (w, _) = enter(&room, "bob", Some(3));
    assert_eq!(
        (ids(&w), w["truncated"].as_bool()),
        (vec![4, 5], Some(false))
    );
    let (w, _) = enter(&room, "bob", Some(2));
    assert_eq!(
        (ids(&w), w["truncated"].as_bool()),
        (vec![3, 4, 5], Some(false))
    );
    let (w, _) = enter(&room, "bob", Some(1));
    assert_eq!(
        (ids(&w), w["truncated"].as_bool()),
        (vec![3, 4, 5], Some(true))
    );
    let (w, _) = enter(&room, "bob", Some(5));
    assert_eq!((ids(&w), w["truncated"].as_bool()), (vec![], Some(false)));
    // A cursor from before a restart is past the end: say so, send what there is.
    let (w, _) = enter(&room, "bob", Some(99));
    assert_eq!(
        (ids(&w), w["truncated"].as_bool()),
        (vec![3, 4, 5], Some(true))
    );
}

#[test]
fn presence_follows_nicknames_not_connections() {
    let room = room(RoomConfig::default());
    let (_, mut watcher) = enter(&room, "watcher", None);
    let _tab1 = enter(&room, "ann", None);
    assert_eq!(
        next(&mut watcher),
        serde_json::json!({"type":"join","name":"ann"})
    );
    let _tab2 = enter(&room, "ann", None);
    assert!(!room.exit("ann").empty);
    assert!(
        watcher.try_recv().is_err(),
        "second tab neither joins nor leaves"
    );
    room.exit("ann");
    assert_eq!(
        next(&mut watcher),
        serde_json::json!({"type":"leave","name":"ann"})
    );
    assert!(room.exit("watcher").empty, "room is empty");
}

#[test]
fn typing_skips_the_typist() {
    let room = room(RoomConfig::default());
    let (_, mut rx) = enter(&room, "ann", None);
    room.typing("ann", 42);
    let delivery = rx.try_recv().unwrap();
    assert!(!delivery.to.includes(42) && delivery.to.includes(41));
    assert_eq!(json(delivery.frame.plain())["type"], "typing");
}

#[test]
fn large_rooms_coalesce_presence() {
    let room = room(RoomConfig {
        presence_threshold: 2,
        welcome_users: 2,
        ..RoomConfig::default()
    });
    let (_, mut watcher) = enter(&room, "a", None);
    let _b = enter(&room, "b", None);
    assert_eq!(next(&mut watcher)["type"], "join");
    room.reserve();
    assert!(room.enter("c", None).presence_queued, "the first queued");
    for nick in ["d", "e"] {
        room.reserve();
        assert!(!room.enter(nick, None).presence_queued, "already queued");
    }
    room.exit("e"); // joined and left within the interval: never announced
    room.exit("b");
    assert!(
        watcher.try_recv().is_err(),
        "nothing until the interval ends"
    );
    room.flush_presence();
    assert_eq!(
        next(&mut watcher),
        serde_json::json!({"type":"presence","joined":["c","d"],"left":["b"],
            "joined_count":2,"left_count":1,"count":3})
    );
    room.flush_presence();
    assert!(
        watcher.try_recv().is_err(),
        "an empty interval sends nothing"
    );
    let (welcome, _) = enter(&room, "z", None);
    assert_eq!(welcome["users"], serde_json::json!(["a", "c"]));
    assert_eq!(welcome["count"], 4);
}

#[test]
fn presence_events_carry_at_most_the_welcome_number_of_names() {
    let room = room(RoomConfig {
        presence_threshold: 1,
        welcome_users: 3,
        ..RoomConfig::default()
    });
    let (_, mut watcher) = enter(&room, "a", None);
    for i in 0..50 {
        room.reserve();
        room.enter(&format!("n{i:02}"), None);
    }
    room.flush_presence();
    let presence = next(&mut watcher);
    assert_eq!(presence["joined"].as_array().unwrap().len(), 3);
    assert_eq!(presence["joined_count"], 50);
    assert_eq!(presence["count"], 51);
}

#[test]
fn with_shared_presence_the_engine_says_who_is_here() {
    let room = room(RoomConfig {
        shared_presence: true,
        ..RoomConfig::default()
    });
    // The engine's list, as read from Redis, with ann already counted there.
    room.load_users(vec!["bob".into(), "ann".into()]);
    let (welcome, mut ann) = enter(&room, "ann", None);
    assert_eq!(welcome["users"], serde_json::json!(["ann", "bob"]));
    assert_eq!(welcome["count"], 2);
    // A second local connection of a nickname the engine knows, and its exit: nothing said.
    let (_, _second) = enter(&room, "bob", None);
    room.exit("bob");
    assert!(matches!(ann.try_recv(), Err(TryRecvError::Empty)));
    // What the engine announces is told once; a repeat of a known state is not.
    assert!(!room.remote_join("cat", None));
    assert!(!room.remote_join("cat", None));
    assert_eq!(
        next(&mut ann),
        serde_json::json!({"type": "join", "name": "cat"})
    );
    assert!(!room.remote_leave("bob"));
    assert_eq!(
        next(&mut ann),
        serde_json::json!({"type": "leave", "name": "bob"})
    );
    assert!(matches!(ann.try_recv(), Err(TryRecvError::Empty)));
    // A list read again (Redis restored) is told as the difference.
    room.replace_users(vec!["ann".into(), "dan".into()]);
    assert_eq!(
        next(&mut ann),
        serde_json::json!({"type": "leave", "name": "cat"})
    );
    assert_eq!(
        next(&mut ann),
        serde_json::json!({"type": "join", "name": "dan"})
    );
    assert_eq!(room.user_count(), 2);
}

/// A message's JSON as the Redis engine delivers it.
fn engine_message(id: u64) -> (u64, String) {
    let json = ServerEvent::Message(ChatMessage {
        id,
        room: "lobby",
        from: "ann",
        text: "hi",
        ts: 1,
    })
    .to_json();
    (id, json)
}

/// Every event waiting for `rx`, as `(type, id or count)`.
fn events(rx: &mut Subscription) -> Vec<(String, u64)> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|delivery| {
            let event = json(delivery.frame.plain());
            let number = event["id"].as_u64().or(event["missed"].as_u64());
            (
                event["type"].as_str().unwrap().to_owned(),
                number.unwrap_or(0),
            )
        })
        .collect()
}

fn message(id: u64) -> (String, u64) {
    ("message".into(), id)
}

#[test]
fn a_backfill_delivers_the_gap_in_order_once() {
    let room = room(RoomConfig::default());
    let epoch = room.epoch();
    room.load(epoch, 2, vec![engine_message(1), engine_message(2)]);
    let (_, mut rx) = enter(&room, "bob", None);
    let caught_up = room.backfill(epoch, 5, (2..=5).map(engine_message).collect());
    assert_eq!(
        caught_up,
        CaughtUp {
            new_life: false,
            missed: 0,
            delivered: 3
        }
    );
    assert_eq!(events(&mut rx), [message(3), message(4), message(5)]);
    room.deliver(5, engine_message(5).1);
    room.deliver(6, engine_message(6).1);
    assert_eq!(
        events(&mut rx),
        [message(6)],
        "live after the gap, no repeat"
    );
}

#[test]
fn a_gap_longer_than_the_engine_keeps_is_told_as_lagged() {
    let room = room(RoomConfig::default());
    let epoch = room.epoch();
    room.load(epoch, 2, vec![]);
    let (_, mut rx) = enter(&room, "bob", None);
    let caught_up = room.backfill(epoch, 9, (8..=9).map(engine_message).collect());
    assert_eq!(caught_up.missed, 5, "3 to 7 are gone");
    assert_eq!(
        events(&mut rx),
        [("lagged".into(), 5), message(8), message(9)]
    );
}

#[test]
fn a_room_the_engine_lost_is_told_as_truncated_with_its_new_epoch() {
    let room = room(RoomConfig::default());
    let old = room.epoch();
    room.load(old, 7, (5..=7).map(engine_message).collect());
    let (_, mut rx) = enter(&room, "bob", None);
    let new = Epoch(old.0 ^ 1);
    let caught_up = room.backfill(new, 2, (1..=2).map(engine_message).collect());
    assert!(caught_up.new_life);
    let told = events(&mut rx);
    assert_eq!(told[0].0, "truncated");
    assert_eq!(&told[1..], [message(1), message(2)]);
    assert_eq!(room.cursor(), (new, 2));
    // A resume from the old life is answered from the new one's history, truncated.
    let (welcome, _) = {
        room.reserve();
        let entry = room.enter_with_info("cat", None, Some(7), Some(old)).entry;
        (json(&entry.welcome.plain().concat()), entry.events)
    };
    assert_eq!(welcome["truncated"], true);
    assert_eq!(welcome["epoch"], new.to_string());
    assert_eq!(welcome["history"].as_array().unwrap().len(), 2);
}
