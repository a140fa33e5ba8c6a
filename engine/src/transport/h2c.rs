//! A minimal HTTP/2 client (plaintext, prior knowledge) for unary gRPC calls: the transport under
//! the stress hot path. It exists for what general clients cannot be told to do cheaply:
//! frames queued by many calls in one scheduler tick go out in one write, and the server's PING
//! frames are acknowledged late, riding on a later write instead of costing one.
//!
//! Why the PINGs matter: grpc-go servers (etcd) estimate bandwidth-delay by sending a PING each
//! time data arrives and no PING is outstanding. At a fixed rate of small requests that is one
//! PING per request, and acknowledging each at once costs the client a wake-up, a read and a
//! write per request — a third of its CPU at `etcdctl check perf` rates. RFC 9113 §6.7 requires
//! the acknowledgement but sets no deadline; this client sends it after the data of the next
//! write at least [`PONG_RIDE`] after the PING, or alone after [`PONG_LATEST`]. The only effect on
//! the server is a longer round-trip sample, so its receive window stays at the default.
//!
//! Flow control, SETTINGS, CONTINUATION, RST_STREAM, GOAWAY and the server's
//! MAX_CONCURRENT_STREAMS are honoured; server push is disabled.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// A PING's acknowledgement rides on the first write this long after the PING.
pub const PONG_RIDE: Duration = Duration::from_millis(20);
/// A PING's acknowledgement is written alone when nothing else was written for this long.
pub const PONG_LATEST: Duration = Duration::from_millis(40);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// RST_STREAM / GOAWAY codes used here.
const CANCEL: u32 = 0x8;
const REFUSED_STREAM: u32 = 0x7;
/// The receive window per stream and for the connection, advertised at the start.
const STREAM_WINDOW: u32 = 4 << 20;
const CONN_WINDOW: u32 = 64 << 20;
/// The largest frame the server may send.
const MAX_FRAME_IN: u32 = 1 << 20;
const DEFAULT_WINDOW: i64 = 65_535;

/// Why a call failed below gRPC.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The request never reached the server's application: the connection was already closed
    /// or going away, or the server refused the stream. Safe to retry elsewhere.
    #[error("HTTP/2 request not sent: {0}")]
    NotSent(String),
    /// The server reset the stream with this HTTP/2 error code.
    #[error("HTTP/2 stream reset by the server (error code {0:#x})")]
    Reset(u32),
    /// The connection failed or was closed while the call was in flight.
    #[error("HTTP/2 connection lost: {0}")]
    Closed(String),
}

/// What a unary call got back.
#[derive(Debug, Default)]
pub struct Reply {
    /// The `:status` of the response headers.
    pub status: Option<u16>,
    /// `grpc-status`, from the headers (trailers-only answer) or the trailers.
    pub grpc_status: Option<i32>,
    /// `grpc-message`, still percent-encoded.
    pub grpc_message: Option<String>,
    /// The response body: the length-prefixed gRPC message.
    pub data: Vec<u8>,
}

/// The HPACK block of a gRPC request's headers, built once per method and connection. Every field
/// is a literal without indexing (or a static-table entry), so one block can be sent any number
/// of times without touching the server's dynamic table.
pub fn grpc_request_headers(authority: &str, path: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + path.len() + authority.len());
    b.push(0x80 | 3); // :method: POST
    b.push(0x80 | 6); // :scheme: http
    literal_indexed_name(&mut b, 4, path.as_bytes()); // :path
    literal_indexed_name(&mut b, 1, authority.as_bytes()); // :authority
    literal_indexed_name(&mut b, 31, b"application/grpc"); // content-type
    literal_indexed_name(&mut b, 58, b"scen"); // user-agent
    b.push(0); // te: trailers (not in the static table)
    string(&mut b, b"te");
    string(&mut b, b"trailers");
    b
}

fn integer(b: &mut Vec<u8>, prefix_bits: u8, first: u8, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        b.push(first | v as u8);
        return;
    }
    b.push(first | max as u8);
    v -= max;
    while v >= 128 {
        b.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    b.push(v as u8);
}

fn string(b: &mut Vec<u8>, s: &[u8]) {
    integer(b, 7, 0, s.len());
    b.extend_from_slice(s);
}

fn literal_indexed_name(b: &mut Vec<u8>, index: usize, value: &[u8]) {
    integer(b, 4, 0, index);
    string(b, value);
}

fn frame_header(b: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    b.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    b.push(kind);
    b.push(flags);
    b.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

fn window_update(b: &mut Vec<u8>, stream: u32, increment: u32) {
    frame_header(b, 4, WINDOW_UPDATE, 0, stream);
    b.extend_from_slice(&increment.to_be_bytes());
}

/// One call's state, from HEADERS sent to the end of the response.
#[derive(Default)]
struct Stream {
    waker: Option<Waker>,
    reply: Reply,
    /// Set when the response ended (or failed).
    outcome: Option<Result<(), CallError>>,
    /// What the server lets this stream send.
    send_window: i64,
    /// Bytes received and not yet handed back with a WINDOW_UPDATE.
    recv_unacked: u32,
}

/// A request body still waiting for flow-control window.
struct Pending {
    stream: u32,
    body: Vec<u8>,
    sent: usize,
}

/// A header block being received across HEADERS and CONTINUATION frames.
struct Partial {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

struct State {
    /// Frames waiting for the writer.
    out: Vec<u8>,
    /// PING acknowledgements waiting to ride on a write, and when the oldest arrived.
    pongs: Vec<u8>,
    pong_since: Option<Instant>,
    streams: HashMap<u32, Stream>,
    next_id: u32,
    max_streams: usize,
    /// Calls waiting for a stream below MAX_CONCURRENT_STREAMS.
    waiting: VecDeque<Waker>,
    pending: VecDeque<Pending>,
    conn_send_window: i64,
    initial_send_window: i64,
    max_frame_out: usize,
    conn_recv_unacked: u32,
    decoder: loona_hpack::Decoder<'static>,
    partial: Option<Partial>,
    /// Set once the connection can take no new streams (closed, failed or going away).
    closed: Option<String>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes the writer: frames were queued, or a PING arrived.
    notify: Notify,
}

/// One HTTP/2 connection; clones share it. The reader and writer tasks stop when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

struct Tasks([AbortHandle; 2]);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Channel {
    /// Starts HTTP/2 on a connected socket: the preface, SETTINGS (no push, 4 MiB stream
    /// windows, 1 MiB frames) and a 64 MiB connection window, then the reader and writer tasks
    /// on the current runtime.
    pub async fn start(tcp: tokio::net::TcpStream) -> std::io::Result<Channel> {
        let mut hello = PREFACE.to_vec();
        frame_header(&mut hello, 18, SETTINGS, 0, 0);
        for (id, v) in [(0x2u16, 0u32), (0x4, STREAM_WINDOW), (0x5, MAX_FRAME_IN)] {
            hello.extend_from_slice(&id.to_be_bytes());
            hello.extend_from_slice(&v.to_be_bytes());
        }
        window_update(&mut hello, 0, CONN_WINDOW - DEFAULT_WINDOW as u32);
        let (read, mut write) = tcp.into_split();
        write.write_all(&hello).await?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new()),
            notify: Notify::new(),
        });
        let reader = tokio::spawn(read_loop(inner.clone(), read)).abort_handle();
        let writer = tokio::spawn(write_loop(inner.clone(), write)).abort_handle();
        Ok(Channel {
            inner,
            _tasks: Arc::new(Tasks([reader, writer])),
        })
    }

    /// Whether the connection can take no new calls (closed, failed or going away).
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed.is_some()
    }

    /// Sends one unary call — `headers` from [`grpc_request_headers`], `body` a length-prefixed
    /// gRPC message — and waits for the whole response. Dropping the future cancels the stream.
    pub async fn unary(&self, headers: &[u8], body: &[u8]) -> Result<Reply, CallError> {
        let id = poll_fn(|cx| self.inner.open(cx, headers, body)).await?;
        let mut guard = Cancel {
            inner: &self.inner,
            id,
            armed: true,
        };
        let reply = poll_fn(|cx| self.inner.poll_reply(cx, id)).await;
        guard.armed = false;
        reply
    }
}

/// Cancels a stream whose call was dropped before its response ended (a timeout).
struct Cancel<'a> {
    inner: &'a Inner,
    id: u32,
    armed: bool,
}

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut s = self.inner.lock();
        if s.streams.remove(&self.id).is_some() {
            s.pending.retain(|p| p.stream != self.id);
            frame_header(&mut s.out, 4, RST_STREAM, 0, self.id);
            s.out.extend_from_slice(&CANCEL.to_be_bytes());
            let waiting: Vec<Waker> = s.waiting.drain(..).collect();
            drop(s);
            self.inner.notify.notify_one();
            waiting.into_iter().for_each(Waker::wake);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a stream and queues its HEADERS and DATA, or waits for a free stream.
    fn open(&self, cx: &mut Context, headers: &[u8], body: &[u8]) -> Poll<Result<u32, CallError>> {
        let mut s = self.lock();
        if let Some(why) = &s.closed {
            return Poll::Ready(Err(CallError::NotSent(why.clone())));
        }
        if s.streams.len() >= s.max_streams {
            s.waiting.push_back(cx.waker().clone());
            return Poll::Pending;
        }
        let id = s.next_id;
        if id > 0x7fff_ffff {
            s.closed = Some("stream identifiers exhausted".into());
            return Poll::Ready(Err(CallError::NotSent(
                "stream identifiers exhausted".into(),
            )));
        }
        s.next_id += 2;
        frame_header(&mut s.out, headers.len(), HEADERS, END_HEADERS, id);
        s.out.extend_from_slice(headers);
        let window = s.initial_send_window;
        s.streams.insert(
            id,
            Stream {
                send_window: window,
                ..Stream::default()
            },
        );
        let fits = s.pending.is_empty()
            && body.len() <= s.max_frame_out
            && (body.len() as i64) <= window.min(s.conn_send_window);
        if fits {
            frame_header(&mut s.out, body.len(), DATA, END_STREAM, id);
            s.out.extend_from_slice(body);
            s.conn_send_window -= body.len() as i64;
            s.streams.get_mut(&id).expect("inserted").send_window -= body.len() as i64;
        } else {
            s.pending.push_back(Pending {
                stream: id,
                body: body.to_vec(),
                sent: 0,
            });
            s.pump();
        }
        drop(s);
        self.notify.notify_one();
        Poll::Ready(Ok(id))
    }

    fn poll_reply(&self, cx: &mut Context, id: u32) -> Poll<Result<Reply, CallError>> {
        let mut s = self.lock();
        let Some(st) = s.streams.get_mut(&id) else {
            return Poll::Ready(Err(CallError::Closed("stream lost".into())));
        };
        if st.outcome.is_none() {
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let st = s.streams.remove(&id).expect("present");
        s.pending.retain(|p| p.stream != id);
        // Every waiter, not one: a waiter may have been dropped (timed out) since it queued.
        let waiting: Vec<Waker> = s.waiting.drain(..).collect();
        drop(s);
        waiting.into_iter().for_each(Waker::wake);
        Poll::Ready(st.outcome.expect("checked").map(|()| st.reply))
    }
}

impl State {
    /// Moves request data that flow control now allows from `pending` to `out`.
    fn pump(&mut self) {
        let mut i = 0;
        while i < self.pending.len() && self.conn_send_window > 0 {
            let p = &mut self.pending[i];
            let Some(st) = self.streams.get_mut(&p.stream) else {
                self.pending.remove(i);
                continue;
            };
            let left = p.body.len() - p.sent;
            let room = (self.conn_send_window.min(st.send_window).max(0) as usize)
                .min(self.max_frame_out)
                .min(left);
            if room == 0 && left > 0 {
                i += 1;
                continue;
            }
            let last = room == left;
            frame_header(
                &mut self.out,
                room,
                DATA,
                if last { END_STREAM } else { 0 },
                p.stream,
            );
            self.out.extend_from_slice(&p.body[p.sent..p.sent + room]);
            p.sent += room;
            st.send_window -= room as i64;
            self.conn_send_window -= room as i64;
            if last {
                self.pending.remove(i);
            }
        }
    }

    /// Ends stream `id` with `outcome`, keeping the wakers to call once the lock is released.
    fn finish(&mut self, id: u32, outcome: Result<(), CallError>, wake: &mut Vec<Waker>) {
        if let Some(st) = self.streams.get_mut(&id) {
            if st.outcome.is_none() {
                st.outcome = Some(outcome);
                wake.extend(st.waker.take());
            }
        }
    }

    /// The connection is unusable: every open call fails, every waiting call is woken to fail.
    fn fail(&mut self, why: &str, wake: &mut Vec<Waker>) {
        self.closed.get_or_insert_with(|| why.to_string());
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.finish(id, Err(CallError::Closed(why.to_string())), wake);
        }
        wake.extend(self.waiting.drain(..));
        self.pending.clear();
    }

    /// A connection's state before the server said anything.
    fn new() -> State {
        State {
            out: Vec::with_capacity(64 << 10),
            pongs: Vec::new(),
            pong_since: None,
            streams: HashMap::new(),
            next_id: 1,
            max_streams: usize::MAX,
            waiting: VecDeque::new(),
            pending: VecDeque::new(),
            conn_send_window: DEFAULT_WINDOW,
            initial_send_window: DEFAULT_WINDOW,
            max_frame_out: 16_384,
            conn_recv_unacked: 0,
            decoder: loona_hpack::Decoder::new(),
            partial: None,
            closed: None,
        }
    }

    /// Takes every whole frame at the front of `buf` (the bytes read so far) and handles it; an
    /// error is fatal to the connection. Whatever the bytes, this returns: it is fuzzed.
    fn on_bytes(&mut self, buf: &mut bytes::BytesMut, wake: &mut Vec<Waker>) -> Result<(), String> {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if len > MAX_FRAME_IN as usize {
                return Err(format!("a {len}-byte frame, over the advertised maximum"));
            }
            if buf.len() < 9 + len {
                buf.reserve(9 + len - buf.len());
                break;
            }
            let frame = buf.split_to(9 + len);
            let id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
            self.on_frame(frame[3], frame[4], id, &frame[9..], wake)?;
        }
        Ok(())
    }

    /// Handles one frame from the server; an error is fatal to the connection.
    fn on_frame(
        &mut self,
        kind: u8,
        flags: u8,
        id: u32,
        payload: &[u8],
        wake: &mut Vec<Waker>,
    ) -> Result<(), String> {
        if self.partial.is_some() && kind != CONTINUATION {
            return Err("a header block was interrupted".into());
        }
        match kind {
            DATA => {
                let len = payload.len() as u32;
                self.conn_recv_unacked += len;
                if self.conn_recv_unacked >= CONN_WINDOW / 2 {
                    window_update(&mut self.out, 0, self.conn_recv_unacked);
                    self.conn_recv_unacked = 0;
                }
                let body = unpad(flags, payload)?;
                if let Some(st) = self.streams.get_mut(&id) {
                    st.reply.data.extend_from_slice(body);
                    st.recv_unacked += len;
                    if flags & END_STREAM == 0 && st.recv_unacked >= STREAM_WINDOW / 2 {
                        window_update(&mut self.out, id, st.recv_unacked);
                        st.recv_unacked = 0;
                    }
                }
                if flags & END_STREAM != 0 {
                    self.finish(id, Ok(()), wake);
                }
            }
            HEADERS => {
                let mut block = unpad(flags, payload)?;
                if flags & PRIORITY != 0 {
                    block = block.get(5..).ok_or("a short HEADERS frame")?;
                }
                self.partial = Some(Partial {
                    stream: id,
                    end_stream: flags & END_STREAM != 0,
                    block: block.to_vec(),
                });
                if flags & END_HEADERS != 0 {
                    self.end_headers(wake)?;
                }
            }
            CONTINUATION => {
                let p = self
                    .partial
                    .as_mut()
                    .filter(|p| p.stream == id)
                    .ok_or("CONTINUATION without HEADERS")?;
                p.block.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    self.end_headers(wake)?;
                }
            }
            RST_STREAM => {
                let code = u32::from_be_bytes(payload.try_into().map_err(|_| "bad RST_STREAM")?);
                let e = if code == REFUSED_STREAM {
                    CallError::NotSent("the server refused the stream".into())
                } else {
                    CallError::Reset(code)
                };
                self.finish(id, Err(e), wake);
            }
            SETTINGS if flags & ACK == 0 => {
                if id != 0 || payload.len() % 6 != 0 {
                    return Err("a malformed SETTINGS frame".into());
                }
                for pair in payload.chunks_exact(6) {
                    let v = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
                    match u16::from_be_bytes([pair[0], pair[1]]) {
                        0x3 => self.max_streams = v as usize,
                        // RFC 9113 §6.5.2: windows stop at 2³¹−1, frames are 16 KiB..16 MiB.
                        0x4 if v > 0x7fff_ffff => {
                            return Err(format!("SETTINGS_INITIAL_WINDOW_SIZE {v} is above 2^31-1"))
                        }
                        0x5 if !(16_384..=16_777_215).contains(&v) => {
                            return Err(format!(
                                "SETTINGS_MAX_FRAME_SIZE {v} is outside 16384..16777215"
                            ))
                        }
                        0x4 => {
                            let delta = i64::from(v) - self.initial_send_window;
                            self.initial_send_window = i64::from(v);
                            for st in self.streams.values_mut() {
                                st.send_window += delta;
                            }
                        }
                        0x5 => self.max_frame_out = v as usize,
                        _ => {}
                    }
                }
                frame_header(&mut self.out, 0, SETTINGS, ACK, 0);
                self.pump();
                wake.extend(self.waiting.drain(..));
            }
            PING if flags & ACK == 0 => {
                frame_header(&mut self.pongs, 8, PING, ACK, 0);
                self.pongs.extend_from_slice(payload);
                self.pong_since.get_or_insert_with(Instant::now);
            }
            GOAWAY => {
                let last = payload
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
                    .ok_or("a short GOAWAY frame")?;
                let code = payload
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                let why = format!(
                    "the server is closing the connection (GOAWAY {}{})",
                    error_code_name(code),
                    match String::from_utf8_lossy(payload.get(8..).unwrap_or_default()) {
                        d if d.is_empty() => String::new(),
                        d => format!(": {d}"),
                    }
                );
                self.closed.get_or_insert_with(|| why.clone());
                let late: Vec<u32> = self.streams.keys().copied().filter(|i| *i > last).collect();
                for i in late {
                    self.finish(i, Err(CallError::NotSent(why.clone())), wake);
                }
                wake.extend(self.waiting.drain(..));
            }
            WINDOW_UPDATE => {
                let inc = payload
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
                    .ok_or("a short WINDOW_UPDATE frame")?;
                if id == 0 {
                    self.conn_send_window += i64::from(inc);
                    if self.conn_send_window > 0x7fff_ffff {
                        return Err("WINDOW_UPDATE past 2^31-1 (a flow-control error)".into());
                    }
                } else if let Some(st) = self.streams.get_mut(&id) {
                    st.send_window += i64::from(inc);
                }
                if !self.pending.is_empty() {
                    self.pump();
                }
            }
            PUSH_PROMISE => return Err("PUSH_PROMISE after push was disabled".into()),
            _ => {} // PRIORITY, acknowledgements, extensions
        }
        Ok(())
    }

    /// Decodes a complete header block (always: it updates the HPACK table even for a stream
    /// already cancelled) and applies it to its stream.
    fn end_headers(&mut self, wake: &mut Vec<Waker>) -> Result<(), String> {
        let p = self.partial.take().expect("a header block in progress");
        let mut found = (None, None, None);
        self.decoder
            .decode_with_cb(&p.block, |name, value| match &*name {
                b":status" => {
                    found.0 = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                }
                b"grpc-status" => {
                    found.1 = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                }
                b"grpc-message" => found.2 = Some(String::from_utf8_lossy(&value).into_owned()),
                _ => {}
            })
            .map_err(|e| format!("undecodable headers: {e:?}"))?;
        if let Some(st) = self.streams.get_mut(&p.stream) {
            let r = &mut st.reply;
            r.status = r.status.or(found.0);
            r.grpc_status = found.1.or(r.grpc_status);
            r.grpc_message = found.2.or(r.grpc_message.take());
        }
        if p.end_stream {
            self.finish(p.stream, Ok(()), wake);
        }
        Ok(())
    }
}

/// An HTTP/2 error code's name (RFC 9113 §7).
fn error_code_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("error code {code}"), |n| (*n).to_string())
}

/// The payload of a DATA or HEADERS frame without its padding.
fn unpad(flags: u8, payload: &[u8]) -> Result<&[u8], String> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let pad = *payload.first().ok_or("a short padded frame")? as usize;
    payload
        .get(1..payload.len().saturating_sub(pad))
        .filter(|_| pad < payload.len())
        .ok_or_else(|| "padding longer than the frame".into())
}

async fn read_loop(inner: Arc<Inner>, mut read: OwnedReadHalf) {
    let mut buf = bytes::BytesMut::with_capacity(256 << 10);
    let mut wake = Vec::new();
    let why = loop {
        if buf.capacity() - buf.len() < 16 << 10 {
            buf.reserve(64 << 10);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => break "the server closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("reading: {e}"),
        }
        let mut s = inner.lock();
        let failed = s.on_bytes(&mut buf, &mut wake).err();
        let poke = !s.out.is_empty() || s.pong_since.is_some();
        if let Some(e) = &failed {
            s.fail(&format!("protocol error: {e}"), &mut wake);
        }
        drop(s);
        if poke || failed.is_some() {
            inner.notify.notify_one();
        }
        for w in wake.drain(..) {
            w.wake();
        }
        if failed.is_some() {
            return;
        }
    };
    inner.lock().fail(&why, &mut wake);
    inner.notify.notify_one();
    for w in wake {
        w.wake();
    }
}

async fn write_loop(inner: Arc<Inner>, mut write: OwnedWriteHalf) {
    let mut buf = Vec::with_capacity(64 << 10);
    loop {
        let wait = {
            let mut s = inner.lock();
            let now = Instant::now();
            let ride = s.pong_since.is_some_and(|t| now >= t + PONG_RIDE);
            let alone = s.pong_since.is_some_and(|t| now >= t + PONG_LATEST);
            if !s.out.is_empty() || alone {
                std::mem::swap(&mut buf, &mut s.out);
                // (`alone` implies `ride`: PONG_LATEST is the later of the two.)
                if ride {
                    // After the data: the server's next PING waits for data after this ack.
                    buf.append(&mut s.pongs);
                    s.pong_since = None;
                }
                None
            } else if s.closed.is_some() && s.streams.is_empty() {
                return;
            } else {
                Some(s.pong_since.map(|t| t + PONG_LATEST))
            }
        };
        match wait {
            None => {
                if let Err(e) = write.write_all(&buf).await {
                    let mut wake = Vec::new();
                    inner.lock().fail(&format!("writing: {e}"), &mut wake);
                    for w in wake {
                        w.wake();
                    }
                    return;
                }
                buf.clear();
            }
            Some(None) => inner.notify.notified().await,
            Some(Some(at)) => {
                tokio::select! {
                    _ = inner.notify.notified() => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_decode_to_a_grpc_request() {
        let block = grpc_request_headers("127.0.0.1:2379", "/etcdserverpb.KV/Put");
        let mut d = loona_hpack::Decoder::new();
        // Decoding twice proves the block leaves the server's dynamic table alone.
        for _ in 0..2 {
            let h: Vec<(String, String)> = d
                .decode(&block)
                .expect("valid HPACK")
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect();
            let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
            assert_eq!(get(":method"), Some("POST"));
            assert_eq!(get(":scheme"), Some("http"));
            assert_eq!(get(":path"), Some("/etcdserverpb.KV/Put"));
            assert_eq!(get(":authority"), Some("127.0.0.1:2379"));
            assert_eq!(get("content-type"), Some("application/grpc"));
            assert_eq!(get("te"), Some("trailers"));
        }
    }

    #[test]
    fn long_values_use_multi_byte_integers() {
        let path = format!("/{}", "p".repeat(300));
        let block = grpc_request_headers("h:1", &path);
        let h = loona_hpack::Decoder::new()
            .decode(&block)
            .expect("valid HPACK");
        assert!(h.iter().any(|(n, v)| n == b":path" && v == path.as_bytes()));
    }

    /// A scripted HTTP/2 server on loopback, to drive the client through what etcd rarely does
    /// on demand (small windows, GOAWAY, resets) and to see exactly what the client writes.
    struct Peer {
        sock: tokio::net::TcpStream,
        enc: loona_hpack::Encoder<'static>,
    }

    type Frame = (u8, u8, u32, Vec<u8>);

    impl Peer {
        /// A connected client and its peer; the peer has read the preface and the client has
        /// acknowledged the peer's `settings`.
        async fn pair(settings: &[(u16, u32)]) -> (Channel, Peer) {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let (tcp, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
            let (tcp, sock) = (tcp.unwrap(), accepted.unwrap().0);
            // No Nagle on either side: small frames must not wait for delayed ACKs.
            tcp.set_nodelay(true).unwrap();
            sock.set_nodelay(true).unwrap();
            let ch = Channel::start(tcp).await.unwrap();
            let mut p = Peer {
                sock,
                enc: loona_hpack::Encoder::new(),
            };
            let mut preface = [0u8; 24];
            p.sock.read_exact(&mut preface).await.unwrap();
            assert_eq!(&preface[..], PREFACE);
            let mut payload = Vec::new();
            for (id, v) in settings {
                payload.extend_from_slice(&id.to_be_bytes());
                payload.extend_from_slice(&v.to_be_bytes());
            }
            p.send(SETTINGS, 0, 0, &payload).await;
            loop {
                let (kind, flags, _, _) = p.frame().await;
                if kind == SETTINGS && flags & ACK != 0 {
                    break;
                }
            }
            (ch, p)
        }

        async fn frame(&mut self) -> Frame {
            let mut h = [0u8; 9];
            self.sock.read_exact(&mut h).await.unwrap();
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let mut payload = vec![0; len];
            self.sock.read_exact(&mut payload).await.unwrap();
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            (h[3], h[4], id, payload)
        }

        /// The next frame that is not SETTINGS or WINDOW_UPDATE.
        async fn call_frame(&mut self) -> Frame {
            loop {
                let f = self.frame().await;
                if f.0 != SETTINGS && f.0 != WINDOW_UPDATE {
                    return f;
                }
            }
        }

        async fn send(&mut self, kind: u8, flags: u8, id: u32, payload: &[u8]) {
            let mut b = Vec::new();
            frame_header(&mut b, payload.len(), kind, flags, id);
            b.extend_from_slice(payload);
            self.sock.write_all(&b).await.unwrap();
        }

        /// A whole gRPC answer: headers, one message, trailers with `code`.
        async fn answer(&mut self, id: u32, message: &[u8], code: &str) {
            let h = self.enc.encode([
                (&b":status"[..], &b"200"[..]),
                (b"content-type", b"application/grpc"),
            ]);
            self.send(HEADERS, END_HEADERS, id, &h).await;
            self.send(DATA, 0, id, message).await;
            let t = self.enc.encode([
                (&b"grpc-status"[..], code.as_bytes()),
                (b"grpc-message", b""),
            ]);
            self.send(HEADERS, END_HEADERS | END_STREAM, id, &t).await;
        }
    }

    fn headers() -> Vec<u8> {
        grpc_request_headers("peer", "/test.Svc/Call")
    }

    /// A call with `body` running on its own task.
    fn spawn_call(
        ch: &Channel,
        body: Vec<u8>,
    ) -> tokio::task::JoinHandle<Result<Reply, CallError>> {
        let ch = ch.clone();
        tokio::spawn(async move { ch.unary(&headers(), &body).await })
    }

    #[tokio::test]
    async fn a_body_larger_than_the_window_waits_for_window_updates() {
        let (ch, mut peer) = Peer::pair(&[(0x4, 10)]).await;
        let body: Vec<u8> = (0..25u8).collect();
        let call = spawn_call(&ch, body.clone());
        let (kind, _, id, _) = peer.call_frame().await;
        assert_eq!((kind, id), (HEADERS, 1));
        let (kind, flags, _, first) = peer.call_frame().await;
        assert_eq!((kind, flags & END_STREAM), (DATA, 0));
        assert_eq!(first, body[..10]);
        // Nothing more until the window opens.
        let early = tokio::time::timeout(Duration::from_millis(100), peer.call_frame()).await;
        assert!(early.is_err(), "sent past the window: {early:?}");
        let mut inc = Vec::new();
        window_update(&mut inc, 1, 100);
        peer.sock.write_all(&inc).await.unwrap();
        let (kind, flags, _, rest) = peer.call_frame().await;
        assert_eq!((kind, flags & END_STREAM), (DATA, END_STREAM));
        assert_eq!(rest, body[10..]);
        peer.answer(1, b"\0\0\0\0\x01z", "0").await;
        let reply = call.await.unwrap().expect("answered");
        assert_eq!(reply.status, Some(200));
        assert_eq!(reply.grpc_status, Some(0));
        assert_eq!(reply.data, b"\0\0\0\0\x01z");
    }

    #[tokio::test]
    async fn pings_are_acknowledged_after_later_data_not_at_once() {
        let (ch, mut peer) = Peer::pair(&[]).await;
        let first = spawn_call(&ch, b"a".to_vec());
        peer.call_frame().await;
        peer.call_frame().await;
        let pinged = Instant::now();
        peer.send(PING, 0, 0, b"bdp-ping").await;
        peer.answer(1, b"\0\0\0\0\0", "0").await;
        first.await.unwrap().expect("answered");
        // A call right away goes out without the acknowledgement...
        let second = spawn_call(&ch, b"b".to_vec());
        assert_eq!(peer.call_frame().await.0, HEADERS);
        assert_eq!(peer.call_frame().await.0, DATA);
        // ...which comes later, alone, with the PING's payload.
        let (kind, flags, _, payload) = peer.call_frame().await;
        assert!(
            pinged.elapsed() >= PONG_RIDE,
            "acknowledged after {:?}",
            pinged.elapsed()
        );
        assert_eq!((kind, flags, &payload[..]), (PING, ACK, &b"bdp-ping"[..]));
        peer.answer(3, b"\0\0\0\0\0", "0").await;
        second.await.unwrap().expect("answered");
    }

    #[tokio::test]
    async fn goaway_fails_unprocessed_calls_as_not_sent_and_refuses_new_ones() {
        let (ch, mut peer) = Peer::pair(&[]).await;
        let calls: Vec<_> = (0..2).map(|_| spawn_call(&ch, b"x".to_vec())).collect();
        for _ in 0..4 {
            peer.call_frame().await;
        }
        let mut goaway = 1u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&0u32.to_be_bytes());
        peer.send(GOAWAY, 0, 0, &goaway).await;
        peer.answer(1, b"\0\0\0\0\0", "0").await;
        let mut results = Vec::new();
        for c in calls {
            results.push(c.await.unwrap());
        }
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(
            matches!(results[1], Err(CallError::NotSent(_))),
            "{:?}",
            results[1]
        );
        assert!(matches!(
            ch.unary(&headers(), b"y").await,
            Err(CallError::NotSent(_))
        ));
    }

    #[tokio::test]
    async fn resets_and_errors_reach_the_caller() {
        let (ch, mut peer) = Peer::pair(&[]).await;
        let call = spawn_call(&ch, b"x".to_vec());
        peer.call_frame().await;
        peer.call_frame().await;
        peer.send(RST_STREAM, 0, 1, &0x2u32.to_be_bytes()).await;
        assert!(matches!(call.await.unwrap(), Err(CallError::Reset(2))));
        // A trailers-only answer: the status comes in the only header block.
        let call = spawn_call(&ch, b"x".to_vec());
        peer.call_frame().await;
        peer.call_frame().await;
        let h = peer.enc.encode([
            (&b":status"[..], &b"200"[..]),
            (b"grpc-status", b"9"),
            (b"grpc-message", b"etcdserver%3A no"),
        ]);
        peer.send(HEADERS, END_HEADERS | END_STREAM, 3, &h).await;
        let reply = call.await.unwrap().expect("a reply");
        assert_eq!(reply.grpc_status, Some(9));
        assert_eq!(reply.grpc_message.as_deref(), Some("etcdserver%3A no"));
        // The connection dies: calls in flight fail, new ones are not sent.
        let call = spawn_call(&ch, b"x".to_vec());
        peer.call_frame().await;
        drop(peer);
        assert!(matches!(call.await.unwrap(), Err(CallError::Closed(_))));
        assert!(matches!(
            ch.unary(&headers(), b"y").await,
            Err(CallError::NotSent(_))
        ));
    }

    #[tokio::test]
    async fn a_dropped_call_resets_its_stream() {
        let (ch, mut peer) = Peer::pair(&[]).await;
        let r = tokio::time::timeout(Duration::from_millis(50), ch.unary(&headers(), b"x")).await;
        assert!(r.is_err());
        peer.call_frame().await;
        peer.call_frame().await;
        let (kind, _, id, payload) = peer.call_frame().await;
        assert_eq!(
            (kind, id, &payload[..]),
            (RST_STREAM, 1, &CANCEL.to_be_bytes()[..])
        );
        // The late answer to the cancelled stream is read and dropped; the next call works.
        peer.answer(1, b"\0\0\0\0\0", "0").await;
        let call = spawn_call(&ch, b"x".to_vec());
        peer.call_frame().await;
        peer.call_frame().await;
        peer.answer(3, b"\0\0\0\0\x01k", "0").await;
        assert_eq!(
            call.await.unwrap().expect("answered").data,
            b"\0\0\0\0\x01k"
        );
    }

    #[test]
    fn padding_is_stripped_and_checked() {
        assert_eq!(unpad(PADDED, &[2, b'a', b'b', 0, 0]).unwrap(), b"ab");
        assert_eq!(unpad(0, b"ab").unwrap(), b"ab");
        assert!(unpad(PADDED, &[5, b'a']).is_err());
    }

    /// One frame as bytes.
    fn frame_bytes(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        frame_header(&mut b, payload.len(), kind, flags, id);
        b.extend_from_slice(payload);
        b
    }

    fn feed(s: &mut State, bytes: &[u8]) -> Result<(), String> {
        let mut buf = bytes::BytesMut::from(bytes);
        s.on_bytes(&mut buf, &mut Vec::new())
    }

    #[test]
    fn settings_out_of_range_and_goaway_codes_are_handled() {
        let setting = |id: u16, v: u32| {
            let mut p = id.to_be_bytes().to_vec();
            p.extend_from_slice(&v.to_be_bytes());
            frame_bytes(SETTINGS, 0, 0, &p)
        };
        let e = feed(&mut State::new(), &setting(0x5, 0)).unwrap_err();
        assert!(e.contains("MAX_FRAME_SIZE 0"), "{e}");
        let e = feed(&mut State::new(), &setting(0x4, 0x8000_0000)).unwrap_err();
        assert!(e.contains("INITIAL_WINDOW_SIZE"), "{e}");
        let mut s = State::new();
        feed(&mut s, &setting(0x5, 1 << 20)).unwrap();
        assert_eq!(s.max_frame_out, 1 << 20);
        let mut goaway = 0u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&11u32.to_be_bytes());
        goaway.extend_from_slice(b"too many pings");
        let mut s = State::new();
        feed(&mut s, &frame_bytes(GOAWAY, 0, 0, &goaway)).unwrap();
        let why = s.closed.unwrap();
        assert!(why.contains("ENHANCE_YOUR_CALM: too many pings"), "{why}");
        let e = feed(
            &mut State::new(),
            &frame_bytes(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
        )
        .unwrap_err();
        assert!(e.contains("2^31-1"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any byte stream from a server: the decoder answers or fails the connection, never panics.
        #[test]
        fn the_frame_decoder_survives_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut s = State::new();
            let _ = feed(&mut s, &bytes);
        }

        /// Well-framed but arbitrary frames (any type, flags, stream and payload), in any order.
        #[test]
        fn the_frame_decoder_survives_any_frames(
            frames in proptest::collection::vec(
                (0u8..12, proptest::prelude::any::<u8>(), 0u32..4, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)),
                0..24,
            )
        ) {
            let mut s = State::new();
            for (kind, flags, id, payload) in frames {
                if feed(&mut s, &frame_bytes(kind, flags, id, &payload)).is_err() {
                    break;
                }
            }
        }
    }
}
