//! A sender's writing half: the fixed schedule turned into frames on the wire.
//!
//! It runs as a task of its own beside the client's reading, so a write waiting on a full socket
//! never stops the client from reading (the server might be waiting for us to read before it
//! reads again). It waits for the steady plan, then sends each message at its due time, or at
//! once when late, keeping the original due time in the stamp: latency is measured from the
//! schedule, never from when the swarm got round to it (see [`schedule`](crate::schedule)).

use std::rc::Rc;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::cli::Protocol;
use crate::connection::normal_close;
use crate::payload::{self, Stamp};
use crate::phase::{self, Phase};
use crate::setup::ThreadCtx;

/// Sends sender `k`'s schedule on `sink`, and closes when the run stops. Returns how many
/// messages it wrote.
pub async fn send_loop<K>(
    ctx: Rc<ThreadCtx>,
    k: usize,
    mut sink: K,
    mut phase: watch::Receiver<Phase>,
) -> u64
where
    K: Sink<Message, Error = WsError> + Unpin,
{
    let setup = ctx.setup.clone();
    let mut sent = 0;
    let Some(steady) = phase::steady(&mut phase).await else {
        return 0;
    };
    let owed = setup.owed_per_message(&steady, k);
    let mut text = String::with_capacity(setup.payload + 40);
    for seq in 0..setup.plan.messages_of(k) {
        let due_us = steady.start_us + setup.plan.due_us(k, seq);
        let at = tokio::time::Instant::from_std(setup.epoch + Duration::from_micros(due_us));
        tokio::select! {
            biased;
            // Ctrl-C or the stop: send no more; the coordinator drains what is in flight.
            _ = phase::sending_over(&mut phase) => break,
            _ = sleep_until(at) => {}
        }
        let lag = setup.now_us().saturating_sub(due_us);
        payload::write_text(
            &mut text,
            Stamp {
                run: setup.run,
                sender: k as u32,
                seq,
                due_us,
            },
            setup.payload,
        );
        let msg = match setup.protocol {
            Protocol::Chat => Message::text(payload::chat_request(&text)),
            Protocol::Raw => Message::text(text.clone()),
            Protocol::Socketio => Message::text(payload::socketio_request(&text)),
        };
        // Only the stop cancels a write under way: a message cut off by Ctrl-C could reach
        // receivers without being counted as sent.
        let ok = tokio::select! {
            biased;
            _ = phase::stopped(&mut phase) => false,
            r = sink.send(msg) => r.is_ok(),
        };
        if !ok {
            break;
        }
        sent += 1;
        let mut stats = ctx.stats.borrow_mut();
        stats.send_lag.saturating_record(lag.max(1));
        stats.sent += 1;
        stats.owed += owed;
    }
    ctx.stats.borrow_mut().senders_done += 1;
    phase::stopped(&mut phase).await;
    let _ = timeout(
        setup.close_timeout,
        sink.send(Message::Close(Some(normal_close()))),
    )
    .await;
    sent
}
