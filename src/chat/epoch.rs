//! Which life of a room a message id belongs to. Its own module because everything that speaks
//! of ids needs it (the room, the protocol, the engines, the parameters), and it needs nothing.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// Which life of a room a message id belongs to: a random value made when the room's state is
/// created in the engine (a memory room when it is created, a Redis room when its keys are). Ids
/// restart at 1 in a new life, so a client resuming with `since=` must also say which life its
/// cursor is from (`epoch=`); another epoch means its cursor means nothing here (`truncated`).
///
/// Shown as 16 hexadecimal digits, a string rather than a JSON number: JavaScript numbers hold
/// only 53 bits exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub u64);

impl Epoch {
    /// A fresh epoch. `RandomState` is seeded from the operating system's randomness, so two
    /// processes (or two lives of one room) do not meet; mixing in the time and a counter keeps
    /// two epochs of one process apart even where `RandomState` keys are reused per thread.
    pub fn random() -> Epoch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(now.as_nanos());
        Epoch(hasher.finish())
    }

    /// Parses the 1 to 16 hexadecimal digits of `epoch=` (or of the engine's stored value).
    pub fn parse(text: &str) -> Option<Epoch> {
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl serde::Serialize for Epoch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_print_as_sixteen_hex_digits_and_parse_back() {
        let epoch = Epoch(0xab);
        assert_eq!(epoch.to_string(), "00000000000000ab");
        assert_eq!(Epoch::parse(&epoch.to_string()), Some(epoch));
        assert_eq!(Epoch::parse("AB"), Some(epoch));
        for bad in ["", "g", "+1", "00000000000000000", " 1"] {
            assert_eq!(Epoch::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            serde_json::to_string(&epoch).unwrap(),
            "\"00000000000000ab\""
        );
    }

    #[test]
    fn fresh_epochs_differ() {
        let epochs: std::collections::HashSet<u64> = (0..100).map(|_| Epoch::random().0).collect();
        assert_eq!(epochs.len(), 100);
    }
}
