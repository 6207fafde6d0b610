//! The accept loop every listening mode shares (server, connect, forward): one named thread per
//! connection. A connection is *pending* until its handler admits it as a tunnel. Pending
//! connections are capped apart from tunnels, in all and per client address, and each has one
//! deadline; when the pending cap is full, the one that made no progress for the longest is
//! shed, not the newcomer, so idle or trickling sockets cannot starve real clients. Tunnels are
//! capped in all and per client. A handler that answers other requests on the connection first
//! (pages, with keep-alive) keeps it pending and gives each request a deadline of its own
//! (`Hub::rearm`). Refusals are logged at a bounded rate. Ctrl-C/SIGTERM (or `stop`) stop the
//! loop and cut the local sockets of open tunnels so each closes cleanly. The loop can also end
//! on its own (`Ends`: websockify's `--run-once`, `--timeout`, `--idle-timeout`); then open
//! connections are left to finish, unless a signal comes. A listening socket handed over
//! (`--inetd`, systemd's `LISTEN_FDS`) is adopted in place of one bound, and the server can listen
//! on a Unix socket (`Listener`). It knows nothing of HTTP or WebSocket; the handlers report
//! progress and ask for admission.

use crate::bridge::Local;
use crate::error::Error;
use crate::policy::Rule;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixListener;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Stack of each tunnel thread: enough for OpenSSL, small for 32-bit boxes with many tunnels.
pub const STACK: usize = 256 * 1024;
/// How long shutdown waits for tunnels to finish their closing handshakes.
const DRAIN: Duration = Duration::from_millis(1500);
/// Refusals logged in full per `LOG_EVERY`; beyond that they are counted in one line.
const LOG_LINES: u32 = 10;
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The caps of one listener; 0 in a per-address cap means none.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Tunnels at once, in all and per client address.
    pub max_tunnels: usize,
    pub max_per_ip: usize,
    /// Connections still in their handshake, in all and per client address (IPv6 per /64).
    pub max_pending: usize,
    pub pending_per_ip: usize,
    /// From accept to admission, at most.
    pub handshake: Duration,
    /// Addresses the per-address pending cap does not apply to (trusted proxies).
    pub exempt: Vec<Rule>,
}

/// When the listener ends by itself, as websockify's options say; the default is never.
#[derive(Debug, Clone, Default)]
pub struct Ends {
    /// `--run-once`: after the first tunnel ends.
    pub run_once: bool,
    /// `--timeout`: this long after the start, whatever is open.
    pub timeout: Option<Duration>,
    /// `--idle-timeout`: once no connection (tunnel or not) has been open for this long.
    pub idle_timeout: Option<Duration>,
}

/// Why a connection was not admitted as a tunnel.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// `--max-tunnels` tunnels are open.
    Tunnels(usize),
    /// This client has `--max-per-ip` tunnels open.
    PerClient(usize),
    /// The listener already cut this connection (deadline or shed).
    Cut(&'static str),
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Busy::Tunnels(n) => write!(f, "too many tunnels (limit {n})"),
            Busy::PerClient(n) => write!(f, "too many tunnels from this address (limit {n})"),
            Busy::Cut(why) => f.write_str(why),
        }
    }
}

/// A connection in its handshake.
struct Pending {
    /// A clone of its socket, to cut it.
    sock: TcpStream,
    /// Its client's address key; none on a Unix socket.
    key: Option<IpAddr>,
    /// When it last sent something (or was accepted).
    last: Instant,
    deadline: Instant,
}

/// The counts behind the caps, under one lock.
#[derive(Default)]
struct Counts {
    pending: HashMap<u64, Pending>,
    pending_by_ip: HashMap<IpAddr, usize>,
    /// Connections the listener cut, and why, until their threads end.
    cut: HashMap<u64, &'static str>,
    tunnels: usize,
    tunnels_by_ip: HashMap<IpAddr, usize>,
}

/// Set when stopping begins, by a signal or by `stop`. Process-wide, as the signal handler is:
/// one accept loop runs per process.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Where to connect to wake the running accept loop, once it runs.
static WAKE: Mutex<Option<Wake>> = Mutex::new(None);

/// The address of the running accept loop, as `wake` connects to it.
#[derive(Clone)]
enum Wake {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}
/// Notified when a connection thread ends or stopping begins: what a listener that ended by
/// itself waits on while its connections finish.
static CHANGED: Condvar = Condvar::new();
static CHANGES: Mutex<u64> = Mutex::new(0);

fn changed() {
    *lock(&CHANGES) += 1;
    CHANGED.notify_all();
}

/// Stop the accept loop as a first SIGTERM does: no new tunnels, open ones closed, and `serve`
/// returns after the drain. Asked before `serve` runs, `serve` returns as soon as it starts. For
/// a part of a listening mode that ends it from inside (a wrapped program that ended).
pub fn stop() {
    begin_stop();
}

/// Begin stopping and wake the accept loop; false if stopping had begun already.
fn begin_stop() -> bool {
    if STOPPING.swap(true, Ordering::SeqCst) {
        return false;
    }
    log::info!("stopping: no new tunnels, closing open ones");
    changed();
    wake();
    true
}

/// Wake the accept loop, if it runs, by connecting to it.
fn wake() {
    let wake = lock(&WAKE).clone();
    match wake {
        Some(Wake::Tcp(addr)) => {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
        }
        #[cfg(unix)]
        Some(Wake::Unix(path)) => {
            let _ = std::os::unix::net::UnixStream::connect(path);
        }
        None => {}
    }
}

/// What the connection threads of one listener share.
pub struct Hub {
    limits: Limits,
    next_id: AtomicU64,
    /// Connection threads alive.
    active: AtomicUsize,
    counts: Mutex<Counts>,
    /// Local sockets of open tunnels, cut on shutdown.
    open: Mutex<HashMap<u64, Arc<Local>>>,
    log: RateLog,
    ends: Ends,
    /// When a connection thread last ended (or the loop started): `--idle-timeout` counts
    /// from there while none is open.
    last_end: Mutex<Instant>,
    /// Why the loop is to end by itself, once that is decided (`--run-once`).
    exit: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every holder leaves the maps consistent between statements: a poisoned lock is usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Client addresses are counted per IPv4 address and per IPv6 /64 (what one host gets).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !0u128 << 64).into()),
        v4 => v4,
    }
}

fn decrement(map: &mut HashMap<IpAddr, usize>, key: Option<IpAddr>) {
    let Some(key) = key else { return };
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl Hub {
    fn new(limits: Limits, ends: Ends) -> Hub {
        Hub {
            limits,
            ends,
            last_end: Mutex::new(Instant::now()),
            exit: Mutex::new(None),
            next_id: AtomicU64::new(1),
            active: AtomicUsize::new(0),
            counts: Mutex::new(Counts::default()),
            open: Mutex::new(HashMap::new()),
            log: RateLog::default(),
        }
    }

    pub fn stopping(&self) -> bool {
        STOPPING.load(Ordering::SeqCst)
    }

    /// The pending connection `id` sent something: it is not the stalest.
    pub fn touch(&self, id: u64) {
        if let Some(p) = lock(&self.counts).pending.get_mut(&id) {
            p.last = Instant::now();
        }
    }

    /// The pending connection `id` waits for another request on the same connection (HTTP
    /// keep-alive): it stays pending, its deadline is `--handshake-timeout` from now, and it
    /// counts as having made progress. Fails if the listener has cut it already.
    pub fn rearm(&self, id: u64) -> Result<(), Busy> {
        let mut c = lock(&self.counts);
        if let Some(why) = c.cut.get(&id) {
            return Err(Busy::Cut(why));
        }
        if let Some(p) = c.pending.get_mut(&id) {
            let now = Instant::now();
            p.last = now;
            p.deadline = now + self.limits.handshake;
        }
        Ok(())
    }

    /// Why the listener cut this connection, if it did.
    pub fn cut_reason(&self, id: u64) -> Option<&'static str> {
        lock(&self.counts).cut.get(&id).copied()
    }

    /// Turn pending connection `id` into a tunnel of `client` (`None`: a client not to count,
    /// such as a trusted proxy that did not name one). The tunnel's slots are given back when
    /// the returned guard is dropped.
    pub fn admit(&self, id: u64, client: Option<IpAddr>) -> Result<Admitted<'_>, Busy> {
        let mut c = lock(&self.counts);
        if let Some(why) = c.cut.get(&id) {
            return Err(Busy::Cut(why));
        }
        if let Some(p) = c.pending.remove(&id) {
            decrement(&mut c.pending_by_ip, p.key);
            crate::metrics::set_handshaking(c.pending.len());
        }
        let l = &self.limits;
        if c.tunnels >= l.max_tunnels {
            return Err(Busy::Tunnels(l.max_tunnels));
        }
        let key = client.map(ip_key).filter(|_| l.max_per_ip > 0);
        if let Some(k) = key {
            let n = c.tunnels_by_ip.entry(k).or_default();
            if *n >= l.max_per_ip {
                return Err(Busy::PerClient(l.max_per_ip));
            }
            *n += 1;
        }
        c.tunnels += 1;
        Ok(Admitted { hub: self, key })
    }

    /// Let shutdown cut this tunnel's local socket until the returned guard is dropped (the
    /// registry shares the socket: no descriptor of its own). Cut at once if shutdown has
    /// begun.
    pub fn register(&self, id: u64, sock: &Arc<Local>) -> Registered<'_> {
        lock(&self.open).insert(id, sock.clone());
        if self.stopping() {
            let _ = sock.shutdown(Shutdown::Both);
        }
        Registered { hub: self, id }
    }

    /// Log a refusal, at a bounded rate: a flood of them becomes one line per `LOG_EVERY`.
    pub fn refused(&self, line: std::fmt::Arguments) {
        self.log.warn(line);
    }

    /// A newcomer from `peer` (none on a Unix socket): refuse it, or make room and record it
    /// as pending.
    fn take(&self, id: u64, sock: &TcpStream, peer: Option<SocketAddr>) -> Result<(), String> {
        let l = &self.limits;
        let key = peer.map(|p| ip_key(p.ip()));
        let exempt = peer.is_some_and(|p| l.exempt.iter().any(|r| r.contains_ip(p.ip())));
        let clone = sock
            .try_clone()
            .map_err(|e| format!("cannot keep track of it: {e}"))?;
        let mut c = lock(&self.counts);
        if let Some(key) = key {
            let from_here = c.pending_by_ip.get(&key).copied().unwrap_or(0);
            if !exempt && l.pending_per_ip > 0 && from_here >= l.pending_per_ip {
                crate::metrics::refused(0, crate::metrics::Why::Pending);
                return Err(format!(
                    "over --max-pending-per-ip {} from {key}",
                    l.pending_per_ip
                ));
            }
        }
        if c.pending.len() >= l.max_pending {
            // Shed the connection that has been silent for the longest, not the newcomer.
            let victim = c
                .pending
                .iter()
                .min_by_key(|(_, p)| p.last)
                .map(|(k, _)| *k);
            if let Some(v) = victim {
                cut(&mut c, v, "shed: too many connections in handshake");
                self.log.warn(format_args!(
                    "conn-{v}: shed (over --max-pending {})",
                    l.max_pending
                ));
            }
        }
        let now = Instant::now();
        c.pending.insert(
            id,
            Pending {
                sock: clone,
                key,
                last: now,
                deadline: now + l.handshake,
            },
        );
        if let Some(key) = key {
            *c.pending_by_ip.entry(key).or_default() += 1;
        }
        crate::metrics::set_handshaking(c.pending.len());
        Ok(())
    }

    /// Cut the pending connections whose deadline has passed; returns when the next one is due.
    fn reap(&self) -> Option<Instant> {
        let mut c = lock(&self.counts);
        let now = Instant::now();
        let late: Vec<u64> = c
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            cut(&mut c, id, "handshake timed out (--handshake-timeout)");
        }
        c.pending.values().map(|p| p.deadline).min()
    }

    /// When the listener is to end by itself (for the loop's sleep), or why it ends now.
    fn end_due(&self, start: Instant) -> (Option<Instant>, Option<String>) {
        if let Some(why) = lock(&self.exit).clone() {
            return (None, Some(why));
        }
        let now = Instant::now();
        let mut due = None;
        if let Some(t) = self.ends.timeout {
            if now >= start + t {
                return (
                    None,
                    Some(format!("listener exit due to --timeout {}", t.as_secs())),
                );
            }
            due = Some(start + t);
        }
        if let Some(t) = self.ends.idle_timeout {
            // Only this loop adds connections: none open now stays none until it accepts.
            let idle_due = match self.active.load(Ordering::SeqCst) {
                0 => *lock(&self.last_end) + t,
                // Look again in `t`: the last one to end sets the time counted from.
                _ => now + t,
            };
            if now >= idle_due {
                let why = format!("listener exit due to --idle-timeout {}", t.as_secs());
                return (None, Some(why));
            }
            due = due.into_iter().chain([idle_due]).min();
        }
        (due, None)
    }

    /// A connection thread has ended: forget it.
    fn ended(&self, id: u64) {
        let mut c = lock(&self.counts);
        c.cut.remove(&id);
        if let Some(p) = c.pending.remove(&id) {
            decrement(&mut c.pending_by_ip, p.key);
            crate::metrics::set_handshaking(c.pending.len());
        }
    }
}

/// Cut a pending connection: its thread wakes with an error and ends.
fn cut(c: &mut Counts, id: u64, why: &'static str) {
    if let Some(p) = c.pending.remove(&id) {
        let _ = p.sock.shutdown(Shutdown::Both);
        decrement(&mut c.pending_by_ip, p.key);
        c.cut.insert(id, why);
        crate::metrics::set_handshaking(c.pending.len());
        crate::metrics::refused(0, crate::metrics::Why::Pending);
    }
}

/// A tunnel's slots (in all and for its client); given back when dropped, even by a panic.
pub struct Admitted<'a> {
    hub: &'a Hub,
    key: Option<IpAddr>,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut c = lock(&self.hub.counts);
        c.tunnels -= 1;
        decrement(&mut c.tunnels_by_ip, self.key);
        drop(c);
        if self.hub.ends.run_once {
            let mut exit = lock(&self.hub.exit);
            if exit.is_none() {
                *exit = Some("exiting due to --run-once".into());
                drop(exit);
                wake();
            }
        }
    }
}

/// A tunnel's place in the hub's registry; leaving it (even by a panic) unregisters.
pub struct Registered<'a> {
    hub: &'a Hub,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.hub.open).remove(&self.id);
    }
}

/// A connection thread's hold on the hub; dropped (even by a panic) when the thread ends.
struct Slot(Arc<Hub>, u64);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.ended(self.1);
        // Before the count drops: whoever sees no connection open sees when the last one ended.
        *lock(&self.0.last_end) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        changed();
    }
}

/// Warnings that a flood could multiply: the first `LOG_LINES` of each `LOG_EVERY` in full,
/// then a count.
#[derive(Default)]
struct RateLog {
    /// Start of the current interval, lines logged and lines held back in it.
    window: Mutex<Option<(Instant, u32, u64)>>,
}

impl RateLog {
    fn warn(&self, line: std::fmt::Arguments) {
        let mut w = lock(&self.window);
        let now = Instant::now();
        let (start, logged, held) = w.get_or_insert((now, 0, 0));
        if now >= *start + LOG_EVERY {
            Self::report(*held);
            (*start, *logged, *held) = (now, 0, 0);
        }
        if *logged < LOG_LINES {
            *logged += 1;
            log::warn!("{line}");
        } else {
            *held += 1;
        }
    }

    /// When the held-back count is due to be logged, if there is one.
    fn due(&self) -> Option<Instant> {
        match *lock(&self.window) {
            Some((start, _, held)) if held > 0 => Some(start + LOG_EVERY),
            _ => None,
        }
    }

    /// Log the held-back count of an interval that has ended.
    fn flush(&self) {
        let mut w = lock(&self.window);
        if let Some((start, _, held)) = *w {
            if Instant::now() >= start + LOG_EVERY {
                Self::report(held);
                *w = None;
            }
        }
    }

    fn report(held: u64) {
        if held > 0 {
            log::warn!(
                "{held} more refusals in the last {} s (not logged one by one)",
                LOG_EVERY.as_secs()
            );
        }
    }
}

/// Bind, or fail with the address in the message. The accept queue is made as deep as the
/// system allows (std asks for 128): a burst of connections then waits to be accepted, where
/// a short queue would drop their SYNs and make real clients wait a second to retry.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let l = TcpListener::bind(addr).map_err(|e| Error::io(format!("listen on {addr}"), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: listen(2) on a socket we own; a second call only changes the backlog.
        unsafe { libc::listen(l.as_raw_fd(), libc::SOMAXCONN) };
    }
    Ok(l)
}

/// `bind` with SO_REUSEPORT (`--reuse-port`, Linux): several server processes listen on the
/// same address and the kernel spreads new connections among them, so that more tunnels than
/// one process can hold (threads, open files) share one port. std binds before any option
/// can be set, so the socket is made here: socket, the two options, bind, listen.
#[cfg(target_os = "linux")]
pub fn bind_shared(addr: SocketAddr) -> Result<TcpListener, Error> {
    use std::os::unix::io::FromRawFd;
    let err = |e| Error::io(format!("listen on {addr} (--reuse-port)"), e);
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) returns a new descriptor or -1; owned by the TcpListener at once, so
    // every early return closes it.
    let l = unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        TcpListener::from_raw_fd(fd)
    };
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&l);
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: setsockopt reads one int from the pointer given.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(err(io::Error::last_os_error()));
        }
    }
    // SAFETY: sockaddr_storage is large enough for either address, and zeroed is valid for it.
    let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            let sin = unsafe {
                &mut *(&mut sa as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut sa as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: bind and listen on our socket, with the address just filled in and its length.
    let r = unsafe {
        if libc::bind(
            fd,
            (&sa as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        ) != 0
        {
            -1
        } else {
            libc::listen(fd, libc::SOMAXCONN)
        }
    };
    if r != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(l)
}

#[cfg(not(target_os = "linux"))]
pub fn bind_shared(_addr: SocketAddr) -> Result<TcpListener, Error> {
    Err(Error::Usage("--reuse-port: Linux only".into()))
}

/// What the accept loop listens on: a TCP socket, or a Unix stream socket (`--unix-listen`, or
/// one handed over). A connection accepted on a Unix socket reaches the handler as a `TcpStream`
/// that holds the Unix socket's descriptor: std's `TcpStream` is a thin owner of a stream socket
/// descriptor, and every call the server makes on a connection (read, write, peek, shutdown,
/// poll, non-blocking mode, timeouts, try_clone, the SIOCOUTQ ioctl) is the same system call on
/// both kinds. Only the TCP ones fail there: `peer_addr` (so a Unix client has no address, is
/// logged as `unix` and is outside the per-address caps) and `set_nodelay`, which the server
/// ignores.
pub enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixBound),
}

/// A listening Unix socket, and the path it was bound to, removed when it is dropped (if the
/// socket there is still this one); none when it was handed over (its owner removes it).
#[cfg(unix)]
pub struct UnixBound {
    sock: UnixListener,
    path: Option<(PathBuf, u64)>,
}

#[cfg(unix)]
impl Drop for UnixBound {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let Some((path, ino)) = &self.path {
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *ino) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Listener {
        Listener::Tcp(l)
    }
}

impl Listener {
    /// Where it listens, for the log: `127.0.0.1:4567`, `unix:/run/wssh.sock`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map_or("?".into(), |a| a.to_string()),
            #[cfg(unix)]
            Listener::Unix(u) => match u
                .sock
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            {
                Some(p) => format!("unix:{p}"),
                None => "unix:?".into(),
            },
        }
    }

    /// The TCP port it listens on; none on a Unix socket.
    pub fn port(&self) -> Option<u16> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            #[cfg(unix)]
            Listener::Unix(_) => None,
        }
    }

    /// The TCP address it listens on; none on a Unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            #[cfg(unix)]
            Listener::Unix(_) => None,
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            #[cfg(unix)]
            Listener::Unix(u) => u.sock.set_nonblocking(true),
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        match self {
            Listener::Tcp(l) => crate::pump::wait_readable(l, timeout),
            #[cfg(unix)]
            Listener::Unix(u) => crate::pump::wait_readable_unix(&u.sock, timeout),
        }
    }

    /// The next connection and its client's address (none on a Unix socket).
    fn accept(&self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| (s, Some(a))),
            #[cfg(unix)]
            Listener::Unix(u) => {
                use std::os::unix::io::{FromRawFd, IntoRawFd};
                let (s, _) = u.sock.accept()?;
                // SAFETY: the descriptor is a connected stream socket that we own (see `Listener`).
                Ok((unsafe { TcpStream::from_raw_fd(s.into_raw_fd()) }, None))
            }
        }
    }

    /// Where `wake` connects to reach the accept loop.
    fn wake(&self) -> Option<Wake> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| Wake::Tcp(wake_addr(a))),
            #[cfg(unix)]
            Listener::Unix(u) => u
                .sock
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| Wake::Unix(p.to_path_buf()))),
        }
    }
}

/// Listen on a Unix socket at `path`, its permissions `mode` from the start (the umask is set
/// around the bind, before any thread runs). A socket file left by a server that is gone is
/// replaced; one where a server still answers, or anything that is not a socket, is an error.
#[cfg(unix)]
pub fn bind_unix(path: &std::path::Path, mode: u32) -> Result<Listener, Error> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::os::unix::io::AsRawFd;
    let what = format!("--unix-listen {}", path.display());
    let err = |e| Error::io(what.clone(), e);
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(err(io::Error::other(
                "exists and is not a socket (not removed)",
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(io::Error::other("another server listens there")));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    // SAFETY: umask only swaps the process's file creation mask.
    let old = unsafe { libc::umask(!(mode as libc::mode_t) & 0o777) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, putting the old mask back.
    unsafe { libc::umask(old) };
    let sock = bound.map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    let ino = std::fs::symlink_metadata(path).map_err(err)?.ino();
    // SAFETY: listen(2) on a socket we own; a second call only changes the backlog.
    unsafe { libc::listen(sock.as_raw_fd(), libc::SOMAXCONN) };
    Ok(Listener::Unix(UnixBound {
        sock,
        path: Some((path.to_path_buf(), ino)),
    }))
}

#[cfg(not(unix))]
pub fn bind_unix(_path: &std::path::Path, _mode: u32) -> Result<Listener, Error> {
    Err(Error::Usage(
        "--unix-listen: no Unix sockets on this system".into(),
    ))
}

/// A listening socket handed over by whoever started wssh, instead of one it binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// `--inetd`: fd 0 (inetd's `wait` mode, systemd's `StandardInput=socket` with `Accept=no`).
    Inetd,
    /// systemd socket activation (`LISTEN_FDS=1` for this process): fd 3.
    Systemd,
}

impl Handed {
    fn what(self) -> (i32, &'static str) {
        match self {
            Handed::Inetd => (0, "--inetd: fd 0"),
            Handed::Systemd => (3, "socket activation (LISTEN_FDS): fd 3"),
        }
    }
}

/// Take over a handed listening socket: a listening stream socket, TCP or Unix (anything else
/// is refused, with what it is). It is made close-on-exec, so a wrapped program does not
/// inherit it.
#[cfg(unix)]
pub fn adopt(h: Handed) -> Result<Listener, Error> {
    use std::os::unix::io::FromRawFd;
    let (fd, what) = h.what();
    let int_opt = |opt| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`; a bad fd is an error return.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    let bad = |why: &str| Error::io(what, io::Error::other(why.to_string()));
    match (int_opt(libc::SO_TYPE), int_opt(libc::SO_ACCEPTCONN)) {
        (None, _) => return Err(bad("not a socket")),
        (Some(t), _) if t != libc::SOCK_STREAM => return Err(bad("not a stream socket")),
        (_, Some(0)) => {
            return Err(bad(
                "not a listening socket (use inetd's wait mode, systemd's Accept=no)",
            ))
        }
        _ => {}
    }
    // fd 0 is stdin too (and -D points it at /dev/null): the socket moves to a higher fd,
    // close-on-exec, and fd 0 becomes /dev/null.
    let fd = match h {
        Handed::Inetd => {
            // SAFETY: fcntl, open and dup2 on fds of this process.
            unsafe {
                let moved = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
                if moved < 0 {
                    return Err(Error::io(what, io::Error::last_os_error()));
                }
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::close(null);
                }
                moved
            }
        }
        Handed::Systemd => fd,
    };
    // SAFETY: fcntl on an fd handed to this process to own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the fd is an open listening stream socket, handed to this process to own; which
    // kind it is, its address says.
    let l = unsafe { TcpListener::from_raw_fd(fd) };
    let listener = match l.local_addr() {
        Ok(_) => Listener::Tcp(l),
        Err(_) => {
            use std::os::unix::io::IntoRawFd;
            // SAFETY: the same descriptor, not a TCP one: a Unix socket if its address says so.
            let u = unsafe { UnixListener::from_raw_fd(l.into_raw_fd()) };
            if u.local_addr().is_err() {
                std::mem::forget(u);
                return Err(bad("neither a TCP nor a Unix socket"));
            }
            Listener::Unix(UnixBound {
                sock: u,
                path: None,
            })
        }
    };
    log::debug!("using the listening socket handed over ({what})");
    Ok(listener)
}

#[cfg(not(unix))]
pub fn adopt(h: Handed) -> Result<Listener, Error> {
    let (_, what) = h.what();
    Err(Error::Usage(format!("{what}: not on this system")))
}

/// Accept until a signal; run `handle` on its own thread for each connection. The handler must
/// call `Hub::admit` before its connection becomes a tunnel: until then it is pending, and the
/// listener cuts it at its deadline or to make room.
pub fn serve<F>(listener: TcpListener, limits: Limits, handle: F) -> Result<(), Error>
where
    F: Fn(&Hub, u64, TcpStream) + Send + Sync + 'static,
{
    serve_until(listener.into(), limits, Ends::default(), handle)
}

/// `serve`, and also end as `ends` says: then no new connection is accepted, the ones open
/// are left to finish (a signal still cuts them), and it returns once they have.
pub fn serve_until<F>(
    listener: Listener,
    limits: Limits,
    ends: Ends,
    handle: F,
) -> Result<(), Error>
where
    F: Fn(&Hub, u64, TcpStream) + Send + Sync + 'static,
{
    let start = Instant::now();
    check_open_files(&limits);
    listener
        .set_nonblocking()
        .map_err(|e| Error::io("listen", e))?;
    let hub = Arc::new(Hub::new(limits, ends));
    ctrlc::set_handler(|| {
        if !begin_stop() {
            log::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    })
    .map_err(|e| Error::io("install signal handler", io::Error::other(e.to_string())))?;
    crate::logfile::reopen_on_sighup();
    // Set before the loop looks at the flag: a `stop` either sees this or is seen by the loop.
    *lock(&WAKE) = listener.wake();
    log::info!("listening on {}", listener.describe());

    let handle = Arc::new(handle);
    let mut next_due = None;
    let mut ended = None;
    'accept: while !hub.stopping() {
        // Sleep until a connection comes, a pending deadline falls due, a count is to be
        // logged or the listener is to end: an idle listener does not wake.
        let (end_due, why) = hub.end_due(start);
        if let Some(why) = why {
            ended = Some(why);
            break;
        }
        let due = [next_due, hub.log.due(), end_due]
            .into_iter()
            .flatten()
            .min();
        let timeout = due.map(|d: Instant| d.saturating_duration_since(Instant::now()));
        if let Err(e) = listener.wait(timeout) {
            log::warn!("wait for connections: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        next_due = hub.reap();
        hub.log.flush();
        if let (_, Some(why)) = hub.end_due(start) {
            ended = Some(why);
            break;
        }
        loop {
            let (sock, peer) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // EMFILE, ECONNABORTED and the like: say so, breathe, go on.
                    hub.refused(format_args!("accept: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            };
            if hub.stopping() {
                break 'accept;
            }
            let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
            // Accepted sockets inherit non-blocking mode on some systems.
            let taken = sock
                .set_nonblocking(false)
                .map_err(|e| e.to_string())
                .and_then(|()| hub.take(id, &sock, peer));
            if let Err(why) = taken {
                let peer = peer.map_or("unix".into(), |p| p.to_string());
                hub.refused(format_args!("conn-{id} peer={peer}: {why}; refused"));
                continue;
            }
            next_due = next_due.or(Some(Instant::now() + hub.limits.handshake));
            hub.active.fetch_add(1, Ordering::SeqCst);
            let (slot, handle) = (Slot(hub.clone(), id), handle.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("conn-{id}"))
                .stack_size(STACK)
                .spawn(move || handle(&slot.0, id, sock));
            // On failure the closure, and with it the slot, is dropped: the counts go back.
            if let Err(e) = spawned {
                hub.refused(format_args!("conn-{id}: cannot start a thread: {e}"));
            }
        }
    }
    // Stop accepting for real: newcomers are refused now, not queued until exit.
    drop(listener);
    if let Some(why) = ended {
        log::info!("{why}");
        // Let the open connections finish, as websockify's forked ones do; a signal cuts them.
        // Pending ones still meet their deadlines.
        let mut n = lock(&CHANGES);
        while hub.active.load(Ordering::SeqCst) > 0 && !hub.stopping() {
            let due = hub
                .reap()
                .map(|d| d.saturating_duration_since(Instant::now()));
            n = match due {
                Some(d) => {
                    CHANGED
                        .wait_timeout(n, d)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => CHANGED.wait(n).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
    for s in lock(&hub.open).values() {
        let _ = s.shutdown(Shutdown::Both);
    }
    for p in lock(&hub.counts).pending.values() {
        let _ = p.sock.shutdown(Shutdown::Both);
    }
    let deadline = Instant::now() + DRAIN;
    while hub.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    log::info!("stopped");
    Ok(())
}

/// Descriptors one tunnel holds: its two sockets (the threads, the waits and the shutdown
/// registry share them). A pending connection holds two: its socket and the clone the
/// listener cuts it with.
#[cfg(unix)]
const FDS_PER_TUNNEL: usize = 2;
#[cfg(unix)]
const FDS_PER_PENDING: usize = 2;

/// Raise the soft limit on open files to the hard one (a login's default of 1024 would allow
/// about 200 tunnels), and say so if the configured connections still cannot fit.
#[cfg(unix)]
fn check_open_files(limits: &Limits) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the one struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = open_files_wanted(lim.rlim_max, cfg!(target_vendor = "apple"));
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                log::debug!("open files limit raised from {} to {want}", lim.rlim_cur);
                lim = raised;
            }
        }
    }
    let fds = usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(32)
        .saturating_sub(limits.max_pending * FDS_PER_PENDING);
    let fit = fds / FDS_PER_TUNNEL;
    if fit < limits.max_tunnels {
        log::warn!(
            "the open files limit ({}) allows about {fit} tunnels, fewer than --max-tunnels {}: \
             raise it (ulimit -n, LimitNOFILE=) or lower --max-tunnels",
            lim.rlim_cur,
            limits.max_tunnels
        );
    }
    check_map_count(limits);
}

/// Memory areas one thread maps: its stack and guard page, and the signal stack and guard page
/// that Rust sets up for every thread. A tunnel has two threads, a pending connection one.
#[cfg(target_os = "linux")]
const MAPS_PER_THREAD: usize = 4;

/// Linux caps the memory areas of a process (`vm.max_map_count`, 65530 by default), and a
/// thread that cannot map its signal stack aborts the whole process: say so at start when
/// `--max-tunnels` cannot fit (about 8,000 tunnels under the default).
#[cfg(target_os = "linux")]
fn check_map_count(limits: &Limits) {
    let Some(max) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
    else {
        return;
    };
    // Some hundreds for the program, its libraries and the allocator's arenas.
    let spare = max
        .saturating_sub(1000)
        .saturating_sub(limits.max_pending * MAPS_PER_THREAD);
    let fit = spare / (2 * MAPS_PER_THREAD);
    if fit < limits.max_tunnels {
        log::warn!(
            "vm.max_map_count ({max}) allows about {fit} tunnels, fewer than --max-tunnels {}: \
             beyond it the server aborts; raise it (sysctl vm.max_map_count=262144) or lower \
             --max-tunnels",
            limits.max_tunnels
        );
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn check_map_count(_limits: &Limits) {}

/// The soft limit to raise to: the hard one, but on macOS at most `OPEN_MAX` (10240), since
/// its setrlimit refuses more than that for open files even when the hard limit is
/// `RLIM_INFINITY` (as it is by default there).
#[cfg(unix)]
fn open_files_wanted(hard: libc::rlim_t, apple: bool) -> libc::rlim_t {
    const OPEN_MAX: libc::rlim_t = 10240;
    match apple {
        true => hard.min(OPEN_MAX),
        false => hard,
    }
}

#[cfg(not(unix))]
fn check_open_files(_limits: &Limits) {}

/// Where `begin_stop` connects to wake the accept loop.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, key: &str) {
        assert_eq!(ip_key(ip.parse().unwrap()).to_string(), key, "{ip}");
    }

    #[test]
    fn client_keys() {
        check("192.0.2.7", "192.0.2.7");
        check("::ffff:192.0.2.7", "192.0.2.7");
        check("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::");
        check("2001:db8:1:2:ffff::1", "2001:db8:1:2::");
        check("::1", "::");
    }

    #[test]
    fn open_files_limit_is_clamped_on_macos_only() {
        let inf = libc::RLIM_INFINITY;
        for (hard, apple, want) in [
            (inf, true, 10240),
            (4096, true, 4096),
            (1_048_576, false, 1_048_576),
            (inf, false, inf),
        ] {
            assert_eq!(open_files_wanted(hard, apple), want, "{hard} {apple}");
        }
    }
}
