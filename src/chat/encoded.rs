//! The encodings of one room event: every form in which some receiver may need it, each made at
//! most once, on first need, and shared by every receiver that needs that form.
//!
//! Today two forms: the plain frame, made by the room when the event happens (every receiver can
//! take it), and the permessage-deflate frame (RSV1), made by the first receiver whose connection
//! negotiated compression. With no context takeover (see [`crate::ws::extensions`]) a message
//! compresses to the same bytes whoever receives it, and server frames are not masked, so one
//! compressed frame serves every such receiver: a broadcast to 10,000 members is compressed once,
//! not 10,000 times, and not at all in a room where nobody negotiated it. Another wire protocol's
//! frame for the same event is kept here too, beside these, made the same way (Socket.IO's, one
//! per namespace: see [`Encoded::wire_form`]).
//!
//! Rejected: compressing in the room, under its lock, whether or not anyone wants it (the lock
//! is what every member's send waits on); compressing per receiver (what servers with context
//! takeover must do, at one compressor and one compression per connection).

use std::sync::OnceLock;

use bytes::Bytes;

use crate::metrics::Metrics;
use crate::ws::deflate::deflate_frame;

/// One room event's frames. Shared by reference count through the room's channel, so a channel
/// slot holds one pointer whatever forms exist.
#[derive(Debug)]
pub struct Encoded {
    /// The event as one whole, unmasked server frame: what a receiver without compression gets.
    plain: Bytes,
    /// The same event compressed (a frame with RSV1), made once by the first receiver that
    /// negotiated permessage-deflate. `Some(None)`: tried, and not worth it (under
    /// `--deflate-threshold`, or no smaller); such receivers get `plain`.
    deflated: OnceLock<Option<Bytes>>,
    /// Forms another wire protocol makes from `plain` (Socket.IO's, one per namespace), each
    /// made by the first receiver that needs it and shared by the rest.
    wire: [OnceLock<Bytes>; WIRE_FORMS],
}

/// How many forms of another wire protocol an event can carry ([`Encoded::wire_form`]).
pub const WIRE_FORMS: usize = 2;

impl Encoded {
    pub fn new(plain: Bytes) -> Self {
        Encoded {
            plain,
            deflated: OnceLock::new(),
            wire: Default::default(),
        }
    }

    /// A frame for one receiver of wire form `slot` alone, made already (a Socket.IO ack sent
    /// through the room, `--redis`): that receiver takes it from [`Self::wire_form`] as it is.
    pub fn for_wire(slot: usize, frame: Bytes) -> Self {
        let event = Encoded::new(frame.clone());
        let _ = event.wire[slot].set(frame);
        event
    }

    /// The plain frame.
    pub fn plain(&self) -> &Bytes {
        &self.plain
    }

    /// Form `slot` (< [`WIRE_FORMS`]) of another wire protocol, made from the plain frame by
    /// `make` the first time any receiver asks, then shared: a broadcast to 10,000 Socket.IO
    /// members is rewrapped once, not 10,000 times. The chat does not know what the forms are;
    /// the wire module that asks does (`crate::wire::socketio::frame`).
    pub fn wire_form(&self, slot: usize, make: impl FnOnce(&Bytes) -> Bytes) -> Bytes {
        self.wire[slot].get_or_init(|| make(&self.plain)).clone()
    }

    /// The frame for a receiver: compressed if `deflate` (its connection negotiated it and
    /// accepts our full window) and compression pays, otherwise plain. The first such receiver
    /// compresses, in its own task; one that asks meanwhile waits for that compression (a few
    /// microseconds) rather than making its own: `OnceLock`, not a lock-free "whoever finishes
    /// first", because the count of compressions is the property worth keeping.
    pub fn frame_for(&self, deflate: bool, threshold: usize, metrics: &Metrics) -> Bytes {
        if !deflate {
            return self.plain.clone();
        }
        let deflated = self.deflated.get_or_init(|| {
            let made = deflate_frame(&self.plain, threshold);
            if let Some((_, before, after)) = &made {
                metrics.count_compression(*before, *after);
            }
            made.map(|(frame, _, _)| frame)
        });
        deflated.as_ref().unwrap_or(&self.plain).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{encode_frame, OpCode};

    #[test]
    fn compressed_once_whoever_asks_and_only_when_asked() {
        let metrics = Metrics::new();
        let json = br#"{"type":"message","id":1,"from":"alice","text":"hello hello hello hello"}"#;
        let event = Encoded::new(encode_frame(OpCode::Text, json));
        assert_eq!(event.frame_for(false, 0, &metrics), *event.plain());
        assert_eq!(metrics.deflate_compressions.get(), 0, "nobody asked");
        let first = event.frame_for(true, 0, &metrics);
        assert_ne!(first, *event.plain());
        assert_eq!(first[0] & 0x40, 0x40, "RSV1");
        for _ in 0..10 {
            assert_eq!(event.frame_for(true, 0, &metrics), first);
        }
        assert_eq!(metrics.deflate_compressions.get(), 1);
        assert_eq!(metrics.deflate_bytes_before.get(), json.len() as u64);
        assert_eq!(
            metrics.deflate_bytes_after.get(),
            first.len() as u64 - 2,
            "payload after, without the 2-byte header"
        );
    }

    #[test]
    fn under_the_threshold_everyone_gets_the_plain_frame() {
        let metrics = Metrics::new();
        let event = Encoded::new(encode_frame(OpCode::Text, b"{\"type\":\"typing\"}"));
        assert_eq!(event.frame_for(true, 64, &metrics), *event.plain());
        assert_eq!(metrics.deflate_compressions.get(), 0);
    }
}
