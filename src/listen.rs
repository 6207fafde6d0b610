//! The accept loop every listening mode shares (server, connect, forward): one named thread per
//! connection, a cap on connections, Ctrl-C/SIGTERM handling, and the shutdown that cuts the
//! local sockets of open tunnels so each closes cleanly. It knows nothing of HTTP or WebSocket.

use crate::error::Error;
use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Stack of each tunnel thread: enough for OpenSSL, small for 32-bit boxes with many tunnels.
pub const STACK: usize = 256 * 1024;
/// How long shutdown waits for tunnels to finish their closing handshakes.
const DRAIN: Duration = Duration::from_millis(1500);

/// What the connection threads of one listener share.
pub struct Hub {
    stopping: AtomicBool,
    next_id: AtomicU64,
    active: AtomicUsize,
    /// Local sockets of open tunnels, cut on shutdown.
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Hub {
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Let shutdown cut this tunnel's local socket until the returned guard is dropped. Cut at
    /// once if shutdown has begun.
    pub fn register(&self, id: u64, sock: &TcpStream) -> Registered<'_> {
        if let Ok(s) = sock.try_clone() {
            self.open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, s);
        }
        if self.stopping() {
            let _ = sock.shutdown(Shutdown::Both);
        }
        Registered { hub: self, id }
    }
}

/// A tunnel's place in the hub's registry; leaving it (even by a panic) unregisters.
pub struct Registered<'a> {
    hub: &'a Hub,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.hub
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// One of the `max` connection slots; given back when dropped, even by a panic.
struct Slot(Arc<Hub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Bind, or fail with the address in the message.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).map_err(|e| Error::io(format!("listen on {addr}"), e))
}

/// Accept until a signal; run `handle` on its own thread for each connection. Over `max`
/// connections, `busy` (if any) is written to the newcomer before it is closed.
pub fn serve<F>(
    listener: TcpListener,
    max: usize,
    busy: Option<&'static str>,
    handle: F,
) -> Result<(), Error>
where
    F: Fn(&Hub, u64, TcpStream) + Send + Sync + 'static,
{
    let local = listener.local_addr().map_err(|e| Error::io("listen", e))?;
    check_open_files(max);
    let hub = Arc::new(Hub {
        stopping: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        active: AtomicUsize::new(0),
        open: Mutex::new(HashMap::new()),
    });
    let h = hub.clone();
    ctrlc::set_handler(move || {
        if h.stopping.swap(true, Ordering::SeqCst) {
            log::warn!("second signal: exiting now");
            std::process::exit(130);
        }
        log::info!("stopping: no new tunnels, closing open ones");
        let _ = TcpStream::connect_timeout(&wake_addr(local), Duration::from_millis(200));
    })
    .map_err(|e| Error::io("install signal handler", io::Error::other(e.to_string())))?;
    log::info!("listening on {local}");

    let handle = Arc::new(handle);
    for conn in listener.incoming() {
        if hub.stopping() {
            break;
        }
        let sock = match conn {
            Ok(s) => s,
            Err(e) => {
                // EMFILE, ECONNABORTED and the like: say so, breathe, go on.
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
        if hub.active.fetch_add(1, Ordering::SeqCst) >= max {
            hub.active.fetch_sub(1, Ordering::SeqCst);
            log::warn!("conn-{id}: over the limit of {max} tunnels; refused");
            if let Some(reply) = busy {
                let _ = sock.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = io::Write::write_all(&mut &sock, reply.as_bytes());
            }
            continue;
        }
        let (slot, handle) = (Slot(hub.clone()), handle.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{id}"))
            .stack_size(STACK)
            .spawn(move || handle(&slot.0, id, sock));
        // On failure the closure, and with it the slot, is dropped: the count goes back.
        if let Err(e) = spawned {
            log::warn!("conn-{id}: cannot start a thread: {e}");
        }
    }
    // Stop accepting for real: newcomers are refused now, not queued until exit.
    drop(listener);
    for s in hub.open.lock().unwrap_or_else(|p| p.into_inner()).values() {
        let _ = s.shutdown(Shutdown::Both);
    }
    let deadline = Instant::now() + DRAIN;
    while hub.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    log::info!("stopped");
    Ok(())
}

/// Descriptors one tunnel holds: its WebSocket and a clone to wait on, the local socket, a clone
/// for the second thread and one for the shutdown registry.
const FDS_PER_TUNNEL: usize = 5;

/// Raise the soft limit on open files to the hard one (a login's default of 1024 would allow
/// about 200 tunnels), and say so if `max` tunnels still cannot fit.
#[cfg(unix)]
fn check_open_files(max: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the one struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                log::debug!(
                    "open files limit raised from {} to {}",
                    lim.rlim_cur,
                    lim.rlim_max
                );
                lim = raised;
            }
        }
    }
    let fit = usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(32)
        / FDS_PER_TUNNEL;
    if fit < max {
        log::warn!(
            "the open files limit ({}) allows about {fit} tunnels, fewer than --max-tunnels {max}: \
             raise it (ulimit -n, LimitNOFILE=) or lower --max-tunnels",
            lim.rlim_cur
        );
    }
}

#[cfg(not(unix))]
fn check_open_files(_max: usize) {}

/// Where the signal handler connects to wake the blocked `accept()`.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let mut a = local;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => [127, 0, 0, 1].into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}
