//! `/echo`: every data message straight back. The endpoint the Autobahn|Testsuite talks to, so
//! the protocol code can be judged without the chat on top of it. Off unless `--echo` is given:
//! it accepts 16 MiB messages, which a public chat server has no reason to.
//!
//! All it decides is what to send back; pings, timeouts, budgets and the close handshake are the
//! connection layer's ([`crate::ws::conn`]), exactly as for the chat.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::state::{Shared, SlotGuard};
use crate::ws::serve::{self, Data, Dropped, Session};
use crate::ws::{Ending, OpCode, Outbox, WriteStats};

pub async fn run(io: TcpStream, already_read: Vec<u8>, slot: SlotGuard, shared: Arc<Shared>) {
    let mut ws = shared.websocket(
        io,
        &already_read,
        shared.config.echo_max_message_size,
        slot.id,
    );
    drop(already_read);
    tracing::debug!(conn = slot.id, "echo connection open");
    let mut echo = Echo { shared: &shared };
    let ending = serve::serve(&mut ws, &mut echo, &shared.echo_limits, &shared.shutdown).await;
    tracing::debug!(conn = slot.id, ?ending, "echo connection closed");
    Box::pin(shared.finish_websocket(&mut ws, ending, &shared.echo_limits)).await;
}

struct Echo<'a> {
    shared: &'a Shared,
}

impl Session for Echo<'_> {
    /// `/echo` hears from nobody but its peer.
    type Event = std::convert::Infallible;

    fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send {
        std::future::pending()
    }

    fn on_data(&mut self, data: Data, out: &mut Outbox) -> Option<Ending> {
        match data {
            Data::Text(text) => out.push_message(OpCode::Text, text.into_bytes().into()),
            Data::Binary(data) => out.push_message(OpCode::Binary, data),
        }
        None
    }

    fn on_event(&mut self, event: Self::Event, _: &mut Outbox) -> Option<Ending> {
        match event {}
    }

    fn on_dropped(&mut self, why: Dropped) {
        self.shared.metrics.count_drop(why);
    }

    fn on_written(&mut self, stats: WriteStats) {
        self.shared.metrics.count_writes(stats);
    }
}
