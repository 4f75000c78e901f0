//! How a poster learns its message's id when the engine assigns it later (Redis), for a wire
//! protocol whose client asks for it (a Socket.IO ack). Its own module because the wire that asks
//! (`crate::wire::socketio`), the member that posts and the engine that answers all name it.

use super::room::Room;
use crate::ws::{encode_frame, OpCode};

/// A text frame for the poster alone, in its wire's form `slot` (see
/// [`super::Encoded::wire_form`]), sent through the room when the id is known, so in its place
/// among the room's events. The chat does not know what the frame means; the wire that asked
/// does.
pub struct Reply {
    pub slot: usize,
    /// The frame's text before the id, and after it.
    pub before_id: String,
    pub after_id: String,
    /// The frame's text if the post failed.
    pub failed: String,
}

impl Reply {
    /// Sends the poster (connection `conn`) its id, or the failure (`None`).
    pub(super) fn send(&self, room: &Room, conn: u64, id: Option<u64>) {
        let text = match id {
            Some(id) => format!("{}{id}{}", self.before_id, self.after_id),
            None => self.failed.clone(),
        };
        room.send_wire_to(conn, self.slot, encode_frame(OpCode::Text, text.as_bytes()));
    }
}
