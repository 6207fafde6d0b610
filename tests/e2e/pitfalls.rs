//! One test per line of the peers' pitfalls (shared/PITFALLS.md) not already covered elsewhere:
//! flushing, frame size, bytes right after the head, SIGHUP, what answered instead of a 101,
//! and bytes that a terminal layer would have eaten.

use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn a_small_write_arrives_at_once_while_stdin_stays_open() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut c = client(&[&srv.url("ws", "/")]);
    let (mut stdin, mut stdout) = (
        c.child.stdin.take().unwrap(),
        c.child.stdout.take().unwrap(),
    );
    for round in 0..20u8 {
        stdin.write_all(&[round]).unwrap(); // no newline, no close: nothing may sit in a buffer
        let mut b = [0u8; 1];
        stdout.read_exact(&mut b).unwrap();
        assert_eq!(b[0], round);
    }
}

#[test]
fn frames_stay_at_most_64kib_when_the_target_sends_a_lot_at_once() {
    let big = data(9, 1 << 20);
    let b2 = big.clone();
    let target = Target::start(move |mut s| s.write_all(&b2).unwrap());
    let srv = Server::start(&["--target", &target.arg()]);
    let mut ws = raw_ws(srv.addr, "/");
    let (mut got, mut largest) = (Vec::new(), 0);
    loop {
        let mut h = [0u8; 2];
        ws.read_exact(&mut h).unwrap();
        let len = payload_len(&mut ws, h[1]);
        assert_eq!(h[1] & 0x80, 0, "server frames are never masked");
        let mut p = vec![0u8; len];
        ws.read_exact(&mut p).unwrap();
        if h[0] & 0x0f == 8 {
            break;
        }
        assert_eq!(h[0], 0x82, "one final binary frame per message");
        largest = largest.max(len);
        got.extend_from_slice(&p);
    }
    assert!(largest <= 64 * 1024, "largest frame {largest}");
    assert_eq!(checksum(&got), checksum(&big));
}

#[test]
fn bytes_sent_with_the_request_head_are_not_lost() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    req.extend(frame(2, b"SSH-2.0-early\r\n")); // the same write as the head
    s.write_all(&req).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    let mut echo = [0u8; 17];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo[2..], b"SSH-2.0-early\r\n");
}

#[test]
fn sighup_ends_the_client_at_once() {
    let target = Target::sink();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut c = client(&[&srv.url("ws", "/")]);
    let _stdin = c.child.stdin.take();
    target.wait_for_tunnel();
    let t = Instant::now();
    c.signal("HUP");
    let status = c
        .wait_for(Duration::from_secs(2))
        .expect("SIGHUP must end the client");
    assert_eq!(status.code(), Some(130));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_redirect_instead_of_101_is_shown_with_its_location_and_body() {
    // What a login portal or a misconfigured nginx answers.
    let web = Target::start(|mut s| {
        let _ = read_head(&mut s);
        let body = "<html>Please sign in</html>";
        let _ = write!(
            s,
            "HTTP/1.1 302 Found\r\nLocation: https://login.example/\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let (status, out, err) = run_client(&[&format!("ws://{}/ssh/", web.addr)], b"");
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(out.is_empty());
    assert_eq!(
        err.trim(),
        "error: server answered 302 Found, Location: https://login.example/: <html>Please sign in</html>"
    );
}

#[test]
fn every_byte_value_passes_untouched_including_ctrl_c() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut input: Vec<u8> = (0..=255u8).collect();
    input.extend([0x03, 0x03, 0x04, 0x1a, b'\r', b'\n', 0x03]); // Ctrl-C, Ctrl-D, Ctrl-Z, CR LF
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], &input);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert_eq!(out, input);
}

#[test]
fn client_keeps_bytes_that_came_in_the_same_packet_as_the_101() {
    // A server that sends its banner in the same write as the 101 answer, then closes.
    let srv = Target::start(|mut s| {
        let head = read_head(&mut s);
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_string();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        out.extend([0x82, 9]);
        out.extend(b"SSH-2.0-x");
        out.extend([0x88, 2, 0x03, 0xe8]); // Close 1000
        s.write_all(&out).unwrap();
        let _ = s.read(&mut [0u8; 64]);
    });
    let (status, out, err) = run_client(&[&format!("ws://{}/", srv.addr)], b"");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert_eq!(out, b"SSH-2.0-x");
}

#[test]
fn binary_subprotocol_is_selected_when_offered() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Sec-WebSocket-Protocol: base64, binary\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(
        head.contains("Sec-WebSocket-Protocol: binary\r\n"),
        "{head}"
    );
}

#[test]
fn extra_headers_and_basic_auth_arrive_and_secrets_are_redacted_in_logs() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "-v"]);
    let url = format!("ws://me:s3cr%40t@{}/", srv.addr);
    let (status, _, err) = run_client(
        &[&url, "-H", "X-Team: ops", "-H", "Cookie: session=abc", "-v"],
        b"x",
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    eventually("the tunnel's log line", || srv.log().contains(" up=1"));
    let log = srv.log();
    // The header arrived (the server's dump names it); its value, like any not known to be
    // harmless, is hidden.
    assert!(
        log.contains("X-Team: [redacted]") && !log.contains("X-Team: ops"),
        "{log}"
    );
    assert!(
        log.contains("Authorization: [redacted]") && log.contains("Cookie: [redacted]"),
        "{log}"
    );
    // base64("me:s3cr@t") must appear nowhere, in either side's log.
    assert!(!log.contains("bWU6czNjckB0") && !err.contains("bWU6czNjckB0") && !err.contains("abc"));
}

#[test]
fn a_second_signal_exits_at_once() {
    let target = Target::echo();
    let mut srv = Server::start(&["--target", &target.arg()]);
    let _silent = raw_ws(srv.addr, "/"); // never answers the Close, so the drain would wait
    target.wait_for_tunnel();
    srv.proc.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    srv.proc.signal("TERM");
    let status = srv
        .proc
        .wait_for(Duration::from_secs(1))
        .expect("must exit at once");
    assert_eq!(status.code(), Some(130));
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn connect_carries_bytes_sent_right_after_the_request_head() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let connect = Server::mode("connect", "127.0.0.1:0", &[&srv.url("ws", "/")]);
    let mut s = TcpStream::connect(connect.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"CONNECT anything:22 HTTP/1.1\r\nHost: anything:22\r\n\r\nSSH-2.0-eager\r\n")
        .unwrap();
    assert_eq!(
        read_head(&mut s),
        "HTTP/1.1 200 Connection established\r\n\r\n"
    );
    let mut echo = [0u8; 15];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"SSH-2.0-eager\r\n");
}

#[test]
fn a_closed_stdout_is_the_end_not_an_error() {
    // `wssh client URL | head -c 10`: the reader goes away; that is how the user ends it.
    let big = data(11, 4 << 20);
    let target = Target::start(move |mut s| {
        let _ = s.write_all(&big);
    });
    let srv = Server::start(&["--target", &target.arg()]);
    let mut c = client(&[&srv.url("ws", "/")]);
    let _stdin = c.child.stdin.take();
    let mut stdout = c.child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = c
        .wait_for(Duration::from_secs(5))
        .expect("client must exit");
    assert_eq!(status.code(), Some(0), "{}", c.stderr_text());
    assert!(c.stderr_text().is_empty(), "{}", c.stderr_text());
}
