//! Copy between a local socket (TCP, or a Unix socket) and a tunnel, both directions at once,
//! with the close rules of the README's Protocol section. Used by the server (local = the
//! target) and by connect and forward (local = the application). It does not open either side.

use crate::listen::{Hub, STACK};
use crate::pump::{Incoming, Shared};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message};

/// Which end of the tunnel this is: it decides what the local side's EOF means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Local is the target: its EOF ends the tunnel (Close 1000 after all bytes).
    Server,
    /// Local is the application: its EOF is sent on as end of data (half-close).
    Client,
}

impl Side {
    /// What the local socket is called in messages.
    fn local(self) -> &'static str {
        match self {
            Side::Server => "target",
            Side::Client => "local connection",
        }
    }
}

/// The local side of a tunnel.
pub enum Local {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Local {
    pub fn try_clone(&self) -> io::Result<Local> {
        Ok(match self {
            Local::Tcp(s) => Local::Tcp(s.try_clone()?),
            #[cfg(unix)]
            Local::Unix(s) => Local::Unix(s.try_clone()?),
        })
    }

    /// Read what is there without waiting, or wait up to `quiet` for more: `Ok(None)` when
    /// nothing came by then (Unix; elsewhere this is a plain read).
    fn read_or_quiet(&self, buf: &mut [u8], quiet: Duration) -> io::Result<Option<usize>> {
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            let fd = match self {
                Local::Tcp(s) => s.as_raw_fd(),
                Local::Unix(s) => s.as_raw_fd(),
            };
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            if !crate::pump::wait_readable_fd(&fd, Some(quiet))? {
                return Ok(None);
            }
        }
        #[cfg(not(unix))]
        let _ = quiet;
        { self }.read(buf).map(Some)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Local::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Local::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for &Local {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Local::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Local::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Local {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Local::Tcp(s) => (&*s).write(buf),
            #[cfg(unix)]
            Local::Unix(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sees a copy of every payload that crosses the local side, in order in each direction
/// (`--record`). It runs on the tunnel's threads, so it must never block or fail: it hands the
/// bytes on and returns.
pub trait Observer: Sync {
    /// Bytes about to be written to the local socket (from the peer).
    fn local_write(&self, data: &[u8]);
    /// Bytes just read from the local socket (to the peer).
    fn local_read(&self, data: &[u8]);
}

/// How a bridged tunnel went.
pub struct Outcome {
    /// Bytes from the WebSocket to the local socket, and the other way.
    pub to_local: u64,
    pub to_ws: u64,
    pub end: String,
}

/// Run both directions until the tunnel is over; the second direction gets its own thread.
pub fn run(hub: &Hub, tunnel: &Shared, local: &Local, side: Side) -> Outcome {
    run_observed(hub, tunnel, local, side, None)
}

/// The same, with an observer that sees every payload at the local socket. Without one, the
/// byte path does no more than check that there is none, once per message.
pub fn run_observed(
    hub: &Hub,
    tunnel: &Shared,
    local: &Local,
    side: Side,
    observer: Option<&dyn Observer>,
) -> Outcome {
    let (to_local, to_ws) = (AtomicU64::new(0), AtomicU64::new(0));
    let ws_gone = AtomicBool::new(false);
    // Dropped when the WebSocket side is done: wakes the other thread waiting for that.
    let (gone_tx, gone_rx) = mpsc::channel::<()>();
    let end = std::thread::scope(|s| {
        // Both threads use the one socket (reads on one, writes on the other): no clone.
        let name = std::thread::current().name().unwrap_or("conn").to_string() + "-up";
        let spawned = std::thread::Builder::new()
            .stack_size(STACK)
            .name(name)
            .spawn_scoped(s, || {
                local_to_ws(
                    hub, tunnel, local, side, &to_ws, &ws_gone, gone_rx, observer,
                )
            });
        let other = match spawned {
            Ok(h) => h,
            Err(e) => {
                // Half a tunnel is no tunnel: tell the peer to come back later.
                tunnel.close(CloseCode::Again, "out of threads, try again later");
                return format!("cannot start a thread: {e}");
            }
        };
        shed_stack();
        let mine = ws_to_local(tunnel, local, side, &to_local, observer);
        ws_gone.store(true, Ordering::SeqCst);
        drop(gone_tx);
        // The WebSocket is done: wake the other direction wherever it sleeps, in read(2) on
        // the local socket or in poll(2) for room on a peer that no longer reads (FIN makes
        // the socket writable, and the write then fails). FIN, not a reset: what the peer
        // has not read yet stays on its way.
        let _ = local.shutdown(Shutdown::Both);
        tunnel.shutdown_write();
        let theirs = other.join().unwrap_or_else(|_| "panic".into());
        if theirs.is_empty() {
            mine
        } else {
            theirs
        }
    });
    tunnel.finish();
    Outcome {
        to_local: to_local.into_inner(),
        to_ws: to_ws.into_inner(),
        end,
    }
}

/// Give back the stack pages this thread touched below the current frame (Linux). The server's
/// handshake (HTTP parsing, routing, the dial, starting the other thread) runs deeper than the
/// copy loop that follows for the tunnel's whole life, and a touched page stays resident until
/// the thread ends: 16 KiB of stack on this thread of an idle tunnel against 8 on the other.
/// Nothing below the current frame is live, and what runs after touches again only what it needs
/// (each page comes back zeroed, as a fresh stack's does).
#[inline(never)]
fn shed_stack() {
    #[cfg(target_os = "linux")]
    {
        /// Left alone below this frame: room for the calls made here.
        const MARGIN: usize = 1024;
        const PAGE: usize = 4096;
        let here = 0u8;
        let sp = std::hint::black_box(std::ptr::addr_of!(here)) as usize;
        // SAFETY: pthread_getattr_np fills the attribute object given (destroyed after), which
        // says where this thread's stack lies; madvise(MADV_DONTNEED) then drops pages of that
        // stack more than MARGIN below this frame, where no frame lives (this one's calls to
        // madvise stay within MARGIN), so no live byte changes.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return;
            }
            let (mut base, mut size) = (std::ptr::null_mut(), 0);
            let got = libc::pthread_attr_getstack(&attr, &mut base, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            let low = (base as usize).div_ceil(PAGE) * PAGE;
            let high = sp.saturating_sub(MARGIN) / PAGE * PAGE;
            if got == 0 && low < high && sp < base as usize + size {
                libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
            }
        }
    }
}

/// WebSocket to local socket. Ends when the peer closes or fails; returns how.
fn ws_to_local(
    tunnel: &Shared,
    local: &Local,
    side: Side,
    count: &AtomicU64,
    observer: Option<&dyn Observer>,
) -> String {
    let mut out = local;
    loop {
        match tunnel.recv() {
            Ok(Incoming::Data(b)) if b.is_empty() => {
                log::debug!("peer sent end of data");
                let _ = local.shutdown(Shutdown::Write);
            }
            Ok(Incoming::Data(b)) => {
                if let Some(o) = observer {
                    o.local_write(&b);
                }
                if let Err(e) = out.write_all(&b) {
                    let why = format!("{} write: {e}", side.local());
                    tunnel.close(CloseCode::Error, &why);
                    tunnel.drain_until_closed();
                    return why;
                }
                count.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            Ok(Incoming::Wrong(code, why)) => {
                tunnel.close(code, &why);
                tunnel.drain_until_closed();
                return format!("{why} (closed {})", u16::from(code));
            }
            Ok(Incoming::Close(f)) => {
                tunnel.flush_close();
                return match f {
                    Some(f) if !f.reason.is_empty() => {
                        format!("peer closed ({} {})", u16::from(f.code), f.reason)
                    }
                    Some(f) => format!("peer closed ({})", u16::from(f.code)),
                    None => "peer closed".into(),
                };
            }
            Ok(Incoming::Ended) => return String::new(),
            Ok(Incoming::Flood) => {
                tunnel.close(CloseCode::Policy, "too many control frames");
                return "peer flooded control frames (closed 1008)".into();
            }
            Err(e) => return fail(tunnel, e),
        }
    }
}

/// Close a WebSocket that broke the protocol with the code that says why; returns the reason.
fn fail(tunnel: &Shared, e: WsError) -> String {
    let (code, what) = match &e {
        WsError::Capacity(_) => (CloseCode::Size, "frame or message too large"),
        WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            return "peer vanished (no close)".into();
        }
        WsError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        WsError::Io(_) => return format!("connection: {e}"),
        _ => (CloseCode::Error, "error"),
    };
    tunnel.close(code, &format!("{what}: {e}"));
    tunnel.shutdown();
    format!("{what}: {e} (closed {})", u16::from(code))
}

/// Local socket to WebSocket, one message per read. Returns "" when the WebSocket side ended
/// first, else how the tunnel ended.
#[allow(clippy::too_many_arguments)]
fn local_to_ws(
    hub: &Hub,
    tunnel: &Shared,
    local: &Local,
    side: Side,
    count: &AtomicU64,
    ws_gone: &AtomicBool,
    gone: mpsc::Receiver<()>,
    observer: Option<&dyn Observer>,
) -> String {
    // Starts small so that an idle tunnel holds little; doubles while reads fill it, up to
    // one message's worth; small again, and the tunnel's send buffer given back, once the
    // local side has been quiet for `QUIET` (one wake-up at the end of a burst).
    const SMALL: usize = 1024;
    use crate::pump::{give_back, QUIET};
    let most = tunnel.max_read();
    let mut buf = vec![0u8; SMALL];
    let (code, reason) = loop {
        let r = match buf.len() > SMALL {
            true => local.read_or_quiet(&mut buf, QUIET),
            false => { local }.read(&mut buf).map(Some),
        };
        let r = match r {
            Ok(Some(n)) => Ok(n),
            Ok(None) => {
                buf = vec![0u8; SMALL];
                tunnel.release();
                give_back();
                { local }.read(&mut buf)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(0) if ws_gone.load(Ordering::SeqCst) => return String::new(),
            Ok(0) if hub.stopping() => break (CloseCode::Away, "shutting down".to_string()),
            Ok(0) if side == Side::Client => {
                // Half-close: tell the peer, keep receiving until it closes.
                return match tunnel.send(Message::binary(Vec::new())) {
                    Ok(()) => String::new(),
                    Err(e) => format!("send: {e}"),
                };
            }
            Ok(0) => break (CloseCode::Normal, "target closed".to_string()),
            Ok(n) => {
                if let Some(o) = observer {
                    o.local_read(&buf[..n]);
                }
                if let Err(e) = tunnel.send_data(&buf[..n]) {
                    return if ws_gone.load(Ordering::SeqCst) {
                        String::new()
                    } else {
                        format!("send: {e}")
                    };
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
                if n == buf.len() && n < most {
                    buf.resize((n * 2).min(most), 0);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if ws_gone.load(Ordering::SeqCst) => return String::new(),
            Err(e) => break (CloseCode::Error, format!("{}: {e}", side.local())),
        }
    };
    tunnel.close(code, &reason);
    // The other thread reads the peer's Close reply and ends. The peer may first have
    // megabytes to read: wait while it makes progress, and cut the socket (so that the other
    // thread wakes) only after LINGER without any.
    let mut mark = tunnel.progress();
    while let Err(mpsc::RecvTimeoutError::Timeout) = gone.recv_timeout(crate::pump::LINGER) {
        if !tunnel.progressed(&mut mark) {
            tunnel.shutdown();
            break;
        }
    }
    reason
}
