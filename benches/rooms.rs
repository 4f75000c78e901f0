//! What a room costs, and fan-out across many small rooms beside one big one.
//!
//! - `room_lifecycle/wschat_hub/create_join_leave_drop`: one client joins a room nobody is in
//!   (the hub creates it: its channel, member list and map entry) and leaves (the hub drops it).
//!   The life of a direct-message room. Baseline `hashmap_insert_remove`: inserting and removing
//!   the same name in a plain `HashMap<String, Arc<()>>`, the least any registry of named rooms
//!   can do.
//! - `room_lifecycle/wschat_hub/join_leave_existing`: a second member joins a room that stays
//!   (someone else is in it) and leaves: a welcome, a subscription, a `join` and a `leave`.
//! - `fanout_rooms/...`: 2,000 deliveries per iteration, reported per delivery
//!   (`Throughput::Elements`): `one_room/2000` posts once to a room of 2,000; `rooms_of_2/1000`
//!   posts once in each of 1,000 rooms of two. The gap is what a post costs beyond its
//!   deliveries (an id, a JSON encoding, history), paid once per two deliveries instead of once
//!   per 2,000.
//!
//! Members join before timing starts, on a current-thread runtime that is never driven (so
//! nothing else runs), and every receiver is drained each iteration, so channels never fill.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::sync::broadcast::error::TryRecvError;
use wschat::chat::{Hub, Membership, RoomConfig, Subscription};

const TEXT: &str = "hello everyone, how is the weather in Köln today?";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn hub() -> Arc<Hub> {
    Hub::new(RoomConfig::default(), Duration::from_secs(3600))
}

fn drain(rx: &mut Subscription) {
    while !matches!(rx.try_recv(), Err(TryRecvError::Empty)) {}
}

fn lifecycle(c: &mut Criterion) {
    let rt = runtime();
    let _runtime = rt.enter();
    let mut group = c.benchmark_group("room_lifecycle");
    group.throughput(Throughput::Elements(1));

    let hub = hub();
    group.bench_function(
        BenchmarkId::new("wschat_hub", "create_join_leave_drop"),
        |b| {
            b.iter(|| {
                let (membership, entry) = hub.join(black_box("dm-ann-bob"), "ann", None);
                black_box(&entry.welcome);
                drop(entry);
                drop(membership);
            })
        },
    );
    assert_eq!(hub.room_count(), 0);

    let (_ann, _) = hub.join("team", "ann", None);
    group.bench_function(BenchmarkId::new("wschat_hub", "join_leave_existing"), |b| {
        b.iter(|| {
            let (membership, entry) = hub.join(black_box("team"), "bob", None);
            black_box(&entry.welcome);
            drop(entry);
            drop(membership);
        })
    });

    let mut map: HashMap<String, Arc<()>> = HashMap::new();
    group.bench_function(
        BenchmarkId::new("hashmap_insert_remove", "create_join_leave_drop"),
        |b| {
            b.iter(|| {
                map.insert(black_box("dm-ann-bob").to_owned(), Arc::new(()));
                black_box(map.remove("dm-ann-bob"));
            })
        },
    );
    group.finish();
}

/// `rooms` rooms of `size` members each, every receiver drained of the join events.
fn populate(hub: &Arc<Hub>, rooms: usize, size: usize) -> (Vec<Membership>, Vec<Subscription>) {
    let mut members = Vec::new();
    let mut receivers = Vec::new();
    for r in 0..rooms {
        for m in 0..size {
            let (membership, entry) = hub.join(&format!("room{r}"), &format!("user{m}"), None);
            members.push(membership);
            receivers.push(entry.events);
        }
    }
    for rx in &mut receivers {
        drain(rx);
    }
    (members, receivers)
}

fn fanout_rooms(c: &mut Criterion) {
    let rt = runtime();
    let _runtime = rt.enter();
    let mut group = c.benchmark_group("fanout_rooms");
    const DELIVERIES: usize = 2000;
    group.throughput(Throughput::Elements(DELIVERIES as u64));

    for (name, rooms, size) in [
        ("one_room", 1, DELIVERIES),
        ("rooms_of_2", DELIVERIES / 2, 2),
    ] {
        let hub = hub();
        let (members, mut receivers) = populate(&hub, rooms, size);
        // One poster per room: every `size`-th membership.
        let posters: Vec<_> = members
            .iter()
            .step_by(size)
            .map(|m| m.room().clone())
            .collect();
        group.bench_function(BenchmarkId::new(name, rooms), |b| {
            b.iter(|| {
                for room in &posters {
                    room.post("user0", black_box(TEXT));
                }
                for rx in &mut receivers {
                    black_box(rx.try_recv().expect("the posted message"));
                }
            })
        });
        drop(receivers);
        drop(members);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = lifecycle, fanout_rooms
}
criterion_main!(benches);
