//! The chat itself: rooms, presence, history and the JSON protocol. No frame bytes here beyond
//! "encode this event once" ([`protocol::ServerEvent::to_frame`]).

pub mod channel;
pub mod encoded;
pub mod engine;
pub mod epoch;
pub mod hub;
pub mod member;
pub mod params;
pub mod protocol;
pub mod redis;
pub mod room;
pub mod session;
pub mod text;

pub use channel::{Audience, Delivery, Subscription};
pub use encoded::Encoded;
pub use engine::Engine;
pub use epoch::Epoch;
pub use hub::{Hub, Membership, Reservation, RoomLimit};
pub use params::Params;
pub use room::{Room, RoomConfig};
