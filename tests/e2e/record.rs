//! `--record` (websockify's recording format, read back by node the way noVNC's playback page
//! reads it; file mode, size cap, an unwritable directory) and the `base64` subprotocol (text
//! frames both ways, binary preferred, invalid base64 closed 1007), through the real binary.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;

/// Upgrade with `Sec-WebSocket-Protocol: PROTO` (if given); the socket and the answer's head.
fn upgrade(addr: SocketAddr, proto: Option<&str>) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    let proto = proto.map_or(String::new(), |p| {
        format!("Sec-WebSocket-Protocol: {p}\r\n")
    });
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{proto}\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    (s, head)
}

/// A masked client frame of any length.
fn frame_of(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The next server frame: (opcode, payload); server frames are never masked.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[1] & 0x80, 0, "a server frame is not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0] & 0x0f, p)
}

/// Base64, written here apart from the server's, so that one cannot hide a bug of the other.
fn b64(data: &[u8]) -> String {
    let abc = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            match i <= c.len() {
                true => out.push(abc[(n >> (18 - 6 * i)) as usize & 63] as char),
                false => out.push('='),
            }
        }
    }
    out
}

fn unb64(text: &[u8]) -> Vec<u8> {
    let abc = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for q in text.chunks(4) {
        assert_eq!(q.len(), 4, "base64 comes in fours");
        let mut n = 0u32;
        let mut pad = 0;
        for &c in q {
            let v = match c {
                b'=' => {
                    pad += 1;
                    0
                }
                c => abc.iter().position(|&a| a == c).expect("base64 letter") as u32,
            };
            n = n << 6 | v;
        }
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

#[test]
fn base64_alone_selects_base64_and_echoes_1_mib_in_text_frames() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let (mut s, head) = upgrade(srv.addr, Some("base64"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Protocol: base64\r\n"),
        "{head}"
    );
    const LEN: usize = 1 << 20;
    let sent = data(81, LEN);
    let mut reader = s.try_clone().unwrap();
    let back = thread::spawn(move || {
        let mut got = Vec::with_capacity(LEN);
        while got.len() < LEN {
            let (op, text) = read_frame(&mut reader);
            assert_eq!(op, 1, "data comes back in text frames");
            // A read of at most 48 KiB: its text is at most a binary frame's 64 KiB.
            assert!(
                !text.is_empty() && text.len() <= 64 * 1024,
                "{}",
                text.len()
            );
            got.extend(unb64(&text));
        }
        got
    });
    // Every padding case, a frame larger than any the server sends, and the rest in pieces;
    // an empty text message between them is zero bytes, not the end of data.
    let mut at = 0;
    for size in [1, 2, 3, 0, 4, 5, 6, 65_536, 600_000]
        .into_iter()
        .chain(std::iter::repeat(30_000))
    {
        let end = (at + size).min(LEN);
        s.write_all(&frame_of(1, b64(&sent[at..end]).as_bytes()))
            .unwrap();
        at = end;
        if at == LEN {
            break;
        }
    }
    let got = back.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == sent, "the echo differs from what was sent");
    s.write_all(&frame_of(8, &1000u16.to_be_bytes())).unwrap();
    eventually("the tunnel's end", || srv.log().contains(" end="));
    let log = srv.log();
    assert!(
        log.contains(&format!("up={LEN} down={LEN}")),
        "bytes, not base64 letters, are counted: {log}"
    );
}

#[test]
fn binary_and_base64_offered_selects_binary() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    for offered in ["binary, base64", "base64, binary"] {
        let (mut s, head) = upgrade(srv.addr, Some(offered));
        assert!(head.starts_with("HTTP/1.1 101"), "{offered}: {head}");
        assert!(
            head.contains("Sec-WebSocket-Protocol: binary\r\n"),
            "{offered}: {head}"
        );
        s.write_all(&frame_of(2, b"raw bytes")).unwrap();
        assert_eq!(read_frame(&mut s), (2, b"raw bytes".to_vec()), "{offered}");
    }
}

#[test]
fn invalid_base64_is_closed_1007_and_binary_frames_1003() {
    let target = Target::sink();
    let srv = Server::start(&["--target", &target.arg()]);
    for bad in [
        "Zm9v!!!!",
        "Zm9vY",
        "Zh==",
        "Zm9v YmFy",
        "Zg==Zg==",
        "Zm9v\r\n",
    ] {
        let (mut s, head) = upgrade(srv.addr, Some("base64"));
        assert!(
            head.contains("Sec-WebSocket-Protocol: base64\r\n"),
            "{head}"
        );
        s.write_all(&frame_of(1, b"aGk=")).unwrap();
        s.write_all(&frame_of(1, bad.as_bytes())).unwrap();
        assert_eq!(close_code(&mut s), Some(1007), "{bad:?}");
    }
    let (mut s, _) = upgrade(srv.addr, Some("base64"));
    s.write_all(&frame_of(2, b"raw")).unwrap();
    assert_eq!(close_code(&mut s), Some(1003));
    eventually("seven ends", || srv.log().matches(" end=").count() == 7);
    let log = srv.log();
    assert!(log.contains("invalid base64: "), "{log}");
    assert!(!log.contains("Zm9v"), "payload is never logged: {log}");
}
