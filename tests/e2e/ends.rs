//! A server that ends by itself, as websockify's options say: `--run-once` after the first
//! tunnel, `--timeout` from the start (open tunnels finish, a signal still cuts them),
//! `--idle-timeout` once no connection has been open for that long. Each with its log line.

use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ChildStdout;
use std::thread;
use std::time::{Duration, Instant};

/// A client with its tunnel open: it echoed a first message back through `target`.
fn open_tunnel(server: &Server) -> (Proc, ChildStdout) {
    let mut c = client(&[&server.url("ws", "/")]);
    let out = c.child.stdout.take().unwrap();
    let out = echoes(&mut c, out, b"ping");
    (c, out)
}

/// Send `msg` through the client's tunnel and read it back (bounded by the target's timeout).
fn echoes(c: &mut Proc, mut out: ChildStdout, msg: &[u8]) -> ChildStdout {
    c.child.stdin.as_mut().unwrap().write_all(msg).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let len = msg.len();
    thread::spawn(move || {
        let mut buf = vec![0u8; len];
        let r = out.read_exact(&mut buf).map(|()| buf);
        let _ = tx.send((r, out));
    });
    let (r, out) = rx.recv_timeout(PATIENCE).expect("no echo in time");
    assert_eq!(r.unwrap(), msg);
    out
}

/// Whether the server still runs after `d`.
fn still_runs(s: &mut Server, d: Duration) -> bool {
    s.proc.wait_for(d).is_none()
}

#[test]
fn run_once_exits_after_the_first_tunnel() {
    let target = Target::echo();
    let mut s = Server::start(&["--target", &target.arg(), "--run-once"]);
    // A connection that never becomes a tunnel does not count.
    drop(TcpStream::connect(s.addr).unwrap());
    assert!(
        still_runs(&mut s, Duration::from_millis(300)),
        "{}",
        s.log()
    );
    let (mut c, out) = open_tunnel(&s);
    let _out = echoes(&mut c, out, b"more");
    assert!(
        still_runs(&mut s, Duration::from_millis(300)),
        "{}",
        s.log()
    );
    drop(c.child.stdin.take());
    let status = s.proc.wait_for(PATIENCE).expect("server did not exit");
    assert!(status.success(), "{status:?}: {}", s.log());
    let log = s.log();
    assert!(log.contains("exiting due to --run-once"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn timeout_stops_listening_and_lets_tunnels_finish() {
    let target = Target::echo();
    let start = Instant::now();
    let mut s = Server::start(&["--target", &target.arg(), "--timeout", "2"]);
    let (mut a, a_out) = open_tunnel(&s);
    let (b, _b_out) = open_tunnel(&s);
    eventually("the --timeout line", || {
        s.log().contains("listener exit due to --timeout 2")
    });
    assert!(start.elapsed() >= Duration::from_millis(1900));
    // No new connections; the open tunnels go on.
    assert!(TcpStream::connect(s.addr).is_err(), "still accepting");
    let _a_out = echoes(&mut a, a_out, b"after the timeout");
    drop(a.child.stdin.take());
    assert!(a.wait_for(PATIENCE).is_some(), "first client did not end");
    assert!(
        still_runs(&mut s, Duration::from_millis(300)),
        "{}",
        s.log()
    );
    // A signal cuts the one left, as ever.
    s.proc.signal("TERM");
    let status = s.proc.wait_for(PATIENCE).expect("server did not exit");
    assert!(status.success(), "{status:?}: {}", s.log());
    let mut b = b;
    assert!(b.wait_for(PATIENCE).is_some(), "second client did not end");
}

#[test]
fn idle_timeout_counts_from_the_last_connection() {
    // No connection at all: it ends the given time after the start.
    let start = Instant::now();
    let mut s = Server::start(&["--idle-timeout", "1"]);
    let status = s.proc.wait_for(PATIENCE).expect("idle server did not exit");
    assert!(status.success(), "{status:?}: {}", s.log());
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(s.log().contains("listener exit due to --idle-timeout 1"));

    // An open tunnel keeps it up past the time; its end starts the count.
    let target = Target::echo();
    let mut s = Server::start(&["--target", &target.arg(), "--idle-timeout", "2"]);
    let (mut c, out) = open_tunnel(&s);
    thread::sleep(Duration::from_millis(2500));
    let _out = echoes(&mut c, out, b"still here");
    assert!(still_runs(&mut s, Duration::ZERO), "{}", s.log());
    drop(c.child.stdin.take());
    assert!(c.wait_for(PATIENCE).is_some(), "client did not end");
    let closed = Instant::now();
    let status = s.proc.wait_for(PATIENCE).expect("server did not exit");
    assert!(status.success(), "{status:?}: {}", s.log());
    assert!(
        closed.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        closed.elapsed()
    );
    assert!(s.log().contains("listener exit due to --idle-timeout 2"));
}

#[test]
fn zero_is_a_usage_error() {
    for opt in ["--timeout", "--idle-timeout"] {
        let (ok, _, err) = try_run(std::process::Command::new(BIN).args(["server", opt, "0"]));
        assert!(!ok);
        assert!(err.contains(&format!("{opt} must be at least 1")), "{err}");
    }
}
