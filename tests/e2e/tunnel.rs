//! The tunnel end to end through the real binary: bulk both ways at once, close orders,
//! half-close, targets and routing, clean stdout, idle CPU, and shutdown.

use crate::support::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BULK: usize = 64 << 20;

/// A target that sends `BULK` bytes of seed 2 while it reads everything the client sends,
/// then closes; the checksum of what it read arrives on the channel.
fn bulk_target() -> (Target, mpsc::Receiver<u64>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let t = Target::start(move |s| {
        let mut w = s.try_clone().unwrap();
        let sender = thread::spawn(move || w.write_all(&data(2, BULK)).unwrap());
        let mut got = Vec::with_capacity(BULK);
        (&s).read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        tx.lock().unwrap().send(checksum(&got)).unwrap();
    });
    (t, rx)
}

fn bulk_both_ways(scheme: &str) {
    let (target, got) = bulk_target();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&target.arg(), &[]);
    let url = srv.url(scheme, "/");
    let mut args = vec![url.as_str()];
    if scheme == "wss" {
        args.extend(["--ca", &c.ca]);
    }
    let started = Instant::now();
    let (status, out, err) = run_client(&args, &data(1, BULK));
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "client: {err}\nserver: {}",
        srv.log()
    );
    assert_eq!(out.len(), BULK, "bytes down");
    assert_eq!(checksum(&out), checksum(&data(2, BULK)), "content down");
    let up = got.recv_timeout(PATIENCE).expect("target result");
    assert_eq!(up, checksum(&data(1, BULK)), "content up");
    eprintln!("{scheme}: 64 MiB each way in {:?}", started.elapsed());
    eventually("the tunnel's log line", || {
        srv.log().contains(&format!("up={BULK} down={BULK}"))
    });
}

#[test]
fn the_binary_under_test_is_the_one_given() {
    // scripts/test runs this module against the static musl build too (WSSH_BIN, with
    // WSSH_BIN_TARGET naming its target): the version line must name that target and the commit
    // these tests were built from, and a server started by the helpers must be that very file.
    let target = std::env::var("WSSH_BIN_TARGET").unwrap_or(env!("WSSH_TARGET").into());
    let want = format!(
        "wssh {} ({target}, commit {})\n",
        env!("CARGO_PKG_VERSION"),
        env!("WSSH_COMMIT")
    );
    assert_eq!(run(std::process::Command::new(BIN).arg("--version")), want);
    let srv = Server::start(&[]);
    let exe = std::fs::read_link(format!("/proc/{}/exe", srv.proc.pid())).unwrap();
    assert_eq!(exe, std::path::Path::new(&*BIN).canonicalize().unwrap());
}

#[test]
fn bulk_64mib_each_way_at_once_over_ws() {
    bulk_both_ways("ws");
}

#[test]
fn bulk_64mib_each_way_at_once_over_wss() {
    bulk_both_ways("wss");
}

#[test]
fn target_closes_first_all_bytes_arrive_and_client_exits_with_stdin_open() {
    let payload = data(3, 3 << 20);
    let p = payload.clone();
    let target = Target::start(move |mut s| {
        s.write_all(&p).unwrap();
    });
    let srv = Server::start(&["--target", &target.arg()]);
    let mut c = client(&[&srv.url("ws", "/")]);
    let _stdin_held_open = c.child.stdin.take();
    let out = read_all_bounded(c.child.stdout.take().unwrap());
    let status = c
        .wait_for(Duration::from_secs(5))
        .expect("client must exit while stdin is open");
    assert_eq!(status.code(), Some(0), "{}", c.stderr_text());
    assert_eq!(checksum(&out), checksum(&payload));
}

#[test]
fn half_close_request_then_whole_reply() {
    // An HTTP/1.0-style target: reads the request to EOF, then answers and closes.
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let target = Target::start(move |mut s| {
        let mut req = Vec::new();
        s.read_to_end(&mut req).unwrap(); // returns only at the client's EOF
        let body = data(4, 300_000);
        s.write_all(
            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        )
        .unwrap();
        s.write_all(&body).unwrap();
        tx.lock().unwrap().send(req).unwrap();
    });
    let srv = Server::start(&["--target", &target.arg()]);
    let req = b"GET / HTTP/1.0\r\n\r\n";
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], req);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        req,
        "target got the whole request, then EOF"
    );
    let head = b"HTTP/1.0 200 OK\r\nContent-Length: 300000\r\n\r\n";
    assert!(out.starts_with(head));
    assert_eq!(
        checksum(&out[head.len()..]),
        checksum(&data(4, 300_000)),
        "whole reply"
    );
}

#[test]
fn client_stdin_eof_reaches_target_then_target_closes() {
    // Client closes first: every byte reaches the target, which then sees EOF.
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let target = Target::start(move |s| {
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        tx.lock().unwrap().send(got).unwrap();
    });
    let srv = Server::start(&["--target", &target.arg()]);
    let input = data(5, 5 << 20);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], &input);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert!(out.is_empty());
    assert_eq!(
        checksum(&rx.recv_timeout(PATIENCE).unwrap()),
        checksum(&input)
    );
}

#[test]
fn client_exits_nonzero_when_server_dies() {
    let target = Target::sink();
    let mut srv = Server::start(&["--target", &target.arg()]);
    let mut c = client(&[&srv.url("ws", "/")]);
    let _stdin = c.child.stdin.take();
    target.wait_for_tunnel();
    srv.proc.child.kill().unwrap();
    let status = c
        .wait_for(Duration::from_secs(5))
        .expect("client must exit");
    assert_eq!(status.code(), Some(1));
    assert!(
        c.stderr_text().starts_with("error: "),
        "{}",
        c.stderr_text()
    );
}

#[test]
fn denied_path_gets_403_and_target_is_never_dialled() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "--allow", "*.internal:22"]);
    let denied = format!("/ssh/127.0.0.1:{}", target.addr.port() + 1);
    let (status, out, err) = run_client(&[&srv.url("ws", &denied)], b"");
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(out.is_empty());
    assert_eq!(
        err.trim(),
        "error: server answered 403 Forbidden: target not allowed"
    );
    assert_eq!(target.accepted(), 0);
    assert!(srv.log().contains("not allowed"));
}

#[test]
fn path_routing_by_allow_rule_and_hosts_file_with_reload() {
    let (a, b) = (
        Target::start(|mut s| s.write_all(b"A").unwrap()),
        Target::start(|mut s| s.write_all(b"B").unwrap()),
    );
    let dir = TempDir::new("hosts");
    let hosts = dir.path("hosts");
    std::fs::write(&hosts, format!("box {}\n", a.arg())).unwrap();
    let allow = format!("127.0.0.0/8:{}", b.addr.port());
    let srv = Server::start(&["--hosts", hosts.to_str().unwrap(), "--allow", &allow]);
    let get = |path: &str| run_client(&[&srv.url("ws", path)], b"").1;
    assert_eq!(get("/ssh/box"), b"A");
    assert_eq!(get(&format!("/ssh/{}", b.arg())), b"B");
    // Re-read on change: the same name now leads to the other target.
    thread::sleep(Duration::from_millis(1100)); // a new modification time
    std::fs::write(&hosts, format!("box {}\n", b.arg())).unwrap();
    assert_eq!(get("/ssh/box"), b"B");
}

#[test]
fn default_target_is_local_ssh_port() {
    let srv = Server::start(&[]);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], b"");
    // Either an sshd answers on 127.0.0.1:22, or the dial fails and the close names it.
    if out.is_empty() {
        assert_eq!(status.and_then(|s| s.code()), Some(1));
        assert!(err.contains("connect 127.0.0.1:22"), "{err}");
    } else {
        assert!(out.starts_with(b"SSH-"));
    }
}

#[test]
fn refused_target_gets_a_close_with_the_reason() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let srv = Server::start(&["--target", &format!("127.0.0.1:{port}")]);
    let (status, _, err) = run_client(&[&srv.url("ws", "/")], b"");
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(
        err.contains("code 1011") && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn stdout_is_clean_at_trace_level() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "-vv"]);
    let input = data(6, 200_000);
    let (status, out, err) = run_client(&[&srv.url("ws", "/"), "-vv"], &input);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert_eq!(
        out, input,
        "stdout must hold the tunnel bytes and nothing else"
    );
    assert!(
        err.contains("DEBUG") || err.contains("TRACE"),
        "logs go to stderr: {err}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn idle_tunnel_costs_no_cpu() {
    let target = Target::sink();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut c = client(&[&srv.url("ws", "/")]);
    let mut stdin = c.child.stdin.take().unwrap();
    stdin.write_all(b"hello").unwrap();
    target.wait_for_tunnel();
    thread::sleep(Duration::from_millis(300));
    let before = (cpu_ticks(srv.proc.pid()), cpu_ticks(c.pid()));
    let woke = (wakeups(srv.proc.pid()), wakeups(c.pid()));
    thread::sleep(Duration::from_secs(2));
    let after = (cpu_ticks(srv.proc.pid()), cpu_ticks(c.pid()));
    let woke = (wakeups(srv.proc.pid()) - woke.0, wakeups(c.pid()) - woke.1);
    // Sleeping in the kernel means no wake-ups; a 1 ms polling timer would make ~2000 here.
    assert!(
        woke.0 < 20 && woke.1 < 20,
        "idle wake-ups: server {}, client {}",
        woke.0,
        woke.1
    );
    // A tick is 10 ms; a busy loop would burn about 200 of them.
    assert!(
        after.0 - before.0 <= 2,
        "server used {} ticks idle",
        after.0 - before.0
    );
    assert!(
        after.1 - before.1 <= 2,
        "client used {} ticks idle",
        after.1 - before.1
    );
}

#[test]
fn sigterm_closes_tunnels_with_1001_and_exits_within_2s() {
    let target = Target::sink();
    let mut srv = Server::start(&["--target", &target.arg()]);
    let mut ws = raw_ws(srv.addr, "/");
    target.wait_for_tunnel();
    let t = Instant::now();
    srv.proc.signal("TERM");
    assert_eq!(close_code(&mut ws), Some(1001));
    // No longer accepting: a newcomer is refused while the open tunnel still drains (it waits
    // for our Close reply, not sent yet), not queued until the process exits.
    assert!(
        std::net::TcpStream::connect(srv.addr).is_err(),
        "listener still open"
    );
    assert!(
        srv.proc.child.try_wait().unwrap().is_none(),
        "the server is still draining"
    );
    let _ = ws.write_all(&frame(8, &1001u16.to_be_bytes()));
    let status = srv
        .proc
        .wait_for(Duration::from_secs(2))
        .expect("server must exit within 2 s");
    assert!(status.success(), "{}", srv.log());
    assert!(t.elapsed() < Duration::from_secs(2));
    let _ = ws.shutdown(Shutdown::Both);
}

#[test]
fn sigterm_with_a_silent_client_still_exits_within_2s() {
    let target = Target::echo();
    let mut srv = Server::start(&["--target", &target.arg()]);
    let _ws = raw_ws(srv.addr, "/"); // never answers the Close
    target.wait_for_tunnel();
    srv.proc.signal("TERM");
    assert!(
        srv.proc.wait_for(Duration::from_secs(2)).is_some(),
        "server must exit within 2 s"
    );
}

#[test]
fn ipv6_listen_and_target() {
    let Ok(l) = std::net::TcpListener::bind("[::1]:0") else {
        panic!("this test needs IPv6 on loopback (::1)");
    };
    let taddr = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"v6").unwrap();
    });
    let srv = Server::start_on("[::1]:0", &["--target", &taddr.to_string()]);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], b"");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert_eq!(out, b"v6");
}

#[test]
fn target_closes_while_the_client_reads_slowly_and_nothing_is_lost() {
    // Everything the target sent is in flight when it closes; the client's reader stalls for
    // longer than any short close timer, then reads it all.
    let payload = data(10, 32 << 20);
    let p = payload.clone();
    let target = Target::start(move |mut s| s.write_all(&p).unwrap());
    let srv = Server::start(&["--target", &target.arg()]);
    let mut c = client(&[&srv.url("ws", "/")]);
    let _stdin = c.child.stdin.take();
    let mut stdout = c.child.stdout.take().unwrap();
    let mut got = vec![0u8; 28 << 20];
    stdout.read_exact(&mut got).unwrap();
    // The last 4 MiB and the Close now wait in socket buffers while nobody reads.
    thread::sleep(Duration::from_secs(3));
    stdout.read_to_end(&mut got).unwrap();
    let status = c
        .wait_for(Duration::from_secs(5))
        .expect("client must exit");
    assert_eq!(
        got.len(),
        payload.len(),
        "{}\n{}",
        c.stderr_text(),
        srv.log()
    );
    assert_eq!(checksum(&got), checksum(&payload));
    assert_eq!(status.code(), Some(0), "{}", c.stderr_text());
}
