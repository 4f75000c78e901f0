//! The exact accounting across receivers, once the run is over: what every measured receiver
//! was owed, what it got, and what was lost, refused or late.
//!
//! Each receiver counted alone while the run lasted ([`accounting`](crate::accounting)), so
//! nothing was shared on the hot path; what needs every receiver at once (which messages reached
//! anyone at all, what a room was owed) is settled here, from the results they handed in.

use crate::cli::{Args, Protocol};
use crate::coordinator::Times;
use crate::report::{Percentiles, Report, RoomFigures, SlowReaders, UrlShare};
use crate::schedule::Plan;
use crate::stats::{per_sec, ClientResult, ThreadStats, SHORTEST_DIVISOR_SECS};

/// The exact accounting across receivers: what every measured receiver was owed and got.
///
/// A receiver is owed every message its room's senders sent and the server accepted. A client
/// cannot see acceptance directly, and a server may announce a run of refusals with a single
/// `error` event, so for a sender that received any refusal notice, "accepted" is "reached at
/// least one receiver" (the union of the room's bit sets); a message nobody got is then counted
/// as refused, not lost. For a sender never told of a refusal, everything it sent is owed, and a
/// message nobody got is loss.
pub fn summarize(
    args: &Args,
    plan: &Plan,
    merged: &ThreadStats,
    results: &[ClientResult],
    times: &Times,
    warnings: Vec<String>,
) -> Report {
    // Union over each room's receivers of which messages arrived, per sender slot.
    let mut reached: Vec<Vec<Vec<u64>>> = (0..plan.rooms)
        .map(|room| vec![Vec::new(); plan.senders_in_room(room)])
        .collect();
    for c in results.iter().filter(|c| c.connected) {
        for (slot, bits) in c.seen.iter().enumerate() {
            let union = &mut reached[c.role.room][slot];
            if union.len() < bits.len() {
                union.resize(bits.len(), 0);
            }
            for (u, b) in union.iter_mut().zip(bits) {
                *u |= b;
            }
        }
    }
    let mut accepted_of = vec![0u64; plan.senders];
    let mut accepted_in_room = vec![0u64; plan.rooms];
    let mut r = Report {
        protocol: match args.protocol {
            Protocol::Chat => "chat".into(),
            Protocol::Raw => "raw".into(),
            Protocol::Socketio => "socketio".into(),
        },
        url: args.url.join(", "),
        clients_requested: args.clients,
        rooms: args.rooms,
        room_sizes: args.room_sizes.to_string(),
        senders: args.senders,
        rate: args.rate,
        payload_bytes: args.payload,
        duration_secs: args.duration.as_secs_f64(),
        connect_secs: times.connect_secs,
        connect_ms: Percentiles::from_micros(&merged.connect_time),
        connect_error_kinds: merged.connect_errors.clone(),
        connect_errors: merged.connect_errors.values().sum(),
        warnings,
        ..Report::default()
    };
    for c in results.iter().filter(|c| c.connected && c.role.sender) {
        let accepted = if c.refusal_notices.is_empty() {
            c.sent
        } else {
            let union = &reached[c.role.room][plan.slot_of(c.index)];
            union
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>()
                .min(c.sent)
        };
        accepted_of[c.index] = accepted;
        accepted_in_room[c.role.room] += accepted;
        r.senders_connected += 1;
        r.scheduled += plan.messages_of(c.index);
        r.sent += c.sent;
        r.refused += c.sent - accepted;
        for (code, n) in &c.refusal_notices {
            *r.refused_codes.entry(code.clone()).or_default() += n;
            r.refusal_notices += n;
        }
    }
    if args.url.len() > 1 {
        r.urls = args
            .url
            .iter()
            .map(|url| UrlShare {
                url: url.clone(),
                clients_connected: 0,
            })
            .collect();
    }
    let mut slow = SlowReaders::default();
    let largest = plan.layout.largest();
    let mut room = RoomFigures {
        room: largest,
        clients: plan.layout.size(largest),
        senders: plan.senders_in_room(largest),
        ..RoomFigures::default()
    };
    for c in results.iter().filter(|c| c.connected) {
        r.clients_connected += 1;
        if !r.urls.is_empty() {
            // Client i connected to URL i mod N (see `Targets::server_of`).
            let n = r.urls.len();
            r.urls[c.index % n].clients_connected += 1;
        }
        let own = if args.no_echo && c.role.sender {
            accepted_of[c.index]
        } else {
            0
        };
        let expected = accepted_in_room[c.role.room].saturating_sub(own);
        if c.role.slow {
            slow.clients += 1;
            slow.expected += expected;
            slow.delivered += c.delivered;
            slow.lagged_notices += c.lagged_notices;
            slow.lagged_missed += c.lagged_missed;
            *slow.close_codes.entry(c.closed.key()).or_default() += 1;
            slow.closed_by_server += u64::from(c.closed_early);
            continue;
        }
        let lost = expected.saturating_sub(c.delivered);
        let declared = lost.min(c.lagged_missed);
        r.expected += expected;
        r.delivered += c.delivered;
        r.lost += lost;
        if c.role.room == largest {
            room.receivers += 1;
            room.expected += expected;
            room.delivered += c.delivered;
            room.lost += lost;
        }
        r.lost_lagged += declared;
        r.lost_silent += lost - declared;
        r.lagged_notices += c.lagged_notices;
        r.duplicates += c.duplicates;
        r.out_of_order += c.out_of_order;
        r.unexpected += c.unexpected;
        r.foreign += c.foreign;
        *r.close_codes.entry(c.closed.key()).or_default() += 1;
        r.closed_early += u64::from(c.closed_early);
    }
    if args.slow_readers > 0 {
        r.slow_readers = Some(slow);
    }
    r.latency_ms = Percentiles::from_micros(&merged.latency);
    if let Some(h) = &merged.largest_room_latency {
        room.latency_ms = Percentiles::from_micros(h);
        r.largest_room = Some(room);
    }
    let last = merged
        .last_delivery_us
        .saturating_sub(times.steady_start_us) as f64
        / 1e6;
    let steady = if times.steady_secs > 0.0 {
        times.steady_secs
    } else {
        r.duration_secs
    };
    r.throughput_window_secs = last.max(steady).max(SHORTEST_DIVISOR_SECS);
    r.deliveries_per_sec = r.delivered as f64 / r.throughput_window_secs;
    r.sends_per_sec = per_sec(r.sent as f64, steady);
    r
}
