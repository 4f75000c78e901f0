//! One simulated client's life: connect on its ramp slot, read and count, send on schedule if
//! it is a sender, close at the stop.
//!
//! A client is one task on its thread's single-threaded runtime. A receiver is that one task,
//! reading and counting ([`receiver`](crate::receiver)). A sender splits its stream and writes
//! from a second task ([`sender`](crate::sender)), so a write waiting on a full socket never stops
//! it from reading; receivers do not split, which saves the split's lock on every read.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Protocol;
use crate::connection::{self, error_kind, normal_close, ConnectError, SharedSink, Ws};
use crate::phase::{self, Phase};
use crate::receiver::{finish, read_until, Receiver};
use crate::sender::send_loop;
use crate::setup::ThreadCtx;
use crate::stats::{ClientResult, Closed};

/// Runs client `i` from its connect time to its close, leaving its result on the thread.
pub async fn run_client(ctx: Rc<ThreadCtx>, i: usize, mut phase: watch::Receiver<Phase>) {
    let setup = ctx.setup.clone();
    let role = setup.plan.role(i);
    let mut result = ClientResult::new(i, role);

    let at = setup.connect_start + setup.plan.connect_offset(i);
    let connected = tokio::select! {
        _ = sleep_until(at) => {
            let started = Instant::now();
            let attempt = timeout(setup.connect_timeout, connection::connect(&setup, i)).await;
            let mut stats = ctx.stats.borrow_mut();
            stats.connect_done += 1;
            match attempt {
                Ok(Ok(ws)) => {
                    stats.connect_time.saturating_record(started.elapsed().as_micros() as u64);
                    stats.connected += 1;
                    if !role.slow {
                        stats.room_receivers[role.room] += 1;
                    }
                    Some(ws)
                }
                Ok(Err(ConnectError(kind))) => {
                    *stats.connect_errors.entry(kind).or_default() += 1;
                    None
                }
                Err(_elapsed) => {
                    *stats.connect_errors.entry("timeout".into()).or_default() += 1;
                    None
                }
            }
        }
        _ = phase::stopped(&mut phase) => {
            ctx.stats.borrow_mut().connect_done += 1;
            None
        }
    };
    if let Some(ws) = connected {
        result.connected = true;
        let mut rx = Receiver::new(&ctx, role, i, phase.clone());
        if role.slow {
            slow_reader(ws, &mut rx, &mut phase, setup.close_timeout).await;
        } else if role.sender && setup.protocol == Protocol::Socketio {
            // The reader answers the server's pings on the sender's half too.
            let (sink, mut stream) = ws.split();
            let sink = SharedSink::new(sink);
            let sender =
                tokio::task::spawn_local(send_loop(ctx.clone(), i, sink.clone(), phase.clone()));
            match read_until(
                &mut stream,
                &mut rx,
                phase::stopped(&mut phase),
                Some(&sink),
            )
            .await
            {
                None => rx.closed = finish(&mut stream, &mut rx, setup.close_timeout).await,
                Some(end) => {
                    rx.closed = end;
                    rx.closed_early = !phase::is_stopping(&phase);
                }
            }
            result.sent = sender.await.unwrap_or(0);
        } else if setup.protocol == Protocol::Socketio {
            // A receiver splits too, only to answer pings while it reads.
            let (sink, mut stream) = ws.split();
            let mut sink = SharedSink::new(sink);
            match read_until(
                &mut stream,
                &mut rx,
                phase::stopped(&mut phase),
                Some(&sink),
            )
            .await
            {
                None => {
                    rx.closed = match timeout(
                        setup.close_timeout,
                        sink.send(Message::Close(Some(normal_close()))),
                    )
                    .await
                    {
                        Ok(Ok(())) => finish(&mut stream, &mut rx, setup.close_timeout).await,
                        Ok(Err(e)) => Closed::Error(error_kind(&e)),
                        Err(_) => Closed::Timeout,
                    }
                }
                Some(end) => {
                    rx.closed = end;
                    rx.closed_early = !phase::is_stopping(&phase);
                }
            }
        } else if role.sender {
            let (sink, mut stream) = ws.split();
            let sender = tokio::task::spawn_local(send_loop(ctx.clone(), i, sink, phase.clone()));
            match read_until(&mut stream, &mut rx, phase::stopped(&mut phase), None).await {
                // Stop: the send task sends our close frame; read until the server's reply.
                None => rx.closed = finish(&mut stream, &mut rx, setup.close_timeout).await,
                Some(end) => {
                    rx.closed = end;
                    rx.closed_early = !phase::is_stopping(&phase);
                }
            }
            result.sent = sender.await.unwrap_or(0);
        } else {
            let mut ws = ws;
            match read_until(&mut ws, &mut rx, phase::stopped(&mut phase), None).await {
                None => {
                    rx.closed =
                        match timeout(setup.close_timeout, ws.close(Some(normal_close()))).await {
                            Ok(Ok(())) => finish(&mut ws, &mut rx, setup.close_timeout).await,
                            Ok(Err(e)) => Closed::Error(error_kind(&e)),
                            Err(_) => Closed::Timeout,
                        }
                }
                Some(end) => {
                    rx.closed = end;
                    rx.closed_early = !phase::is_stopping(&phase);
                }
            }
        }
        rx.into_result(&mut result);
    } else if role.sender {
        // Its schedule will never run: the drain need not wait for it.
        ctx.stats.borrow_mut().senders_done += 1;
    }
    ctx.results.borrow_mut().push(result);
}

/// A slow reader reads nothing until the run stops, then closes and reads what the server left
/// for it: lagged notices, a close code, or everything (if the server buffered it all).
async fn slow_reader(
    mut ws: Ws,
    rx: &mut Receiver<'_>,
    phase: &mut watch::Receiver<Phase>,
    close_timeout: Duration,
) {
    phase::stopped(phase).await;
    // Ask to close first; the server may already have closed or reset us, which the reads show.
    let _ = timeout(close_timeout, ws.close(Some(normal_close()))).await;
    rx.closed = finish(&mut ws, rx, close_timeout).await;
    rx.closed_early = !matches!(rx.closed, Closed::Code(1000) | Closed::Timeout);
}
