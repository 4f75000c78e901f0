//! The chat itself: rooms, presence, history and the JSON protocol. No frame bytes here beyond
//! "encode this event once" ([`protocol::ServerEvent::to_frame`]).

pub mod hub;
pub mod protocol;
pub mod room;
pub mod session;

pub use hub::{Hub, Membership, RoomLimit};
pub use room::{Delivery, Room, RoomConfig, Subscription};
