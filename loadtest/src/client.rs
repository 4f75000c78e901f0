//! One simulated client: connect, read and count, send on schedule, close.
//!
//! A client is one task on its thread's single-threaded runtime. A receiver is that one task,
//! reading and counting. A sender splits its stream and writes from a second task, so a write
//! waiting on a full socket never stops it from reading (the server might be waiting for us to
//! read before it reads again); receivers do not split, which saves the split's lock on every
//! read.
//!
//! Reading stays cheap: tungstenite reads up to `--read-buffer` bytes per system call and hands
//! out the frames in it without copying; [`payload`](crate::payload) finds the stamp with a
//! byte search; counting is a bit set and a histogram record on the thread's own stats.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::accounting::{Account, Verdict};
use crate::cli::Protocol;
use crate::payload::{self, Incoming, Stamp};
use crate::schedule::{Plan, Role};
use crate::stats::{ClientResult, Closed, ThreadStats};

/// Where the run is; published by the coordinator through a `watch` channel to every client.
#[derive(Clone, Debug)]
pub enum Phase {
    /// Clients connect on their ramp schedule.
    Connecting,
    /// The steady phase is fixed: senders follow the schedule from its start.
    Steady(Arc<Steady>),
    /// Close everything and report.
    Stop,
}

/// What the coordinator decides once the connect ramp is over.
#[derive(Debug)]
pub struct Steady {
    /// Start of the steady phase, µs since the run's epoch.
    pub start_us: u64,
    /// Connected measured receivers per room: how many deliveries each message is owed.
    pub room_receivers: Vec<u64>,
}

/// Everything a client needs that is the same for the whole run.
#[derive(Debug)]
pub struct Setup {
    /// Roles and schedules.
    pub plan: Plan,
    /// This run's id, in every stamp.
    pub run: u32,
    /// The instant stamps count microseconds from.
    pub epoch: Instant,
    /// Start of the connect ramp.
    pub connect_start: tokio::time::Instant,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Text bytes per message.
    pub payload: usize,
    /// The server's resolved address.
    pub target: SocketAddr,
    /// URL given by the user.
    pub url: String,
    /// Room names' prefix (chat protocol).
    pub room_prefix: String,
    /// Local addresses to bind to, round-robin by client index; empty = let the kernel choose.
    pub source_addrs: Vec<IpAddr>,
    /// tungstenite settings (read buffer).
    pub ws_config: WebSocketConfig,
    /// Limit on one connect attempt.
    pub connect_timeout: Duration,
    /// Limit on the close handshake.
    pub close_timeout: Duration,
    /// Senders do not receive their own messages.
    pub no_echo: bool,
    /// `SO_RCVBUF` of slow readers (0 = kernel default).
    pub slow_reader_rcvbuf: u32,
}

impl Setup {
    /// The URL client `i` connects to.
    pub fn url_for(&self, i: usize) -> String {
        let room = self.plan.role(i).room;
        match self.protocol {
            Protocol::Chat => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!(
                    "{}{sep}room={}-{room}&name=c{i}",
                    self.url, self.room_prefix
                )
            }
            Protocol::Raw => self.url.replace("{room}", &room.to_string()),
        }
    }

    /// Microseconds since the run's epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Deliveries one message of sender `k` is owed.
    fn owed_per_message(&self, steady: &Steady, k: usize) -> u64 {
        let room = self.plan.role(k).room;
        let echo_excluded = u64::from(self.no_echo);
        steady.room_receivers[room].saturating_sub(echo_excluded)
    }
}

/// The state one worker thread's clients share. Only its own thread touches it.
pub struct ThreadCtx {
    /// Run-wide settings.
    pub setup: Arc<Setup>,
    /// This thread's counters.
    pub stats: RefCell<ThreadStats>,
    /// Finished clients.
    pub results: RefCell<Vec<ClientResult>>,
}

type Ws = WebSocketStream<TcpStream>;

/// Why a connect attempt failed, as a short kind for the tally and the advice in the report.
#[derive(Debug)]
pub struct ConnectError(pub String);

impl ConnectError {
    fn io(e: &io::Error) -> ConnectError {
        let kind = match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => "files",
            Some(libc::EADDRNOTAVAIL) | Some(libc::EADDRINUSE) => "ports",
            Some(libc::ENOMEM) | Some(libc::ENOBUFS) => "memory",
            Some(libc::ECONNREFUSED) => "refused",
            Some(libc::ECONNRESET) | Some(libc::EPIPE) => "reset",
            Some(libc::ETIMEDOUT) => "timeout",
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => "unreachable",
            _ => match e.kind() {
                io::ErrorKind::UnexpectedEof => "reset",
                _ => "io",
            },
        };
        ConnectError(kind.into())
    }

    fn ws(e: &WsError) -> ConnectError {
        match e {
            WsError::Io(e) => ConnectError::io(e),
            WsError::Http(resp) => ConnectError(format!("http_{}", resp.status().as_u16())),
            _ => ConnectError("handshake".into()),
        }
    }
}

/// Opens client `i`'s connection: a TCP socket bound to its source address if any, then the
/// WebSocket handshake on it.
pub async fn connect(setup: &Setup, i: usize) -> Result<Ws, ConnectError> {
    let io_err = |e: io::Error| ConnectError::io(&e);
    let socket = if setup.target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io_err)?;
    if !setup.source_addrs.is_empty() {
        let ip = setup.source_addrs[i % setup.source_addrs.len()];
        // Port 0: the kernel picks a free ephemeral port for this source address, so each
        // address brings its own ~28,000 ports.
        socket.bind(SocketAddr::new(ip, 0)).map_err(io_err)?;
    }
    if setup.plan.role(i).slow && setup.slow_reader_rcvbuf > 0 {
        // Set before connecting, so the window offered in the handshake is already small.
        socket
            .set_recv_buffer_size(setup.slow_reader_rcvbuf)
            .map_err(io_err)?;
    }
    let stream = socket.connect(setup.target).await.map_err(io_err)?;
    // Small messages must leave at once: Nagle would add up to 40 ms to a measured latency.
    stream.set_nodelay(true).map_err(io_err)?;
    let url = setup.url_for(i);
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(setup.ws_config))
            .await
            .map_err(|e| ConnectError::ws(&e))?;
    Ok(ws)
}

/// Resolves when the coordinator says stop.
async fn stopped(phase: &mut watch::Receiver<Phase>) {
    // An error means the coordinator is gone: stop too.
    let _ = phase.wait_for(|p| matches!(p, Phase::Stop)).await;
}

/// Whether the run is stopping: a connection that ends now was closed by us, not early.
fn is_stopping(phase: &watch::Receiver<Phase>) -> bool {
    matches!(*phase.borrow(), Phase::Stop)
}

/// Resolves with the steady plan, or `None` if the run stops first.
async fn steady(phase: &mut watch::Receiver<Phase>) -> Option<Arc<Steady>> {
    let p = phase
        .wait_for(|p| !matches!(p, Phase::Connecting))
        .await
        .ok()?;
    match &*p {
        Phase::Steady(s) => Some(s.clone()),
        _ => None,
    }
}

/// Runs client `i` from its connect time to its close, leaving its result on the thread.
pub async fn run_client(ctx: Rc<ThreadCtx>, i: usize, mut phase: watch::Receiver<Phase>) {
    let setup = ctx.setup.clone();
    let role = setup.plan.role(i);
    let mut result = ClientResult::new(i, role);

    let at = setup.connect_start + setup.plan.connect_offset(i);
    let connected = tokio::select! {
        _ = sleep_until(at) => {
            let started = Instant::now();
            let attempt = timeout(setup.connect_timeout, connect(&setup, i)).await;
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
        _ = stopped(&mut phase) => {
            ctx.stats.borrow_mut().connect_done += 1;
            None
        }
    };
    if let Some(ws) = connected {
        result.connected = true;
        let mut rx = Receiver::new(&ctx, role, i, phase.clone());
        if role.slow {
            slow_reader(ws, &mut rx, &mut phase).await;
        } else if role.sender {
            let (sink, mut stream) = ws.split();
            let sender = tokio::task::spawn_local(send_loop(ctx.clone(), i, sink, phase.clone()));
            match read_until(&mut stream, &mut rx, stopped(&mut phase)).await {
                // Stop: the send task sends our close frame; read until the server's reply.
                None => rx.closed = finish(&mut stream, &mut rx, setup.close_timeout).await,
                Some(end) => {
                    rx.closed = end;
                    rx.closed_early = !is_stopping(&phase);
                }
            }
            result.sent = sender.await.unwrap_or(0);
        } else {
            let mut ws = ws;
            match read_until(&mut ws, &mut rx, stopped(&mut phase)).await {
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
                    rx.closed_early = !is_stopping(&phase);
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
async fn slow_reader(mut ws: Ws, rx: &mut Receiver<'_>, phase: &mut watch::Receiver<Phase>) {
    stopped(phase).await;
    let close_timeout = rx.ctx.setup.close_timeout;
    // Ask to close first; the server may already have closed or reset us, which the reads show.
    let _ = timeout(close_timeout, ws.close(Some(normal_close()))).await;
    rx.closed = finish(&mut ws, rx, close_timeout).await;
    rx.closed_early = !matches!(rx.closed, Closed::Code(1000) | Closed::Timeout);
}

/// The close frame the swarm ends with: 1000, normal closure (RFC 6455 section 7.4.1).
fn normal_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
}

/// Reads until the server's close reply or `limit`.
async fn finish<S>(stream: &mut S, rx: &mut Receiver<'_>, limit: Duration) -> Closed
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    read_until(stream, rx, sleep(limit))
        .await
        .unwrap_or(Closed::Timeout)
}

/// Reads and counts frames until the stream ends (returns how) or `until` resolves (`None`).
async fn read_until<S>(
    stream: &mut S,
    rx: &mut Receiver<'_>,
    until: impl Future<Output = ()>,
) -> Option<Closed>
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    tokio::pin!(until);
    let mut close_code = None;
    loop {
        tokio::select! {
            // The socket first; tokio's cooperative budget still makes a busy socket yield now
            // and then, so `until` is seen within a few hundred frames.
            biased;
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => rx.on_frame(t.as_bytes()),
                Some(Ok(Message::Binary(b))) => rx.on_frame(&b),
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite queues the reply; keep polling so it is written.
                    close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {} // ping, pong: tungstenite answers pings itself
                Some(Err(WsError::ConnectionClosed)) | None => {
                    return Some(close_code.map_or(Closed::Eof, Closed::Code));
                }
                Some(Err(e)) => {
                    return Some(match close_code {
                        Some(code) => Closed::Code(code),
                        None => Closed::Error(error_kind(&e)),
                    });
                }
            },
            _ = &mut until => return None,
        }
    }
}

/// A short kind for a read error.
fn error_kind(e: &WsError) -> String {
    match e {
        WsError::Io(e) => ConnectError::io(e).0,
        WsError::Protocol(_) => "protocol".into(),
        WsError::Capacity(_) => "capacity".into(),
        WsError::Utf8(_) => "utf8".into(),
        WsError::AlreadyClosed | WsError::ConnectionClosed => "closed".into(),
        _ => "other".into(),
    }
}

/// The counting side of a client.
struct Receiver<'a> {
    /// The thread's shared state (settings, counters).
    ctx: &'a ThreadCtx,
    /// This client's room and role.
    role: Role,
    /// This client's index (its sender id, if it sends).
    index: usize,
    /// Created at the first stamped message: the plan is fixed by then, since senders only
    /// send once the steady plan is published.
    account: Option<Account>,
    /// Stamped messages of another run.
    foreign: u64,
    /// `lagged` notices received.
    lagged_notices: u64,
    /// Sum of their `missed`.
    lagged_missed: u64,
    /// `error` events received, by code.
    refused: std::collections::BTreeMap<String, u64>,
    /// How the connection ended.
    closed: Closed,
    /// Whether it ended before the swarm closed it.
    closed_early: bool,
    /// The run's phase, read when a refusal needs the steady plan.
    phase: watch::Receiver<Phase>,
}

impl<'a> Receiver<'a> {
    fn new(
        ctx: &'a ThreadCtx,
        role: Role,
        index: usize,
        phase: watch::Receiver<Phase>,
    ) -> Receiver<'a> {
        Receiver {
            ctx,
            role,
            index,
            account: None,
            foreign: 0,
            lagged_notices: 0,
            lagged_missed: 0,
            refused: Default::default(),
            closed: Closed::NotConnected,
            closed_early: false,
            phase,
        }
    }

    /// Counts one text (or binary) frame.
    fn on_frame(&mut self, frame: &[u8]) {
        let setup = &*self.ctx.setup;
        let incoming = match setup.protocol {
            Protocol::Raw => payload::parse_raw(frame),
            Protocol::Chat => match std::str::from_utf8(frame) {
                Ok(s) => payload::parse_chat(s),
                Err(_) => Incoming::Other,
            },
        };
        match incoming {
            Incoming::Stamp(stamp) => self.on_stamp(stamp),
            Incoming::Lagged(n) => {
                self.lagged_notices += 1;
                self.lagged_missed += n;
            }
            Incoming::Error(code) => self.on_refused(&code),
            Incoming::Other => {}
        }
    }

    fn on_stamp(&mut self, stamp: Stamp) {
        let setup = &*self.ctx.setup;
        if stamp.run != setup.run {
            self.foreign += 1;
            return;
        }
        let plan = &setup.plan;
        let account = self
            .account
            .get_or_insert_with(|| Account::new(plan, self.role.room));
        let verdict = account.record(plan, stamp.sender as usize, stamp.seq);
        if verdict == Verdict::Fresh && !self.role.slow {
            let now = setup.now_us();
            let mut stats = self.ctx.stats.borrow_mut();
            stats.delivered += 1;
            stats
                .latency
                .saturating_record(now.saturating_sub(stamp.due_us).max(1));
            stats.last_delivery_us = now;
        }
    }

    /// The server refused at least one of our messages: its receivers are owed at least one
    /// message less (the exact count is settled at the end, see `swarm::summarize`).
    fn on_refused(&mut self, code: &str) {
        *self.refused.entry(code.to_string()).or_default() += 1;
        if !self.role.sender {
            return;
        }
        let setup = &*self.ctx.setup;
        let phase = self.phase.borrow().clone();
        if let Phase::Steady(steady) = phase {
            let owed = setup.owed_per_message(&steady, self.index);
            let mut stats = self.ctx.stats.borrow_mut();
            stats.owed = stats.owed.saturating_sub(owed);
        }
    }

    fn into_result(self, r: &mut ClientResult) {
        if let Some(a) = self.account {
            r.delivered = a.delivered;
            r.duplicates = a.duplicates;
            r.out_of_order = a.out_of_order;
            r.unexpected = a.unexpected;
            r.seen = a.into_seen();
        }
        r.foreign = self.foreign;
        r.lagged_notices = self.lagged_notices;
        r.lagged_missed = self.lagged_missed;
        r.refusal_notices = self.refused;
        r.closed = self.closed;
        r.closed_early = self.closed_early;
    }
}

/// A sender's writing half: waits for the steady plan, then sends each message at its due time
/// (or at once when late), and closes when the run stops. Returns how many it wrote.
async fn send_loop<K>(
    ctx: Rc<ThreadCtx>,
    k: usize,
    mut sink: K,
    mut phase: watch::Receiver<Phase>,
) -> u64
where
    K: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    let setup = ctx.setup.clone();
    let mut sent = 0;
    let Some(steady) = steady(&mut phase).await else {
        return 0;
    };
    let owed = setup.owed_per_message(&steady, k);
    let mut text = String::with_capacity(setup.payload + 40);
    let mut stopped_early = false;
    for seq in 0..setup.plan.messages_of(k) {
        let due_us = steady.start_us + setup.plan.due_us(k, seq);
        let at = tokio::time::Instant::from_std(setup.epoch + Duration::from_micros(due_us));
        tokio::select! {
            biased;
            _ = stopped(&mut phase) => { stopped_early = true; break; }
            _ = sleep_until(at) => {}
        }
        if crate::swarm::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            // Ctrl-C: stop sending; the coordinator drains what is in flight.
            break;
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
        };
        let ok = tokio::select! {
            biased;
            _ = stopped(&mut phase) => { stopped_early = true; false }
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
    if !stopped_early {
        stopped(&mut phase).await;
    }
    let _ = timeout(
        setup.close_timeout,
        sink.send(Message::Close(Some(normal_close()))),
    )
    .await;
    sent
}
