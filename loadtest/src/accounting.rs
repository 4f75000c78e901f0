//! One receiver's exact account of what it got from each sender of its room.
//!
//! The schedule says in advance how many messages each sender will send, so a receiver keeps one
//! bit per scheduled message: a set bit is a duplicate, a sequence number below the highest seen
//! is out of order, a number outside the schedule is unexpected. Loss is what is left unset at the
//! end, computed against what the senders really sent (a sender may die or be refused), so it is
//! exact rather than estimated from gaps. A bit per message keeps this cheap: 1,000 receivers of
//! 10,000 messages hold 1.25 MB.

use crate::schedule::Plan;

/// What one delivery was.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First arrival of a scheduled message: counts, and its latency is recorded.
    Fresh,
    /// Arrived before.
    Duplicate,
    /// Not a message of this room's schedule.
    Unexpected,
}

/// Per-sender state: which of its messages arrived, and the highest sequence number seen.
#[derive(Debug, Default)]
struct FromSender {
    seen: Vec<u64>,
    scheduled: u64,
    /// Highest sequence number seen plus one (0 = none yet).
    high: u64,
}

/// A receiver's counts.
#[derive(Debug, Default)]
pub struct Account {
    from: Vec<FromSender>,
    /// The room this receiver is in.
    room: usize,
    /// Distinct scheduled messages that arrived.
    pub delivered: u64,
    /// Arrivals of a message already counted.
    pub duplicates: u64,
    /// Messages that arrived after a later message of the same sender.
    pub out_of_order: u64,
    /// Stamped messages of this run that are not in this room's schedule.
    pub unexpected: u64,
}

impl Account {
    /// An empty account for a receiver in room `room`, sized by the schedule.
    pub fn new(plan: &Plan, room: usize) -> Account {
        let from = (0..plan.senders_in_room(room))
            .map(|slot| {
                let scheduled = plan.messages_of(plan.sender_at(room, slot));
                FromSender {
                    seen: vec![0; scheduled.div_ceil(64) as usize],
                    scheduled,
                    high: 0,
                }
            })
            .collect();
        Account {
            from,
            room,
            ..Account::default()
        }
    }

    /// Counts the arrival of `sender`'s message `seq`.
    pub fn record(&mut self, plan: &Plan, sender: usize, seq: u64) -> Verdict {
        if sender >= plan.senders || plan.role(sender).room != self.room {
            self.unexpected += 1;
            return Verdict::Unexpected;
        }
        let from = &mut self.from[plan.slot_of(sender)];
        if seq >= from.scheduled {
            self.unexpected += 1;
            return Verdict::Unexpected;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if from.seen[word] & bit != 0 {
            self.duplicates += 1;
            return Verdict::Duplicate;
        }
        from.seen[word] |= bit;
        self.delivered += 1;
        if seq < from.high {
            self.out_of_order += 1;
        } else {
            from.high = seq + 1;
        }
        Verdict::Fresh
    }
}

impl Account {
    /// The bit sets, one per sender slot of the room: bit `seq` is set if message `seq` arrived.
    /// Kept for the end, when the union over a room's receivers tells which messages reached
    /// anyone at all.
    pub fn into_seen(self) -> Vec<Vec<u64>> {
        self.from.into_iter().map(|f| f.seen).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::{Layout, RoomSizes};
    use std::time::Duration;

    fn plan() -> Plan {
        Plan {
            clients: 10,
            rooms: 2,
            senders: 4,
            slow_readers: 0,
            rate: 40.0,
            duration: Duration::from_secs(1),
            connect_rate: 0.0,
            layout: Layout::new(10, 2, 4, RoomSizes::Uniform).into(),
        }
    }

    #[test]
    fn counts_fresh_duplicate_out_of_order_and_unexpected() {
        let p = plan();
        // Room 1 holds senders 1 and 3, 10 messages each.
        let mut a = Account::new(&p, 1);
        assert_eq!(a.record(&p, 1, 0), Verdict::Fresh);
        assert_eq!(a.record(&p, 1, 2), Verdict::Fresh);
        assert_eq!(a.record(&p, 1, 1), Verdict::Fresh); // late
        assert_eq!(a.record(&p, 1, 2), Verdict::Duplicate);
        assert_eq!(a.record(&p, 3, 9), Verdict::Fresh);
        assert_eq!(a.record(&p, 3, 10), Verdict::Unexpected); // beyond the schedule
        assert_eq!(a.record(&p, 2, 0), Verdict::Unexpected); // another room's sender
        assert_eq!(a.record(&p, 4, 0), Verdict::Unexpected); // not a sender
        assert_eq!(
            (a.delivered, a.duplicates, a.out_of_order, a.unexpected),
            (4, 1, 1, 3)
        );
    }

    #[test]
    fn every_scheduled_message_counts_once() {
        let p = plan();
        let mut a = Account::new(&p, 0);
        for round in 0..2 {
            for k in [0, 2] {
                for seq in (0..p.messages_of(k)).rev() {
                    let v = a.record(&p, k, seq);
                    assert_eq!(
                        v,
                        if round == 0 {
                            Verdict::Fresh
                        } else {
                            Verdict::Duplicate
                        }
                    );
                }
            }
        }
        assert_eq!(a.delivered, 20);
        assert_eq!(a.duplicates, 20);
        // Reverse order: all but the first of each sender arrived after a later one.
        assert_eq!(a.out_of_order, 18);
    }
}
