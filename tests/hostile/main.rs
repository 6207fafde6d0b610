//! Hostile clients against the real `wssh server` on loopback: control-frame floods, a client
//! that never reads, slowloris and idle-connect floods from many loopback addresses, per-address
//! caps, the handshake deadline and a long drain. These tests measure memory and time on a
//! small machine, so they run one at a time (`SERIAL`), in their own test binary so that no
//! other test runs beside them. Every wait is bounded.

#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::io::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use support::*;

/// One test at a time: they measure time and memory.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    raise_open_files();
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The floods below hold thousands of sockets in this process.
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Resident memory of a process in KiB (Linux /proc).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The n-th loopback address from 127.0.0.2 up.
fn loopback(n: usize) -> IpAddr {
    let n = n as u32 + 2;
    IpAddr::V4(Ipv4Addr::new(127, 0, (n >> 8) as u8, n as u8))
}

/// A TCP connection from a chosen local address (std cannot bind before connecting).
fn connect_from(src: IpAddr, dst: SocketAddr) -> io::Result<TcpStream> {
    let (IpAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only");
    };
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket is owned by the TcpStream made from it (closed on error paths
    // by that TcpStream's drop); bind and connect read one sockaddr_in of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = TcpStream::from_raw_fd(fd);
        s.set_write_timeout(Some(Duration::from_secs(2)))?; // bounds connect(2) too
        let a = sin(src, 0);
        if libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let b = sin(*dst.ip(), dst.port());
        if libc::connect(fd, &b as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A masked client frame of any size.
fn big_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [7u8, 3, 1, 9];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Open a tunnel by hand from `src` (the handshake sent in `pieces`, `gap` apart), echo 5
/// bytes through it, and return how long that took.
fn timed_tunnel(srv: SocketAddr, src: IpAddr, pieces: usize, gap: Duration) -> Duration {
    let t = Instant::now();
    let mut s = connect_from(src, srv).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let head = UPGRADE.as_bytes();
    for (i, piece) in head.chunks(head.len().div_ceil(pieces)).enumerate() {
        if i > 0 {
            thread::sleep(gap);
        }
        s.write_all(piece).expect("send the head");
    }
    let answer = read_head(&mut s);
    assert!(answer.starts_with("HTTP/1.1 101"), "got {answer:?}");
    s.write_all(&big_frame(2, b"hello")).unwrap();
    let mut echo = [0u8; 7];
    s.read_exact(&mut echo).expect("the echo");
    assert_eq!(&echo[2..], b"hello");
    t.elapsed()
}

/// Write `frame` over and over from a thread until `secs` pass or the server stops taking
/// it; returns the socket (to read from afterwards) and how many frames went.
fn flood(mut s: TcpStream, frame: Vec<u8>, secs: u64) -> thread::JoinHandle<(TcpStream, u64)> {
    thread::spawn(move || {
        let t = Instant::now();
        s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let copies = (64 * 1024 / frame.len()).max(1);
        let batch: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * copies)
            .collect();
        let (end, mut sent, mut stalls) = (Instant::now() + Duration::from_secs(secs), 0, 0);
        while Instant::now() < end {
            match s.write(&batch) {
                Ok(n) => sent += (n / frame.len()) as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stalls += 1, // back-pressure
                Err(_) => break,                                                // closed
            }
            if stalls > 0 && sent == 0 && stalls > secs {
                break;
            }
        }
        eprintln!(
            "flood of {}-byte frames ended after {:?}",
            frame.len(),
            t.elapsed()
        );
        (s, sent)
    })
}

/// Watch a server while something runs: its peak RSS growth (KiB) over `start`, and the
/// slowest of the normal tunnels opened meanwhile (one every 500 ms).
struct Watch {
    peak: u64,
    slowest: Duration,
    tries: usize,
}

fn watch(srv: &Server, secs: u64, start: u64) -> Watch {
    let mut w = Watch {
        peak: 0,
        slowest: Duration::ZERO,
        tries: 0,
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
    while Instant::now() < end {
        w.peak = w.peak.max(rss_kib(srv.proc.pid()).saturating_sub(start));
        w.slowest = w.slowest.max(timed_tunnel(srv.addr, me, 1, Duration::ZERO));
        w.tries += 1;
        thread::sleep(Duration::from_millis(500));
    }
    w
}

/// A server, warmed up by one tunnel, and its RSS then.
fn warm_server(target: &Target, extra: &[&str]) -> (Server, u64) {
    let mut args = vec!["--target".to_string(), target.arg()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let srv = Server::start(&args);
    timed_tunnel(srv.addr, IpAddr::V4(Ipv4Addr::LOCALHOST), 1, Duration::ZERO);
    let start = rss_kib(srv.proc.pid());
    (srv, start)
}

fn control_flood(opcode: u8, name: &str) {
    let _one = serial();
    let target = Target::echo();
    let (srv, start) = warm_server(&target, &[]);
    let flooder = raw_ws(srv.addr, "/");
    let running = flood(flooder, big_frame(opcode, &[0x55; 125]), 10);
    let w = watch(&srv, 10, start);
    let (mut s, sent) = running.join().unwrap();
    eprintln!(
        "{name} flood: {sent} frames sent; server RSS +{} KiB at most; slowest normal tunnel \
         {:?} of {}",
        w.peak, w.slowest, w.tries
    );
    assert!(w.peak < 16 * 1024, "RSS grew by {} KiB", w.peak);
    assert!(w.slowest < Duration::from_secs(1), "{:?}", w.slowest);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(close_code(&mut s), Some(1008), "{}", srv.log());
    assert!(
        srv.log().contains("flooded control frames"),
        "{}",
        srv.log()
    );
}

#[test]
fn a_ping_flood_from_a_client_that_never_reads_is_closed_1008_in_bounded_memory() {
    control_flood(9, "ping");
}

#[test]
fn a_pong_flood_from_a_client_that_never_reads_is_closed_1008_in_bounded_memory() {
    control_flood(10, "pong");
}

/// Per tunnel at most, as the README's Security section states it (KiB): two thread stacks,
/// a frame and a message being assembled, the write buffer, the local read buffer and TLS.
const PER_TUNNEL_KIB: u64 = 2 * 256 + 2 * 1024 + 68 + 2 * 64 + 80;
/// And a constant on top (allocator arenas, the listener).
const CONSTANT_KIB: u64 = 16 * 1024;

#[test]
fn one_mib_frames_to_an_echo_target_from_clients_that_never_read_are_slowed_not_buffered() {
    let _one = serial();
    let target = Target::echo();
    let (srv, start) = warm_server(&target, &[]);
    let frame = big_frame(2, &data(3, 1 << 20));
    let running = flood(raw_ws(srv.addr, "/"), frame.clone(), 10);
    let w = watch(&srv, 10, start);
    let (mut s, sent) = running.join().unwrap();
    eprintln!(
        "1 MiB frames, one client: {sent} frames taken; server RSS +{} KiB at most; slowest \
         normal tunnel {:?}",
        w.peak, w.slowest
    );
    assert!(w.peak < 64 * 1024, "RSS grew by {} KiB", w.peak);
    assert!(w.slowest < Duration::from_secs(1));
    // Slowed down, not cut: the echo of what it sent is there to read.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b)
        .expect("still open, with the echo waiting");
    assert_eq!(b[0], 0x82, "a binary frame");

    // Twenty at once stay within the stated formula.
    let running: Vec<_> = (0..20)
        .map(|_| flood(raw_ws(srv.addr, "/"), frame.clone(), 10))
        .collect();
    let w = watch(&srv, 10, start);
    let bound = 21 * PER_TUNNEL_KIB + CONSTANT_KIB;
    eprintln!(
        "1 MiB frames, 21 clients: server RSS +{} KiB at most (bound {bound} KiB); slowest \
         normal tunnel {:?}",
        w.peak, w.slowest
    );
    assert!(w.peak < bound, "RSS grew by {} KiB", w.peak);
    assert!(w.slowest < Duration::from_secs(1));
    for r in running {
        r.join().unwrap();
    }
}

/// Many sockets from many loopback addresses, each kept open: `trickle` sends one byte of a
/// request head per second on each; otherwise they stay silent. A socket the server closes is
/// opened again. Stops when dropped.
struct Horde {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    reconnects: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Horde {
    fn start(srv: SocketAddr, count: usize, trickle: bool) -> Horde {
        let (stop, open, reconnects) = Default::default();
        let (s, o, r): (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicUsize>) = (
            Arc::clone(&stop),
            Arc::clone(&open),
            Arc::clone(&reconnects),
        );
        let thread = thread::spawn(move || {
            // 5 sockets per address: under the default per-address pending cap.
            let from = |i: usize| loopback(i / 5);
            let mut socks: Vec<Option<TcpStream>> = (0..count).map(|_| None).collect();
            let mut sent = vec![0usize; count];
            let head = UPGRADE.as_bytes();
            while !s.load(Ordering::SeqCst) {
                let round = Instant::now();
                for i in 0..count {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let alive = match &mut socks[i] {
                        None => false,
                        Some(sock) if trickle => {
                            let b = head[sent[i] % (head.len() - 4)];
                            sent[i] += 1;
                            sock.write(&[b]).is_ok_and(|n| n == 1)
                        }
                        Some(sock) => {
                            let mut b = [0u8; 1];
                            sock.set_nonblocking(true).unwrap();
                            let r = sock.read(&mut b);
                            sock.set_nonblocking(false).unwrap();
                            matches!(r, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
                        }
                    };
                    if !alive {
                        if socks[i].take().is_some() {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                        socks[i] = connect_from(from(i), srv).ok();
                        sent[i] = 0;
                    }
                }
                o.store(socks.iter().flatten().count(), Ordering::SeqCst);
                let left = Duration::from_secs(1).saturating_sub(round.elapsed());
                thread::sleep(left);
            }
        });
        Horde {
            stop,
            open,
            reconnects,
            thread: Some(thread),
        }
    }
}

impl Drop for Horde {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn against_horde(trickle: bool, count: usize, name: &str) {
    let _one = serial();
    let target = Target::echo();
    let (srv, start) = warm_server(&target, &[]);
    let horde = Horde::start(srv.addr, count, trickle);
    eventually("the horde to be in place", || {
        horde.open.load(Ordering::SeqCst) >= count * 9 / 10
    });
    let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut times = Vec::new();
    for _ in 0..5 {
        let fast = timed_tunnel(srv.addr, me, 1, Duration::ZERO);
        let slow = timed_tunnel(srv.addr, me, 3, Duration::from_millis(150));
        times.push((fast, slow));
        thread::sleep(Duration::from_millis(700));
    }
    let peak = rss_kib(srv.proc.pid()).saturating_sub(start);
    eprintln!(
        "{name}: {} of {count} sockets open, {} reopened after the server closed them; \
         server RSS +{peak} KiB; tunnel times (normal, 300 ms handshake): {times:?}",
        horde.open.load(Ordering::SeqCst),
        horde.reconnects.load(Ordering::Relaxed)
    );
    for (fast, slow) in times {
        assert!(fast < Duration::from_secs(1), "{fast:?}");
        assert!(slow < Duration::from_secs(1), "{slow:?}");
    }
    drop(horde);
    // Thousands of refusals, a bounded number of lines: 10 in full per 10 s, then a count.
    let warnings = srv.log().lines().filter(|l| l.contains("WARN")).count();
    eprintln!("{name}: {warnings} warning lines logged");
    assert!(warnings <= 2 * 11, "{warnings} warnings: {}", srv.log());
}

#[test]
fn a_thousand_slowloris_sockets_do_not_lock_real_clients_out() {
    against_horde(true, 1000, "1,000 slowloris sockets");
}

#[test]
fn three_thousand_idle_connections_do_not_lock_real_clients_out() {
    against_horde(false, 3000, "3,000 idle connections");
}

/// Sockets from `src` still open after a moment (the others were closed by the server).
fn still_open(socks: &mut [TcpStream]) -> usize {
    thread::sleep(Duration::from_millis(500));
    socks.iter_mut().filter(|s| is_open(s)).count()
}

/// Has the server left this socket open (nothing to read, no EOF, no reset)?
fn is_open(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let r = s.read(&mut [0u8; 64]);
    s.set_nonblocking(false).unwrap();
    matches!(r, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[test]
fn one_address_is_held_to_its_pending_cap_but_a_trusted_proxy_is_not() {
    let _one = serial();
    let target = Target::echo();
    let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let greedy = loopback(40);
    let srv = Server::start(&["--target", &target.arg(), "--max-pending-per-ip", "4"]);
    let mut socks: Vec<TcpStream> = (0..10)
        .map(|_| connect_from(greedy, srv.addr).unwrap())
        .collect();
    assert_eq!(still_open(&mut socks), 4, "{}", srv.log());
    assert!(timed_tunnel(srv.addr, me, 1, Duration::ZERO) < Duration::from_secs(1));
    assert!(srv.log().contains("over --max-pending-per-ip 4"));

    let srv = Server::start(&[
        "--target",
        &target.arg(),
        "--max-pending-per-ip",
        "4",
        "--trusted-proxy",
        &greedy.to_string(),
    ]);
    let mut socks: Vec<TcpStream> = (0..10)
        .map(|_| connect_from(greedy, srv.addr).unwrap())
        .collect();
    assert_eq!(still_open(&mut socks), 10, "{}", srv.log());
}

#[test]
fn tunnels_per_client_are_capped() {
    let _one = serial();
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "--max-per-ip", "2"]);
    let one = loopback(50);
    let _a = timed_tunnel_kept(srv.addr, one);
    let _b = timed_tunnel_kept(srv.addr, one);
    let mut c = connect_from(one, srv.addr).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c.write_all(UPGRADE.as_bytes()).unwrap();
    let answer = read_head(&mut c);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // Another client is not affected.
    let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(timed_tunnel(srv.addr, me, 1, Duration::ZERO) < Duration::from_secs(1));
}

/// An open tunnel from `src`, kept open while the socket lives.
fn timed_tunnel_kept(srv: SocketAddr, src: IpAddr) -> TcpStream {
    let mut s = connect_from(src, srv).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(UPGRADE.as_bytes()).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    s
}

/// A client that sends one byte a second is cut at the deadline, not a read timeout later.
fn trickle_is_cut(srv: &Server, first: &[u8]) {
    let mut s = TcpStream::connect(srv.addr).unwrap();
    let t = Instant::now();
    s.write_all(first).unwrap();
    let mut cut = None;
    for b in UPGRADE.bytes().take(10) {
        thread::sleep(Duration::from_secs(1));
        if !is_open(&s) || s.write_all(&[b]).is_err() {
            cut = Some(t.elapsed());
            break;
        }
    }
    let cut = cut.expect("the server never cut the trickling client");
    assert!(cut < Duration::from_millis(3500), "cut after {cut:?}");
    eventually("the log line", || srv.log().contains("handshake timed out"));
}

#[test]
fn the_handshake_deadline_holds_against_a_client_that_trickles_a_byte_a_second() {
    let _one = serial();
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "--handshake-timeout", "2"]);
    trickle_is_cut(&srv, b"G");
    // And within a TLS hello.
    let TlsServer { srv, dir: _dir, .. } = tls_server(&target.arg(), &["--handshake-timeout", "2"]);
    trickle_is_cut(&srv, &[0x16, 0x03]);
}

const PAUSE_AT: usize = 8;

#[test]
fn a_long_drain_to_a_slow_reader_delivers_every_byte_with_ping_1() {
    let _one = serial();
    let len = 64 << 20;
    let payload = Arc::new(data(21, len));
    let p = payload.clone();
    let target = Target::start(move |mut s| {
        s.write_all(&p).unwrap(); // then close: the tunnel ends behind the data
    });
    let srv = Server::start(&["--target", &target.arg(), "--ping", "1"]);
    let mut c = client(&["--ping", "1", &srv.url("ws", "/")]);
    let _stdin = c.child.stdin.take().unwrap(); // held open: only the target ends the tunnel
    let mut out = c.child.stdout.take().unwrap();
    let t = Instant::now();
    let reader = thread::spawn(move || {
        let (mut got, mut buf) = (Vec::with_capacity(len), vec![0u8; 64 * 1024]);
        let mut paused = false;
        while t.elapsed() < Duration::from_secs(60) {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            thread::sleep(Duration::from_millis(15)); // about 4 MB/s at most
            if got.len() >= len - (PAUSE_AT << 20) && !paused {
                // Stop reading for a while near the end: the server's Close is queued behind
                // the tail by now, and it must keep waiting without pinging.
                paused = true;
                thread::sleep(Duration::from_millis(2500));
            }
        }
        got
    });
    let got = reader.join().unwrap();
    let status = c.wait_for(PATIENCE);
    eprintln!(
        "long drain: {} of {len} bytes in {:?}",
        got.len(),
        t.elapsed()
    );
    assert_eq!(got.len(), len, "{}\n{}", c.stderr_text(), srv.log());
    assert_eq!(checksum(&got), checksum(&payload));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        c.stderr_text()
    );
    assert!(
        t.elapsed() > Duration::from_secs(5),
        "slow enough for several pings"
    );
}

/// Read frames from the server until `n` payload bytes came.
fn read_payload(s: &mut TcpStream, n: usize) {
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < n {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).expect("a frame from the server");
        assert_eq!(h[0], 0x82, "a binary frame");
        let mut left = payload_len(s, h[1]);
        got += left;
        while left > 0 {
            let k = left.min(buf.len());
            s.read_exact(&mut buf[..k]).expect("the payload");
            left -= k;
        }
    }
    assert_eq!(got, n, "echoed bytes");
}

#[test]
fn tunnels_that_moved_data_and_went_quiet_give_their_buffers_back() {
    // Each tunnel echoes 4 MiB in 256 KiB frames, then goes quiet: what it holds then is
    // bounded by what an idle tunnel holds, not by the frames it carried. When tungstenite
    // read the frames, it kept a read buffer the size of the largest one per tunnel, and glibc
    // kept what the tunnels' threads had freed in arenas of their own: 385 KiB a tunnel here
    // (203 with Wire reading the frames, 43 with two arenas and a trim when quiet).
    let _serial = serial();
    const TUNNELS: usize = 20;
    const FRAME: usize = 256 * 1024;
    const FRAMES: usize = 16;
    let target = Target::echo();
    let (srv, start) = warm_server(&target, &[]);
    let pid = srv.proc.pid();
    let mut socks: Vec<TcpStream> = (0..TUNNELS).map(|_| raw_ws(srv.addr, "/")).collect();
    let frame = big_frame(2, &vec![0x5a; FRAME]);
    for s in &mut socks {
        for _ in 0..FRAMES {
            s.write_all(&frame).expect("send a frame");
            read_payload(s, FRAME);
        }
    }
    let busy = rss_kib(pid).saturating_sub(start) / TUNNELS as u64;
    // The server gives buffers back after 1 s of quiet on each side.
    thread::sleep(Duration::from_millis(2500));
    let quiet = rss_kib(pid).saturating_sub(start) / TUNNELS as u64;
    eprintln!("per tunnel: {busy} KiB just after the traffic, {quiet} KiB after 2.5 s of quiet");
    assert!(
        quiet <= 128,
        "{quiet} KiB per quiet tunnel after {} MiB each way ({busy} KiB just after)",
        (FRAME * FRAMES) >> 20
    );
    for s in &mut socks {
        s.write_all(&big_frame(2, b"still")).unwrap();
        read_payload(s, 5);
    }
}
