//! Who is in which room: the room sizes of `--room-sizes`, and which clients fill them.
//!
//! Real chat is not one big room, nor rooms of equal size: a few rooms are big and most are
//! small (direct messages, small groups, one room per document). `uniform` spreads clients
//! evenly (client `i` in room `i mod rooms`, the swarm's first model); `zipf:S` sizes room `r`
//! (from 0) in proportion to `1 / (r + 1)^S`, with every room at least one client. Senders are
//! spread the same way, in proportion to room size, so a big room also carries more traffic.
//!
//! Sizes are exact integers that add up to `--clients` (largest remainder: each room gets the
//! whole part of its share, the seats left over go to the largest fractions), so a run is
//! reproducible and the accounting can size each receiver's bit sets in advance. The table of
//! rooms is built once, before the threads start, and only read afterwards: a look-up per
//! delivery, no lock. Computing a client's room from its index alone, as `uniform` can, was
//! rejected for Zipf: it needs the cumulative sizes anyway, and a binary search per delivery
//! costs more than a table of four bytes per client.

use std::str::FromStr;

/// How clients are spread over the rooms (`--room-sizes`).
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub enum RoomSizes {
    /// Every room the same size (the first `clients mod rooms` rooms one more).
    #[default]
    Uniform,
    /// Room `r` in proportion to `1 / (r + 1)^S`: a few big rooms and a long tail of small ones.
    Zipf(f64),
}

impl FromStr for RoomSizes {
    type Err = String;

    /// `uniform` or `zipf:S` with `0 <= S <= 10` (S = 1 is the classic Zipf law).
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "uniform" {
            return Ok(RoomSizes::Uniform);
        }
        let exponent = s
            .strip_prefix("zipf:")
            .ok_or_else(|| format!("expected `uniform` or `zipf:S` (e.g. zipf:1.0), got {s:?}"))?;
        match exponent.parse::<f64>() {
            Ok(e) if (0.0..=10.0).contains(&e) => Ok(RoomSizes::Zipf(e)),
            _ => Err(format!(
                "the Zipf exponent must be a number from 0 to 10, got {exponent:?}"
            )),
        }
    }
}

impl std::fmt::Display for RoomSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoomSizes::Uniform => f.write_str("uniform"),
            RoomSizes::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// The rooms of a run: each client's room, each room's senders in order.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Room of each client.
    room_of: Vec<u32>,
    /// Clients per room.
    sizes: Vec<u32>,
    /// Each room's senders, in sender order: a sender's position here is its slot.
    senders_in: Vec<Vec<u32>>,
    /// Position of each sender among its room's senders.
    slot_of: Vec<u32>,
    /// The room with the most clients (the first of them, if several are as large).
    largest: usize,
}

impl Layout {
    /// Spreads `clients` over `rooms` rooms as `sizes` says; clients `0..senders` send.
    /// Needs `1 <= rooms <= clients` and `senders <= clients` (what `Args::validate` checks).
    pub fn new(clients: usize, rooms: usize, senders: usize, sizes: RoomSizes) -> Layout {
        let (room_sizes, sender_quota) = match sizes {
            RoomSizes::Uniform => (even(clients, rooms), even(senders, rooms)),
            RoomSizes::Zipf(s) => {
                let room_sizes = zipf(clients, rooms, s);
                let quota = in_proportion(senders, &room_sizes);
                (room_sizes, quota)
            }
        };
        let receiver_quota: Vec<usize> = room_sizes
            .iter()
            .zip(&sender_quota)
            .map(|(size, s)| size - s)
            .collect();
        // Senders first, then the rest, each dealt one per room in turn: with equal sizes this
        // is exactly client `i` in room `i mod rooms`.
        let (mut room_of, next) = deal(&sender_quota, 0);
        room_of.extend(deal(&receiver_quota, next).0);
        let mut senders_in = vec![Vec::new(); rooms];
        let mut slot_of = Vec::with_capacity(senders);
        for (k, &room) in room_of[..senders].iter().enumerate() {
            let list = &mut senders_in[room as usize];
            slot_of.push(list.len() as u32);
            list.push(k as u32);
        }
        let max = room_sizes.iter().max().copied().unwrap_or(0);
        Layout {
            room_of,
            sizes: room_sizes.iter().map(|&n| n as u32).collect(),
            senders_in,
            slot_of,
            largest: room_sizes.iter().position(|&n| n == max).unwrap_or(0),
        }
    }

    /// The room of client `i`.
    pub fn room_of(&self, i: usize) -> usize {
        self.room_of[i] as usize
    }

    /// Clients in room `r`.
    pub fn size(&self, r: usize) -> usize {
        self.sizes[r] as usize
    }

    /// The room with the most clients (the first of them, if several are as large).
    pub fn largest(&self) -> usize {
        self.largest
    }

    /// Senders in room `r`.
    pub fn senders_in_room(&self, r: usize) -> usize {
        self.senders_in[r].len()
    }

    /// The position of sender `k` among its room's senders, so a receiver keeps a dense vector
    /// indexed by it.
    pub fn slot_of(&self, k: usize) -> usize {
        self.slot_of[k] as usize
    }

    /// The sender at position `slot` of room `r`.
    pub fn sender_at(&self, r: usize, slot: usize) -> usize {
        self.senders_in[r][slot] as usize
    }
}

/// `total` split over `parts` as evenly as integers allow, the first ones one more.
fn even(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|r| total / parts + usize::from(r < total % parts))
        .collect()
}

/// Zipf sizes: room `r` in proportion to `1 / (r + 1)^s`, at least one client each, summing to
/// `clients`. Rooms whose share would be under one client get exactly one (they are the tail,
/// since the weights fall), and the others share what is left in proportion to their weights.
fn zipf(clients: usize, rooms: usize, s: f64) -> Vec<usize> {
    let weights: Vec<f64> = (1..=rooms).map(|r| (r as f64).powf(-s)).collect();
    let mut head = rooms;
    let mut head_weight: f64 = weights.iter().sum();
    // Move the smallest room of the head to the tail while its share is under one client.
    while head > 1 {
        let seats = (clients - (rooms - head)) as f64;
        if seats * weights[head - 1] / head_weight >= 1.0 {
            break;
        }
        head -= 1;
        head_weight -= weights[head];
    }
    let seats = clients - (rooms - head);
    let shares: Vec<f64> = weights[..head]
        .iter()
        .map(|w| seats as f64 * w / head_weight)
        .collect();
    let mut sizes = largest_remainder(seats, &shares);
    sizes.resize(rooms, 1);
    sizes
}

/// `total` split over rooms in proportion to `sizes`, exactly (integer largest remainder). A room
/// never gets more than its size, since `total <= sum(sizes)`.
fn in_proportion(total: usize, sizes: &[usize]) -> Vec<usize> {
    let sum: usize = sizes.iter().sum();
    let mut out: Vec<usize> = sizes.iter().map(|&n| total * n / sum).collect();
    let given: usize = out.iter().sum();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    // Largest remainder first; among equals, the lower room number.
    by_remainder.sort_by_key(|&r| std::cmp::Reverse(total * sizes[r] % sum));
    for &r in by_remainder.iter().take(total - given) {
        out[r] += 1;
    }
    out
}

/// Whole parts of `shares` (which add up to about `total`, at least 1 each), then the seats left
/// over to the largest fractions, so the result adds up to exactly `total`.
fn largest_remainder(total: usize, shares: &[f64]) -> Vec<usize> {
    let mut out: Vec<usize> = shares
        .iter()
        .map(|&x| (x.floor() as usize).max(1))
        .collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (shares[a] - shares[a].floor(), shares[b] - shares[b].floor());
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let mut given: usize = out.iter().sum();
    // Rounding can leave the sum off by a seat or so either way: give to the largest fractions,
    // take from the largest rooms (never below one).
    for &r in order.iter().cycle() {
        if given >= total {
            break;
        }
        out[r] += 1;
        given += 1;
    }
    let mut r = 0;
    while given > total && r < out.len() {
        if out[r] > 1 {
            out[r] -= 1;
            given -= 1;
        } else {
            r += 1;
        }
    }
    out
}

/// Deals `quota[r]` clients to each room `r`, one per room per round, in room order from room
/// `start`; returns the rooms in dealing order and the room after the last one dealt to.
fn deal(quota: &[usize], start: usize) -> (Vec<u32>, usize) {
    let rooms = quota.len();
    let mut left = quota.to_vec();
    let mut round: Vec<usize> = (start..rooms)
        .chain(0..start)
        .filter(|&r| left[r] > 0)
        .collect();
    let mut out = Vec::with_capacity(quota.iter().sum());
    let mut next = start;
    while !round.is_empty() {
        for &r in &round {
            out.push(r as u32);
            left[r] -= 1;
            next = (r + 1) % rooms;
        }
        round.retain(|&r| left[r] > 0);
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes_of(l: &Layout, rooms: usize) -> Vec<usize> {
        (0..rooms).map(|r| l.size(r)).collect()
    }

    #[test]
    fn uniform_is_client_i_in_room_i_mod_rooms() {
        for (clients, rooms, senders) in [(10, 3, 4), (300, 5, 10), (7, 7, 0), (50, 4, 50)] {
            let l = Layout::new(clients, rooms, senders, RoomSizes::Uniform);
            for i in 0..clients {
                assert_eq!(
                    l.room_of(i),
                    i % rooms,
                    "{clients} {rooms} {senders}: client {i}"
                );
            }
            for k in 0..senders {
                assert_eq!(l.slot_of(k), k / rooms);
                assert_eq!(l.sender_at(k % rooms, k / rooms), k);
            }
        }
    }

    #[test]
    fn zipf_sizes_add_up_fall_and_never_leave_a_room_empty() {
        for (clients, rooms, s) in [
            (10_000, 1_000, 1.0),
            (10_000, 10_000, 1.0),
            (5_000, 100, 0.5),
            (300, 5, 2.0),
            (1_000, 1, 1.0),
            (100, 60, 0.0),
        ] {
            let l = Layout::new(clients, rooms, 0, RoomSizes::Zipf(s));
            let sizes = sizes_of(&l, rooms);
            assert_eq!(
                sizes.iter().sum::<usize>(),
                clients,
                "{clients} {rooms} {s}"
            );
            assert!(sizes.iter().all(|&n| n >= 1), "{sizes:?}");
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
            let counted = (0..clients).fold(vec![0; rooms], |mut c, i| {
                c[l.room_of(i)] += 1;
                c
            });
            assert_eq!(counted, sizes);
        }
    }

    #[test]
    fn zipf_follows_the_law() {
        // 10,000 clients in 100 rooms at S = 1: room r holds about 10,000 / (H_100 (r + 1)),
        // H_100 = 5.187; none is pushed to the floor of one.
        let l = Layout::new(10_000, 100, 0, RoomSizes::Zipf(1.0));
        assert_eq!(l.size(0), 1928);
        assert_eq!(l.size(1), 964);
        assert_eq!(l.size(9), 193);
        assert_eq!(l.size(99), 19);
        assert_eq!(l.largest(), 0);
        // With ten times the rooms the tail is at the floor: 1,000 rooms, most of one client.
        let l = Layout::new(2_000, 1_000, 0, RoomSizes::Zipf(1.0));
        assert_eq!(l.size(999), 1);
        assert!(l.size(0) > 200, "{}", l.size(0));
        // S = 0 is uniform in size.
        let l = Layout::new(100, 4, 0, RoomSizes::Zipf(0.0));
        assert_eq!(sizes_of(&l, 4), [25, 25, 25, 25]);
    }

    #[test]
    fn senders_follow_the_room_sizes() {
        let l = Layout::new(10_000, 100, 100, RoomSizes::Zipf(1.0));
        let per_room: Vec<usize> = (0..100).map(|r| l.senders_in_room(r)).collect();
        assert_eq!(per_room.iter().sum::<usize>(), 100);
        // Room 0 holds 19.28% of the clients, so 19 of the 100 senders.
        assert_eq!(per_room[0], 19);
        assert!(per_room.windows(2).all(|w| w[0] >= w[1]), "{per_room:?}");
        for k in 0..100 {
            let r = l.room_of(k);
            assert_eq!(l.sender_at(r, l.slot_of(k)), k);
        }
        // Fewer senders than rooms: the biggest rooms get them, no room more than its size.
        let l = Layout::new(10, 5, 10, RoomSizes::Zipf(1.0));
        for r in 0..5 {
            assert_eq!(l.senders_in_room(r), l.size(r));
        }
    }

    #[test]
    fn parses_the_flag() {
        assert_eq!("uniform".parse(), Ok(RoomSizes::Uniform));
        assert_eq!("zipf:1.2".parse(), Ok(RoomSizes::Zipf(1.2)));
        assert!("zipf:".parse::<RoomSizes>().is_err());
        assert!("zipf:-1".parse::<RoomSizes>().is_err());
        assert!("pareto".parse::<RoomSizes>().is_err());
        assert_eq!(RoomSizes::Zipf(1.0).to_string(), "zipf:1");
    }
}
