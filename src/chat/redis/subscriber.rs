//! The process's one pub/sub connection, kept alive across Redis restarts.
//!
//! One task owns the connection and does, in order, everything that touches it: it subscribes
//! and unsubscribes as rooms come and go ([`Control`]), feeds what arrives into the local rooms,
//! and, when the connection is lost (closed, or silent past a [`HEARTBEAT`]'s `PING`),
//! reconnects with [`Backoff`], resubscribes every room this
//! process feeds, and calls [`RedisEngine::reconnected`] (which backfills each room's gap from its
//! stream) *before* it reads any message of the new subscription. That order is what makes the
//! backfill exact: a message published after the resubscription waits in the connection's buffer
//! until the gap before it has been delivered, and [`super::Room::deliver`] drops by id whatever
//! the backfill already brought. So members see every message once, in id order.
//!
//! Rejected: letting the `redis` crate resubscribe by itself (it would not tell us when, so the
//! gap could not be backfilled before live messages resume); a task per room (thousands of
//! connections to Redis); polling the streams instead of pub/sub (a read per room per interval,
//! messages late by that interval).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::RedisEngine;

/// What the engine asks of the subscriber, in the order it decided it.
pub(super) enum Control {
    /// Subscribe to a channel; answered when Redis has confirmed, with the engine's count of
    /// lost connections then (which connection the subscription is on), or at once, with the
    /// reason, while the connection is down.
    Subscribe(String, oneshot::Sender<Result<u64, String>>),
    Unsubscribe(String),
}

/// The first wait before reconnecting: a restart on the same machine is back in about this.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between two attempts: bounds how long a process stays unhealthy after Redis
/// is back, at the price of one failed connection attempt per this interval while it is down.
const LONGEST_DELAY: Duration = Duration::from_secs(5);

/// How often the subscriber checks that Redis still answers on the pub/sub connection (a
/// `PING`): a connection can die without the kernel noticing for minutes (a network partition,
/// a frozen Redis), and a quiet subscription would never find out. One small command per
/// interval per process.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Longest wait for Redis to answer on the pub/sub connection (a `PING`, a subscription, a new
/// connection's set-up): past it the connection is taken as lost.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// Runs the subscription until the engine is gone. `connected` is the connection `connect`
/// opened (so a server whose Redis is down at start does not start at all).
pub(super) async fn run(
    client: redis::Client,
    connected: PubSub,
    engine: Weak<RedisEngine>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut next = Some(connected);
    let mut backoff = Backoff::new();
    loop {
        let pubsub = match next.take() {
            Some(pubsub) => pubsub,
            None => {
                let delay = backoff.next_delay();
                if !refuse_while_waiting(&mut control, delay).await {
                    return;
                }
                match tokio::time::timeout(ANSWER_WAIT, client.get_async_pubsub()).await {
                    Ok(Ok(pubsub)) => pubsub,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, ?delay, "redis pub/sub: reconnect failed");
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(?delay, "redis pub/sub: reconnect unanswered");
                        continue;
                    }
                }
            }
        };
        let reconnecting = backoff.attempts > 0;
        let (mut sink, mut stream) = pubsub.split();
        if reconnecting {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            if let Err(error) = resume(&engine, &mut sink).await {
                tracing::warn!(%error, "redis pub/sub: resubscribing failed; trying again");
                continue;
            }
            engine.metrics.reconnects.inc();
            tracing::info!(
                attempts = backoff.attempts,
                "redis pub/sub reconnected: rooms resubscribed and backfilled"
            );
        }
        backoff = Backoff::new();
        match engine.upgrade() {
            Some(engine) => engine.set_up(true),
            None => return,
        }
        if !serve(&engine, &mut sink, &mut stream, &mut control).await {
            return;
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.set_up(false);
        tracing::error!(
            "redis pub/sub connection lost: reconnecting; meanwhile /healthz says 503 and new \
             members are turned away"
        );
        // The first attempt waits too: an immediate one would only meet the same failure.
        backoff.attempts = 1;
    }
}

/// Resubscribes every room this process feeds, then lets the engine backfill their gaps. An
/// error means the new connection is no good either: the caller starts over.
async fn resume(engine: &Arc<RedisEngine>, sink: &mut PubSubSink) -> Result<(), String> {
    // One at a time: a `SUBSCRIBE` of many channels is answered once per channel, and each
    // confirmation is what says the channel is heard. On loopback a thousand rooms take
    // a few tens of milliseconds.
    for channel in engine.fed_channels() {
        tokio::time::timeout(ANSWER_WAIT, sink.subscribe(&channel))
            .await
            .map_err(|_| format!("subscribe {channel}: no answer in {ANSWER_WAIT:?}"))?
            .map_err(|e| format!("subscribe {channel}: {e}"))?;
    }
    engine.reconnected().await.map_err(|e| e.to_string())
}

/// Feeds messages, serves subscriptions and checks the connection every [`HEARTBEAT`], until
/// the connection ends or stops answering. Returns `false` when the engine is gone (its
/// control channel closed): the task ends.
async fn serve(
    engine: &Weak<RedisEngine>,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> bool {
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // Unbiased: a busy room's stream must not keep a joiner's subscription waiting.
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return true };
                let Some(engine) = engine.upgrade() else { return false };
                engine.feed(message.get_channel_name(), message.get_payload_bytes());
            }
            command = control.recv() => match command {
                Some(Control::Subscribe(channel, done)) => {
                    let Some(engine) = engine.upgrade() else { return false };
                    let Ok(result) = tokio::time::timeout(ANSWER_WAIT, sink.subscribe(&channel)).await
                    else {
                        let _ = done.send(Err(format!("no answer in {ANSWER_WAIT:?}")));
                        return true;
                    };
                    let _ = done.send(result.map(|()| engine.losses()).map_err(|e| e.to_string()));
                }
                Some(Control::Unsubscribe(channel)) => {
                    match tokio::time::timeout(ANSWER_WAIT, sink.unsubscribe(&channel)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::warn!(%channel, %error, "redis unsubscribe failed");
                        }
                        Err(_) => return true,
                    }
                }
                None => return false,
            },
            _ = heartbeat.tick() => {
                let pong = tokio::time::timeout(ANSWER_WAIT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    tracing::warn!("redis pub/sub: no answer to PING in {ANSWER_WAIT:?}");
                    return true;
                }
            }
        }
    }
}

/// Waits `delay`, answering subscriptions asked for meanwhile with the reason they cannot be
/// served (the joiner gets `503`), and forgetting unsubscriptions (the next connection
/// subscribes only the rooms fed then). Returns `false` when the engine is gone.
async fn refuse_while_waiting(
    control: &mut mpsc::UnboundedReceiver<Control>,
    delay: Duration,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            command = control.recv() => match command {
                Some(Control::Subscribe(_, done)) => {
                    let _ = done.send(Err("pub/sub connection down, reconnecting".into()));
                }
                Some(Control::Unsubscribe(_)) => {}
                None => return false,
            },
        }
    }
}

/// Delays between reconnection attempts: [`FIRST_DELAY`] doubling up to [`LONGEST_DELAY`], each
/// cut by a random part of up to a half, so that the processes of one deployment, all cut off by
/// the same restart, do not all knock again at the same instant.
struct Backoff {
    /// Attempts since the connection was last good.
    attempts: u32,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { attempts: 0 }
    }

    fn next_delay(&mut self) -> Duration {
        let doubled = FIRST_DELAY.saturating_mul(1 << self.attempts.min(16).saturating_sub(1));
        self.attempts += 1;
        let ceiling = doubled.min(LONGEST_DELAY);
        // Jitter from the same source as epochs: random enough, and no dependency for it.
        let random = super::Epoch::random().0;
        let cut = ceiling.mul_f64((random % 1024) as f64 / 2048.0);
        ceiling - cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_at_most_half_cut() {
        let mut backoff = Backoff::new();
        backoff.attempts = 1;
        let mut ceiling = FIRST_DELAY;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(LONGEST_DELAY);
        }
        assert!(backoff.next_delay() >= LONGEST_DELAY / 2);
    }

    #[test]
    fn delays_of_one_step_differ() {
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|_| {
                let mut backoff = Backoff::new();
                backoff.attempts = 5;
                backoff.next_delay()
            })
            .collect();
        assert!(delays.len() > 1, "jittered");
    }
}
