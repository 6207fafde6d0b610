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
//! (`--inetd`, systemd's `LISTEN_FDS`) is adopted in place of one bound. It knows nothing of HTTP or
//! WebSocket; the handlers report progress and ask for admission.

use crate::bridge::Local;
use crate::error::Error;
use crate::policy::Rule;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
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
    key: IpAddr,
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
static WAKE: Mutex<Option<SocketAddr>> = Mutex::new(None);
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
    let wake = *lock(&WAKE);
    if let Some(addr) = wake {
        let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
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
    open: Mutex<HashMap<u64, Local>>,
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

fn decrement(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
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

    /// Let shutdown cut this tunnel's local socket until the returned guard is dropped. Cut at
    /// once if shutdown has begun. Fails when the socket cannot be cloned (out of descriptors).
    pub fn register(&self, id: u64, sock: &Local) -> io::Result<Registered<'_>> {
        lock(&self.open).insert(id, sock.try_clone()?);
        if self.stopping() {
            let _ = sock.shutdown(Shutdown::Both);
        }
        Ok(Registered { hub: self, id })
    }

    /// Log a refusal, at a bounded rate: a flood of them becomes one line per `LOG_EVERY`.
    pub fn refused(&self, line: std::fmt::Arguments) {
        self.log.warn(line);
    }

    /// A newcomer from `peer`: refuse it, or make room and record it as pending.
    fn take(&self, id: u64, sock: &TcpStream, peer: SocketAddr) -> Result<(), String> {
        let l = &self.limits;
        let key = ip_key(peer.ip());
        let exempt = l.exempt.iter().any(|r| r.contains_ip(peer.ip()));
        let clone = sock
            .try_clone()
            .map_err(|e| format!("cannot keep track of it: {e}"))?;
        let mut c = lock(&self.counts);
        let from_here = c.pending_by_ip.get(&key).copied().unwrap_or(0);
        if !exempt && l.pending_per_ip > 0 && from_here >= l.pending_per_ip {
            return Err(format!(
                "over --max-pending-per-ip {} from {key}",
                l.pending_per_ip
            ));
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
        *c.pending_by_ip.entry(key).or_default() += 1;
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
        }
    }
}

/// Cut a pending connection: its thread wakes with an error and ends.
fn cut(c: &mut Counts, id: u64, why: &'static str) {
    if let Some(p) = c.pending.remove(&id) {
        let _ = p.sock.shutdown(Shutdown::Both);
        decrement(&mut c.pending_by_ip, p.key);
        c.cut.insert(id, why);
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
        if let Some(k) = self.key {
            decrement(&mut c.tunnels_by_ip, k);
        }
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

/// Take over a handed listening socket. Only a listening TCP socket will do (one bound to a
/// Unix path is refused, with its name); it is made close-on-exec, so a wrapped program does
/// not inherit it.
#[cfg(unix)]
pub fn adopt(h: Handed) -> Result<TcpListener, Error> {
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
    // SAFETY: the fd is an open listening stream socket, handed to this process to own.
    let l = unsafe { TcpListener::from_raw_fd(fd) };
    match l.local_addr() {
        Ok(SocketAddr::V4(_) | SocketAddr::V6(_)) => {}
        Err(_) => {
            // Not ours to close: it is not a TCP socket (a Unix one, most likely).
            std::mem::forget(l);
            return Err(bad("not a TCP socket"));
        }
    }
    // SAFETY: fcntl on an fd we own now.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    log::debug!("using the listening socket handed over ({what})");
    Ok(l)
}

#[cfg(not(unix))]
pub fn adopt(h: Handed) -> Result<TcpListener, Error> {
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
    serve_until(listener, limits, Ends::default(), handle)
}

/// `serve`, and also end as `ends` says: then no new connection is accepted, the ones open
/// are left to finish (a signal still cuts them), and it returns once they have.
pub fn serve_until<F>(
    listener: TcpListener,
    limits: Limits,
    ends: Ends,
    handle: F,
) -> Result<(), Error>
where
    F: Fn(&Hub, u64, TcpStream) + Send + Sync + 'static,
{
    let start = Instant::now();
    let local = listener.local_addr().map_err(|e| Error::io("listen", e))?;
    check_open_files(&limits);
    listener
        .set_nonblocking(true)
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
    *lock(&WAKE) = Some(wake_addr(local));
    log::info!("listening on {local}");

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
        if let Err(e) = crate::pump::wait_readable(&listener, timeout) {
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

/// Descriptors one tunnel holds: its WebSocket and a clone to wait on, the local socket, a clone
/// for the second thread and one for the shutdown registry. A pending connection holds two.
#[cfg(unix)]
const FDS_PER_TUNNEL: usize = 5;
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
}

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
