//! Who does what, and when: pure arithmetic, no I/O, no clock.
//!
//! Every decision here is a function of the client index (and of the room [`Layout`], a table
//! fixed before the threads start), so any thread can answer "which room is client 17 in", "how
//! many messages will sender 3 send" or "when is its 40th due" without a lock, and a receiver can
//! size its accounting before the first message arrives.
//!
//! The send schedule is fixed in advance (the open-loop model of wrk2): message `n` of the whole
//! run is due at `n / rate` seconds into the steady phase and belongs to sender `n mod S`. A
//! sender that is late sends at once and keeps the original due times, and latency is measured
//! from the due time, so a server that stalls shows up as latency instead of as fewer samples
//! (the "coordinated omission" of a closed-loop generator that waits for each reply).

use std::sync::Arc;
use std::time::Duration;

use crate::rooms::Layout;

/// The fixed roles and schedules of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Connections in the run.
    pub clients: usize,
    /// Rooms.
    pub rooms: usize,
    /// Clients `0..senders` send.
    pub senders: usize,
    /// Clients `clients - slow_readers..clients` stop reading.
    pub slow_readers: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Length of the steady phase.
    pub duration: Duration,
    /// Connections opened per second (0 = all at once).
    pub connect_rate: f64,
    /// Who is in which room, built from `clients`, `rooms`, `senders` and `--room-sizes`.
    pub layout: Arc<Layout>,
}

/// What one client does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// Its room number.
    pub room: usize,
    /// Whether it sends (its sender id is its client index).
    pub sender: bool,
    /// Whether it stops reading while the others are measured.
    pub slow: bool,
}

impl Plan {
    /// The role of client `i`.
    pub fn role(&self, i: usize) -> Role {
        Role {
            room: self.layout.room_of(i),
            sender: i < self.senders,
            slow: i >= self.clients - self.slow_readers,
        }
    }

    /// When client `i` starts connecting, after the start of the connect ramp.
    pub fn connect_offset(&self, i: usize) -> Duration {
        if self.connect_rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(i as f64 / self.connect_rate)
        }
    }

    /// Messages due in the whole steady phase: every `n` with `n / rate < duration`.
    pub fn total_messages(&self) -> u64 {
        if self.senders == 0 {
            return 0;
        }
        (self.rate * self.duration.as_secs_f64()).ceil() as u64
    }

    /// Messages sender `k` is scheduled to send: the `n < total` with `n mod S == k`.
    pub fn messages_of(&self, k: usize) -> u64 {
        let (total, s, k) = (self.total_messages(), self.senders as u64, k as u64);
        if k >= s || k >= total {
            0
        } else {
            (total - k).div_ceil(s)
        }
    }

    /// When sender `k`'s message `seq` is due, in microseconds after the start of the steady
    /// phase.
    pub fn due_us(&self, k: usize, seq: u64) -> u64 {
        let n = seq * self.senders as u64 + k as u64;
        (n as f64 * 1e6 / self.rate).round() as u64
    }

    /// Senders in room `r`.
    pub fn senders_in_room(&self, r: usize) -> usize {
        self.layout.senders_in_room(r)
    }

    /// The position of sender `k` among its room's senders, so a receiver keeps a dense vector
    /// indexed by it.
    pub fn slot_of(&self, k: usize) -> usize {
        self.layout.slot_of(k)
    }

    /// The sender at position `slot` of room `r`.
    pub fn sender_at(&self, r: usize, slot: usize) -> usize {
        self.layout.sender_at(r, slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::RoomSizes;

    fn plan(clients: usize, rooms: usize, senders: usize, rate: f64, secs: f64) -> Plan {
        Plan {
            clients,
            rooms,
            senders,
            slow_readers: 2,
            rate,
            duration: Duration::from_secs_f64(secs),
            connect_rate: 100.0,
            layout: Layout::new(clients, rooms, senders, RoomSizes::Uniform).into(),
        }
    }

    #[test]
    fn per_sender_counts_add_up_to_the_total() {
        for (senders, rate, secs) in [
            (10, 100.0, 10.0),
            (7, 33.0, 1.5),
            (3, 1000.0, 0.01),
            (5, 2.0, 1.0),
        ] {
            let p = plan(100, 4, senders, rate, secs);
            let sum: u64 = (0..senders).map(|k| p.messages_of(k)).sum();
            assert_eq!(
                sum,
                p.total_messages(),
                "{senders} senders at {rate}/s for {secs}s"
            );
        }
        // 2 messages for 5 senders: the last three send nothing.
        let p = plan(10, 1, 5, 2.0, 1.0);
        assert_eq!(
            (0..5).map(|k| p.messages_of(k)).collect::<Vec<_>>(),
            [1, 1, 0, 0, 0]
        );
    }

    #[test]
    fn every_due_time_is_inside_the_steady_phase_and_evenly_spread() {
        let p = plan(100, 3, 10, 100.0, 2.0);
        let mut all: Vec<u64> = (0..10)
            .flat_map(|k| (0..p.messages_of(k)).map(move |s| (k, s)))
            .map(|(k, s)| p.due_us(k, s))
            .collect();
        all.sort_unstable();
        assert_eq!(all.len(), 200);
        assert!(all.iter().all(|&t| t < 2_000_000));
        assert!(all.windows(2).all(|w| w[1] - w[0] == 10_000));
    }

    #[test]
    fn rooms_and_slots_are_inverse() {
        let p = plan(50, 4, 10, 1.0, 1.0);
        let by_room: usize = (0..4).map(|r| p.senders_in_room(r)).sum();
        assert_eq!(by_room, 10);
        for k in 0..10 {
            let r = p.role(k).room;
            assert!(p.role(k).sender);
            assert_eq!(p.sender_at(r, p.slot_of(k)), k);
            assert!(p.slot_of(k) < p.senders_in_room(r));
        }
        assert!(p.role(49).slow && p.role(48).slow && !p.role(47).slow);
    }

    #[test]
    fn connect_ramp() {
        let p = plan(10, 1, 1, 1.0, 1.0);
        assert_eq!(p.connect_offset(50), Duration::from_millis(500));
        let storm = Plan {
            connect_rate: 0.0,
            ..p
        };
        assert_eq!(storm.connect_offset(50), Duration::ZERO);
    }
}
