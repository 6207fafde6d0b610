//! The shared WebSocket of one tunnel, used by its two copy threads, and the readiness wait.
//!
//! Invariants (tested in tests/e2e: bulk both ways at once over wss, idle CPU):
//! - the WebSocket (and the TLS session in it) sits behind one mutex, so the bytes of two frames
//!   never interleave (binary data frames are written by `wire::Wire` under the same lock, and
//!   what tungstenite writes waits behind them; `Wire` reads them too, and hands every other
//!   frame to tungstenite whole); its socket is non-blocking, so a holder of the lock never
//!   blocks;
//! - a thread takes the lock for one attempt (read a frame, or write and flush one); on
//!   `WouldBlock` it lets go and sleeps in `poll(2)` outside the lock until the socket is ready;
//! - no polling and no spinning: an idle tunnel sleeps in the kernel (waking only to ping, every
//!   `--ping` seconds), and a byte goes out the moment it arrives;
//! - every message is one local read, written and flushed before the next read: buffers stay
//!   bounded (one frame out, `MAX_FRAME` in) and a slow side slows the other; with the
//!   `base64` encoding a read is at most 3/4 of `CHUNK`, so that its text is at most `CHUNK`
//!   and every bound below holds as it is;
//! - whatever the peer sends, memory stays bounded: the write buffer is capped (`WRITE_CAP`, so
//!   pongs owed to a peer that does not read replace each other instead of piling up), and a
//!   peer that sends control frames faster than `CONTROL_RATE` is a flood (closed 1008);
//! - a peer is given up only after a stated time without progress (`LINGER` while we wait to
//!   send, `MISSED_PINGS + 1` ping intervals while we wait to receive); progress is any frame
//!   from it, any message of ours flushed, or (Linux) our unsent queue in the kernel shrinking;
//! - the socket is closed last with a lingering close (`finish`): FIN behind every queued byte,
//!   then the peer's late input is read and dropped, so no reset discards what it has not read.
//!
//! It does not own the local side (stdin/stdout or the target socket): the modes do.

use crate::tls::Stream;
use crate::url::{base64, base64_decode};
use crate::wire::Wire;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Bytes, Error as WsError, Message, WebSocket};

/// Largest local read, and so the largest frame wssh sends.
pub const CHUNK: usize = 64 * 1024;
/// Largest frame and message wssh accepts.
pub const MAX_FRAME: usize = 1 << 20;
/// After a burst of data, how long a side stays quiet before its buffers are given back.
pub const QUIET: Duration = Duration::from_secs(1);
/// A message larger than this is part of a burst (memory is given back once it ends).
const BURST: usize = 4 * 1024;
/// How long a closing handshake may take before the socket is just dropped.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a send (data or Close) may wait without any progress for a peer that has stopped
/// reading: the data ahead of it in the socket buffers must not be cut off by a short timer.
pub const LINGER: Duration = Duration::from_secs(30);
/// Largest write buffer: one data frame (`CHUNK` and its header) plus room for the small
/// control frames (a pong, our ping, our Close) queued behind it.
pub const WRITE_CAP: usize = CHUNK + 4 * 1024;
/// A kernel send queue this short holds no data, only control frames or a handshake answer.
const SMALL: usize = 1024;
/// Control frames (ping, pong) a peer may send at once, and per second after that.
pub const CONTROL_BURST: f64 = 100.0;
pub const CONTROL_RATE: f64 = 10.0;

/// The tungstenite settings of every tunnel: small eager buffers, bounded frames. tungstenite
/// reads only the frames `Wire` hands it (control frames, text, fragments), served from
/// `Wire`'s read-ahead, so its read buffer (kept for the tunnel's life) can be small: 1 KiB
/// (an idle ws tunnel: 34.2 KiB with 4 KiB, 27.2 with 1 KiB and the 1 KiB first local buffer
/// of `bridge`).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(WRITE_CAP)
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME))
}

/// Wrap a stream whose HTTP handshake is done; `rest` holds bytes read past the HTTP head.
pub fn websocket(stream: Stream, rest: Vec<u8>, role: Role) -> WebSocket<Wire> {
    WebSocket::from_raw_socket(Wire::new(stream, role, rest), role, Some(ws_config()))
}

/// How tunnel bytes travel in messages: decided once per tunnel, by the subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Binary messages (no subprotocol, or `binary`).
    Binary,
    /// Text messages holding base64 (the `base64` subprotocol of websockify before 0.9 and
    /// noVNC 0.x). Its text is 4/3 of the bytes: a local read is at most 3/4 of `CHUNK`, so
    /// that a message is never larger than a binary one (`WRITE_CAP` and `MAX_FRAME` hold).
    Base64,
}

impl Encoding {
    /// Largest local read that goes out as one message.
    pub fn max_read(self) -> usize {
        match self {
            Encoding::Binary => CHUNK,
            Encoding::Base64 => CHUNK / 4 * 3,
        }
    }

    /// One local read as a message.
    fn message(self, data: &[u8]) -> Message {
        match self {
            Encoding::Binary => Message::binary(data.to_vec()),
            Encoding::Base64 => Message::text(base64(data)),
        }
    }

    /// What a data message from the peer is: tunnel bytes, nothing (an empty base64 text is
    /// zero bytes: the clients that speak base64 do not know the end-of-data rule), or a
    /// message this tunnel does not carry.
    fn incoming(self, msg: Message) -> Option<Incoming> {
        let wrong = |code, why: &str| Some(Incoming::Wrong(code, why.to_string()));
        match (self, msg) {
            (Encoding::Binary, Message::Binary(b)) => Some(Incoming::Data(b)),
            (Encoding::Base64, Message::Text(t)) => match base64_decode(t.as_bytes()) {
                Ok(b) if b.is_empty() => None,
                Ok(b) => Some(Incoming::Data(b.into())),
                Err(e) => wrong(CloseCode::Invalid, &format!("invalid base64: {e}")),
            },
            (Encoding::Binary, _) => wrong(
                CloseCode::Unsupported,
                "text messages are not supported: send binary",
            ),
            (Encoding::Base64, _) => wrong(
                CloseCode::Unsupported,
                "binary messages are not supported with base64: send base64 text",
            ),
        }
    }
}

/// What the receiving side of a tunnel gets.
#[derive(Debug)]
pub enum Incoming {
    /// Tunnel bytes; empty means the peer's end of data (see README, Protocol).
    Data(Bytes),
    /// A message this tunnel does not carry (text in a binary tunnel; binary, or text that is
    /// not base64, in a base64 one): close with this code; the reason says what came.
    Wrong(CloseCode, String),
    /// The peer sent Close (the reply is already on its way).
    Close(Option<CloseFrame>),
    /// The connection ended after a completed closing handshake.
    Ended,
    /// The peer sent control frames faster than `CONTROL_RATE`: close it with 1008.
    Flood,
}

/// Pings a peer may leave unanswered in a row: it is declared dead after `MISSED_PINGS + 1`
/// ping intervals without any frame.
pub const MISSED_PINGS: u32 = 3;

/// One tunnel's WebSocket, shared by its two threads.
pub struct Shared {
    ws: Mutex<WebSocket<Wire>>,
    sock: Sock,
    /// Send a ping after this long without a frame from the peer; `None`: never.
    ping: Option<Duration>,
    /// Frames received and messages flushed: signs that the peer is there.
    activity: AtomicU64,
    /// The peer's allowance of control frames: (tokens, when last refilled).
    control: Mutex<(f64, Instant)>,
    encoding: Encoding,
    role: Role,
    /// Masking keys (a client's): random keys, and the frames masked so far.
    keys: std::collections::hash_map::RandomState,
    frames: AtomicU64,
    /// A large message came in since the receiving side last found the socket quiet.
    burst: AtomicBool,
}

/// A snapshot of a tunnel's progress, to tell later whether anything moved since.
pub struct Progress {
    activity: u64,
    /// Bytes sent but not yet acknowledged by the peer's kernel (Linux only).
    unsent: Option<usize>,
}

impl Shared {
    /// Take over a WebSocket, whose bytes travel as `encoding` says; its socket is switched to
    /// non-blocking here.
    pub fn new(
        ws: WebSocket<Wire>,
        ping: Option<Duration>,
        encoding: Encoding,
    ) -> io::Result<Shared> {
        let tcp = ws.get_ref().get_ref().tcp();
        tcp.set_read_timeout(None)?;
        tcp.set_write_timeout(None)?;
        tcp.set_nonblocking(true)?;
        let sock = Sock::of(tcp)?;
        let role = ws.get_ref().role();
        Ok(Shared {
            ws: Mutex::new(ws),
            sock,
            ping,
            activity: AtomicU64::new(0),
            control: Mutex::new((CONTROL_BURST, Instant::now())),
            encoding,
            role,
            keys: Default::default(),
            frames: AtomicU64::new(0),
            burst: AtomicBool::new(false),
        })
    }

    /// Largest local read that goes out as one message.
    pub fn max_read(&self) -> usize {
        self.encoding.max_read()
    }

    /// Send one local read (at most `max_read` bytes) as one message, flushed. Binary frames
    /// are written by `Wire`, behind everything queued before them.
    pub fn send_data(&self, data: &[u8]) -> Result<(), WsError> {
        if self.encoding == Encoding::Base64 {
            return self.send(self.encoding.message(data));
        }
        let mut queued = false;
        self.send_with(|ws| {
            if !queued {
                ws.flush()?;
                if !ws.can_write() {
                    return Err(WsError::Protocol(ProtocolError::SendAfterClosing));
                }
                ws.get_mut().queue_frame(data, self.mask());
                queued = true;
            }
            ws.flush()
        })
    }

    /// A client's masking key for its next frame: unpredictable to anyone who sees the frames
    /// (RFC 6455, 10.3), as SipHash with the process's random keys over a per-tunnel count.
    fn mask(&self) -> Option<[u8; 4]> {
        use std::hash::BuildHasher;
        if self.role != Role::Client {
            return None;
        }
        let n = self.frames.fetch_add(1, Ordering::Relaxed);
        Some((self.keys.hash_one(n) as u32).to_ne_bytes())
    }

    /// Give back the buffer of our data frames, once they are all out: the sender found its
    /// local side quiet.
    pub fn release(&self) {
        self.lock().get_mut().release();
    }

    /// Where the tunnel stands now.
    pub fn progress(&self) -> Progress {
        Progress {
            activity: self.activity.load(Ordering::Relaxed),
            unsent: sys::unsent(&self.sock.tcp),
        }
    }

    /// A mark that costs no system call, for `recv`'s hot path: the kernel's queue is looked at
    /// only once a wait has timed out, so the first ping interval counts frames and messages
    /// only, and the kernel's queue from the second on.
    fn mark(&self) -> Progress {
        Progress {
            activity: self.activity.load(Ordering::Relaxed),
            unsent: None,
        }
    }

    /// Has anything moved since `mark` (a frame in, a message out, or the peer acknowledging
    /// bytes we sent)? Moves `mark` to now.
    pub fn progressed(&self, mark: &mut Progress) -> bool {
        let now = self.progress();
        // The queue draining counts only when it held data: the acknowledgement of a ping or
        // a 101 comes from the peer's kernel, even when the peer itself is frozen.
        let moved = now.activity != mark.activity
            || matches!((now.unsent, mark.unsent), (Some(a), Some(b)) if a < b && b > SMALL);
        *mark = now;
        moved
    }

    /// Take one control frame from the peer's allowance; false when it is used up.
    fn control_allowed(&self) -> bool {
        let mut c = self.control.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(c.1).as_secs_f64() * CONTROL_RATE;
        *c = ((c.0 + refill).min(CONTROL_BURST), now);
        if c.0 < 1.0 {
            return false;
        }
        c.0 -= 1.0;
        true
    }

    fn lock(&self) -> MutexGuard<'_, WebSocket<Wire>> {
        // A panic in the other thread cannot leave the WebSocket half-written: it only ever
        // holds the lock around one tungstenite call. So a poisoned lock is still usable.
        self.ws.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send one message and flush it, waiting for the socket outside the lock. A peer that
    /// makes no progress reading for `LINGER` is given up (`TimedOut`).
    pub fn send(&self, msg: Message) -> Result<(), WsError> {
        let mut msg = Some(msg);
        self.send_with(|ws| match msg.take() {
            Some(m) => ws.send(m),
            None => ws.flush(),
        })
    }

    /// The waiting of `send`: `attempt` runs with the lock held, first to start the send and
    /// then, after each wait for room, to go on with it, until it no longer would block.
    fn send_with(
        &self,
        mut attempt: impl FnMut(&mut WebSocket<Wire>) -> Result<(), WsError>,
    ) -> Result<(), WsError> {
        let mut r = attempt(&mut self.lock());
        // Looked at only when the send has to wait (a system call on Linux).
        let mut mark = if would_block(&r) {
            self.progress()
        } else {
            self.mark()
        };
        while would_block(&r) {
            if !self.sock.wait(Ready::Write, Some(LINGER))? && !self.progressed(&mut mark) {
                let msg = format!("the peer read nothing for {} s", LINGER.as_secs());
                return Err(WsError::Io(io::Error::new(io::ErrorKind::TimedOut, msg)));
            }
            r = attempt(&mut self.lock());
        }
        if r.is_ok() {
            self.activity.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Wait for the next message that matters to the tunnel (pings are answered inside).
    /// With keepalive on, a silent peer is pinged, and declared dead (`TimedOut`) after
    /// `MISSED_PINGS + 1` intervals without any frame.
    /// Our own outgoing progress counts as a sign of life too: a peer busy reading a long
    /// stream from us may not answer a ping queued behind it for a while.
    pub fn recv(&self) -> Result<Incoming, WsError> {
        let mut silent = 0;
        let mut mark = self.mark();
        loop {
            let r = self.read_one();
            if r.is_ok() {
                self.activity.fetch_add(1, Ordering::Relaxed);
            }
            match r {
                Ok(m @ (Message::Binary(_) | Message::Text(_))) => {
                    if m.len() > BURST {
                        self.burst.store(true, Ordering::Relaxed);
                    }
                    if let Some(incoming) = self.encoding.incoming(m) {
                        return Ok(incoming);
                    }
                    silent = 0;
                }
                Ok(Message::Close(f)) => return Ok(Incoming::Close(f)),
                Ok(Message::Ping(_) | Message::Pong(_)) if !self.control_allowed() => {
                    return Ok(Incoming::Flood)
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => silent = 0,
                Err(WsError::ConnectionClosed) => return Ok(Incoming::Ended),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // At the end of a burst, one more wake-up: quiet for `QUIET`, give back.
                    if self.burst.swap(false, Ordering::Relaxed) {
                        if !self.sock.wait(Ready::Read, Some(QUIET))? {
                            give_back();
                        }
                        continue;
                    }
                    if !self.sock.wait(Ready::Read, self.ping)? {
                        if self.progressed(&mut mark) {
                            silent = 0;
                        } else {
                            silent += 1;
                            self.keepalive(silent)?;
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt at the next message (`wire::read_message`).
    fn read_one(&self) -> Result<Message, WsError> {
        crate::wire::read_message(&mut self.lock())
    }

    /// After `silent` ping intervals without a frame: ping, or give up on the peer.
    fn keepalive(&self, silent: u32) -> Result<(), WsError> {
        let every = self.ping.unwrap_or_default().as_secs();
        if silent > MISSED_PINGS {
            let msg = format!(
                "no answer to pings for {} s: the peer is gone",
                every * (MISSED_PINGS as u64 + 1)
            );
            return Err(WsError::Io(io::Error::new(io::ErrorKind::TimedOut, msg)));
        }
        let mut ws = self.lock();
        if !ws.can_write() {
            // Our Close is out: no more pings, but the count above still gives up on the peer.
            return Ok(());
        }
        log::debug!("nothing from the peer for {every} s: ping");
        match ws.send(Message::Ping(Bytes::new())) {
            // A full send buffer keeps the ping queued (or, at WRITE_CAP, drops it: the peer
            // is not reading anyway); the next flush sends it.
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(WsError::WriteBufferFull(_)) => Ok(()),
            r => r,
        }
    }

    /// Start the closing handshake (if nobody has) and push the Close frame out behind the data
    /// before it, as long as the peer keeps reading (given up after `LINGER` without progress).
    pub fn close(&self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: truncate(reason, 120).into(),
        };
        let mut r = self.lock().close(Some(frame));
        let mut mark = self.progress();
        while would_block(&r) {
            match self.sock.wait(Ready::Write, Some(LINGER)) {
                Ok(true) => {}
                Ok(false) if self.progressed(&mut mark) => {}
                _ => return,
            }
            r = self.lock().flush();
        }
    }

    /// After the peer's Close: push our reply out, bounded by `CLOSE_WAIT` in all.
    pub fn flush_close(&self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        let mut r = self.lock().flush();
        while would_block(&r) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !matches!(self.sock.wait(Ready::Write, Some(left)), Ok(true)) {
                return;
            }
            r = self.lock().flush();
        }
    }

    /// Read and drop messages until the peer's Close or `CLOSE_WAIT`, after we closed.
    pub fn drain_until_closed(&self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            let r = self.read_one();
            match r {
                Ok(_) => continue,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero()
                        || !matches!(self.sock.wait(Ready::Read, Some(left)), Ok(true))
                    {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Cut the connection under the WebSocket: wakes a thread sleeping in `recv`.
    pub fn shutdown(&self) {
        let _ = self.sock.tcp.shutdown(std::net::Shutdown::Both);
    }

    /// Send FIN behind everything queued: wakes a thread waiting for room to send, and tells
    /// the peer we are done, without discarding what it has not read yet.
    pub fn shutdown_write(&self) {
        let _ = self.sock.tcp.shutdown(std::net::Shutdown::Write);
    }

    /// The lingering close, last thing before the socket is dropped: FIN, then read and drop
    /// the peer's late bytes until it closes, or (Linux) until the peer's kernel has
    /// acknowledged all we sent. Closing a socket with unread input resets the connection, and
    /// the reset discards what we sent that the peer has not received yet. Bounded by
    /// `CLOSE_WAIT` without progress (a peer that keeps sending is not progress).
    pub fn finish(&self) {
        self.shutdown_write();
        let mut mark = self.progress();
        let mut deadline = Instant::now() + CLOSE_WAIT;
        let mut junk = [0u8; 4096];
        loop {
            if sys::unsent(&self.sock.tcp) == Some(0) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if !self.progressed(&mut mark) {
                    return;
                }
                deadline = Instant::now() + CLOSE_WAIT;
                continue;
            }
            match io::Read::read(&mut &*self.sock.tcp, &mut junk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.sock.wait(Ready::Read, Some(left)).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

/// glibc's allocator: at most two arenas. By default each thread that meets another in malloc
/// gets an arena of its own, up to 8 per core, and the free space at the top of an arena
/// other than the first is kept (up to twice the largest block freed: half a MiB after 256 KiB
/// frames), trim or not: 20 tunnels that had each echoed 4 MiB held 203 KiB each after going
/// quiet, 43 KiB with two arenas (`tests/hostile`). Two threads run at once on two cores; more
/// arenas than that buy little. Other C libraries: nothing to do.
pub fn few_arenas() {
    // SAFETY: mallopt sets a parameter of the allocator; called first thing in main.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hand the memory that a burst's buffers left free back to the system: glibc keeps what its
/// threads free until a trim (100 tunnels after 16 MiB each way and 1 s of quiet held 99.5
/// KiB each without, 57.3 with); musl and the other systems' allocators give it back
/// themselves.
pub fn give_back() {
    // SAFETY: malloc_trim takes each arena's lock; any thread may call it at any time.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

fn would_block(r: &Result<(), WsError>) -> bool {
    matches!(r, Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Cut `s` to at most `max` bytes on a character boundary (close reasons are limited to 123).
pub fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Clone, Copy)]
enum Ready {
    Read,
    Write,
}

/// A handle on the WebSocket's socket to wait on, kept apart from the WebSocket so that waiting
/// needs no lock. It is the same descriptor, not a clone (a tunnel holds two descriptors, not
/// three), and it never closes it: the WebSocket beside it in `Shared` owns the socket and
/// outlives every use of this handle.
struct Sock {
    tcp: std::mem::ManuallyDrop<std::net::TcpStream>,
}

impl Sock {
    fn of(tcp: &std::net::TcpStream) -> io::Result<Sock> {
        #[cfg(unix)]
        // SAFETY: a non-owning handle (ManuallyDrop: never closed) on a descriptor that stays
        // open while the `Shared` holding both lives (see the struct's note).
        let tcp = unsafe {
            use std::os::unix::io::{AsRawFd, FromRawFd};
            std::net::TcpStream::from_raw_fd(tcp.as_raw_fd())
        };
        #[cfg(windows)]
        // SAFETY: as above, for the socket handle.
        let tcp = unsafe {
            use std::os::windows::io::{AsRawSocket, FromRawSocket};
            std::net::TcpStream::from_raw_socket(tcp.as_raw_socket())
        };
        Ok(Sock {
            tcp: std::mem::ManuallyDrop::new(tcp),
        })
    }

    /// Sleep until the socket is ready (or has an error or hang-up). `Ok(false)` on timeout.
    fn wait(&self, what: Ready, timeout: Option<Duration>) -> io::Result<bool> {
        sys::poll(sys::raw(&*self.tcp), what, timeout)
    }
}

/// Sleep until a listening socket has a connection waiting; `Ok(false)` on timeout.
pub fn wait_readable(l: &std::net::TcpListener, timeout: Option<Duration>) -> io::Result<bool> {
    sys::poll(sys::raw(l), Ready::Read, timeout)
}

/// The same for any socket (a tunnel's local side), on Unix.
#[cfg(unix)]
pub fn wait_readable_fd(
    s: &impl std::os::unix::io::AsRawFd,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    sys::poll(sys::raw(s), Ready::Read, timeout)
}

/// The same for a listening Unix socket.
#[cfg(unix)]
pub fn wait_readable_unix(
    l: &std::os::unix::net::UnixListener,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    sys::poll(sys::raw(l), Ready::Read, timeout)
}

#[cfg(unix)]
mod sys {
    use super::Ready;
    use std::os::unix::io::{AsRawFd, RawFd};
    use std::{io, net::TcpStream, time::Duration};

    pub fn raw(s: &impl AsRawFd) -> RawFd {
        s.as_raw_fd()
    }

    /// Bytes in the socket's send queue not yet acknowledged by the peer (Linux's SIOCOUTQ).
    #[cfg(target_os = "linux")]
    pub fn unsent(tcp: &TcpStream) -> Option<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQ writes one int through the pointer given.
        let r = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        (r == 0).then_some(n as usize)
    }

    /// Elsewhere the kernel's queue is not looked at: only frames count as progress.
    #[cfg(not(target_os = "linux"))]
    pub fn unsent(_tcp: &TcpStream) -> Option<usize> {
        None
    }

    pub fn poll(fd: RawFd, what: Ready, timeout: Option<Duration>) -> io::Result<bool> {
        let events = match what {
            Ready::Read => libc::POLLIN,
            Ready::Write => libc::POLLOUT,
        };
        let mut fd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
        loop {
            // SAFETY: one valid pollfd, and its count is 1.
            match unsafe { libc::poll(&mut fd, 1, ms) } {
                -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
                -1 => return Err(io::Error::last_os_error()),
                n => return Ok(n > 0),
            }
        }
    }
}

#[cfg(windows)]
mod sys {
    use super::Ready;
    use std::os::windows::io::{AsRawSocket, RawSocket};
    use std::{io, net::TcpStream, time::Duration};

    pub fn raw(s: &impl AsRawSocket) -> RawSocket {
        s.as_raw_socket()
    }

    #[repr(C)]
    struct WsaPollFd {
        fd: usize,
        events: i16,
        revents: i16,
    }
    const POLLRDNORM: i16 = 0x0100;
    const POLLWRNORM: i16 = 0x0010;

    #[link(name = "ws2_32")]
    extern "system" {
        fn WSAPoll(fds: *mut WsaPollFd, n: u32, timeout: i32) -> i32;
    }

    /// The kernel's send queue is not looked at here: only frames count as progress.
    pub fn unsent(_tcp: &TcpStream) -> Option<usize> {
        None
    }

    pub fn poll(fd: RawSocket, what: Ready, timeout: Option<Duration>) -> io::Result<bool> {
        let events = match what {
            Ready::Read => POLLRDNORM,
            Ready::Write => POLLWRNORM,
        };
        let mut fd = WsaPollFd {
            fd: fd as usize,
            events,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
        // SAFETY: one valid WSAPOLLFD, and its count is 1.
        match unsafe { WSAPoll(&mut fd, 1, ms) } {
            -1 => Err(io::Error::last_os_error()),
            n => Ok(n > 0),
        }
    }
}
