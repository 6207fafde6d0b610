//! `--syslog`: log lines received by the test's own syslog listeners (a Unix datagram socket as
//! /dev/log is, a Unix stream one, UDP) and parsed as RFC 5424: priority from the level and
//! the facility (user; daemon with -D), timestamp, host, app name, pid; websockify's
//! `--legacy-syslog` lines; an unreachable SERVER is an error at start.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Command;
use std::time::{Duration, Instant};

/// One RFC 5424 line: `<PRI>1 TIMESTAMP HOST APP PID - - MSG`.
#[derive(Debug)]
struct Line {
    pri: u32,
    host: String,
    app: String,
    pid: u32,
    msg: String,
}

fn parse_5424(raw: &[u8]) -> Line {
    let text = std::str::from_utf8(raw).unwrap();
    let rest = text.strip_prefix('<').unwrap_or_else(|| panic!("{text}"));
    let (pri, rest) = rest.split_once(">1 ").unwrap_or_else(|| panic!("{text}"));
    let f: Vec<&str> = rest.splitn(7, ' ').collect();
    assert_eq!(f.len(), 7, "{text}");
    let ts = f[0].as_bytes();
    // 2026-11-30T19:48:25Z
    assert_eq!(ts.len(), 20, "{text}");
    for (i, b) in ts.iter().enumerate() {
        let want = match i {
            4 | 7 => b'-',
            10 => b'T',
            13 | 16 => b':',
            19 => b'Z',
            _ => b'0',
        };
        assert!(
            if want == b'0' {
                b.is_ascii_digit()
            } else {
                *b == want
            },
            "{text}"
        );
    }
    assert_eq!(
        (f[4], f[5]),
        ("-", "-"),
        "no MSGID, no structured data: {text}"
    );
    Line {
        pri: pri.parse().unwrap(),
        host: f[1].into(),
        app: f[2].into(),
        pid: f[3].parse().unwrap(),
        msg: f[6].into(),
    }
}

/// Datagrams until one satisfies `want`, for at most PATIENCE.
fn recv_until(sock: &UnixDatagram, mut want: impl FnMut(&[u8]) -> bool) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(buf[..n].to_vec());
            if want(&buf[..n]) {
                return seen;
            }
        }
    }
    let seen: Vec<_> = seen.iter().map(|l| String::from_utf8_lossy(l)).collect();
    panic!("not received; got {seen:#?}");
}

fn has(text: &'static str) -> impl FnMut(&[u8]) -> bool {
    move |l| String::from_utf8_lossy(l).contains(text)
}

#[test]
fn rfc5424_lines_on_a_local_datagram_socket() {
    let dir = TempDir::new("syslog");
    let log = dir.path("log");
    let sock = UnixDatagram::bind(&log).unwrap();
    let target = Target::echo();
    let s = Server::start(&["--syslog", log.to_str().unwrap(), "--target", &target.arg()]);
    let lines = recv_until(&sock, has("listening on"));
    let l = parse_5424(lines.last().unwrap());
    assert_eq!(l.pri, 8 + 6, "user.info: {l:?}");
    assert_eq!(l.app, "wssh");
    assert_eq!(l.pid, s.proc.pid());
    assert_eq!(l.host, run(&mut Command::new("hostname")).trim());
    assert_eq!(l.msg, format!("listening on {}", s.addr));
    // A tunnel's line, and a warning (a request that is not an upgrade).
    let msg = data(3, 1000);
    let (status, _, err) = run_client(&[&s.url("ws", "/")], &msg);
    assert!(status.is_some_and(|s| s.success()), "{err}");
    let l = parse_5424(recv_until(&sock, has("up=1000")).last().unwrap());
    assert_eq!(l.pri, 14);
    assert!(l.msg.contains("target=") && l.msg.contains("end="), "{l:?}");
    let mut raw = std::net::TcpStream::connect(s.addr).unwrap();
    std::io::Write::write_all(&mut raw, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let l = parse_5424(
        recv_until(&sock, |l| l.starts_with(b"<12>"))
            .last()
            .unwrap(),
    );
    assert!(
        l.msg.contains("not a WebSocket upgrade") || l.msg.contains("upgrade"),
        "{l:?}"
    );
    // And the same lines still go to stderr.
    assert!(s.log().contains("listening on"), "{}", s.log());
}

#[test]
fn websockify_daemon_legacy_lines_facility_daemon() {
    let dir = TempDir::new("syslog-legacy");
    let log = dir.path("log");
    let sock = UnixDatagram::bind(&log).unwrap();
    let target = Target::echo();
    let (ok, _, err) = try_run(Command::new(BIN).args([
        "websockify",
        "-D",
        "--syslog",
        log.to_str().unwrap(),
        "--legacy-syslog",
        "127.0.0.1:0",
        &target.arg(),
    ]));
    assert!(ok, "{err}");
    let lines = recv_until(&sock, has("listening on"));
    // <PRI>websockify[PID]: MSG, facility daemon (3): 3 * 8 + 6.
    let legacy = |l: &Vec<u8>| {
        let t = String::from_utf8(l.clone()).unwrap();
        let rest = t
            .strip_prefix("<30>websockify[")
            .unwrap_or_else(|| panic!("{t}"));
        let (pid, msg) = rest.split_once("]: ").unwrap();
        (pid.parse::<u32>().unwrap(), msg.to_string())
    };
    let banner = lines
        .iter()
        .map(legacy)
        .any(|(_, m)| m.starts_with("  - proxying from 127.0.0.1:"));
    assert!(banner, "{lines:?}");
    // The daemon this test started (the banner came before it detached): stop it by its pid,
    // as its own line names it.
    let (pid, _) = legacy(lines.last().unwrap());
    assert!(Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    recv_until(&sock, has("stopped"));
}

#[test]
fn stream_socket_and_udp() {
    let dir = TempDir::new("syslog-stream");
    let log = dir.path("log");
    let l = UnixListener::bind(&log).unwrap();
    let s = Server::start(&["--syslog", log.to_str().unwrap()]);
    let (conn, _) = l.accept().unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "closed");
    }
    let l = parse_5424(line.trim_end_matches('\n').as_bytes());
    assert_eq!(l.pid, s.proc.pid());
    drop(s);

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(PATIENCE)).unwrap();
    let to = udp.local_addr().unwrap().to_string();
    let s = Server::start(&["--syslog", &to]);
    let mut buf = [0u8; 4096];
    loop {
        let n = udp.recv(&mut buf).expect("no syslog datagram over UDP");
        let l = parse_5424(&buf[..n]);
        if l.msg.contains("listening on") {
            assert_eq!(l.pid, s.proc.pid());
            break;
        }
    }
}

#[test]
fn an_unreachable_server_is_an_error_at_start() {
    let dir = TempDir::new("syslog-none");
    let nothing = dir.path("nothing-here");
    let (status, _, err) = outcome(
        Command::new(BIN).args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--syslog",
            nothing.to_str().unwrap(),
        ]),
        None,
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("--syslog: No such file or directory"), "{err}");
    for (args, says) in [
        (
            &["--legacy-syslog"][..],
            "--legacy-syslog goes with --syslog",
        ),
        (
            &["--syslog", "localhost:syslog"],
            "error parsing syslog port",
        ),
    ] {
        let (status, _, err) = outcome(Command::new(BIN).arg("server").args(args), None);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
