//! The data path under tungstenite (src/wire.rs): a frame comes in with few system calls, and a
//! control frame the server owes never lands inside a data frame it has half sent.

use crate::support::*;
use std::io::{Read, Write};
use std::time::Duration;

/// Calls of these system calls in a `strace -c` summary.
fn calls(summary: &str, names: &[&str]) -> u64 {
    summary
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f.last()?;
            names.contains(name).then(|| f[3].parse::<u64>().ok())?
        })
        .sum()
}

#[test]
fn the_server_reads_a_64kib_frame_in_a_few_system_calls_not_one_per_4kib() {
    const MIB: usize = 16;
    let target = Target::sink();
    let dir = TempDir::new("wire-strace");
    let trace = dir.path("summary.txt");
    let mut t = Traced::server(
        &["-f", "-c", "-e", "trace=recvfrom,read,recvmsg"],
        &trace,
        &["--target", &target.arg()],
    );
    let input = data(12, MIB << 20);
    let r = run_client(&[&t.srv.url("ws", "/")], &input);
    assert_eq!(r.0.and_then(|s| s.code()), Some(0), "{}", r.2);
    t.finish();
    let summary = std::fs::read_to_string(&trace).unwrap();
    let n = calls(&summary, &["recvfrom", "read", "recvmsg"]);
    // 256 frames of 64 KiB: tungstenite alone reads 4 KiB at a time (4,096 calls or more);
    // Wire reads a frame's header (and first bytes) and then the rest straight into the
    // message: two calls when it is all there, a few when it is not.
    let bound = (MIB << 20) as u64 / 16384;
    assert!(
        n > 0 && n <= bound,
        "{n} reads for {MIB} MiB (at most {bound}):\n{summary}"
    );
    eprintln!("{n} reads for {MIB} MiB of 64 KiB frames");
}

/// Read one frame from the server (unmasked): opcode and payload.
fn read_frame(s: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[0] & 0x70, 0, "reserved bits set: not a frame header");
    assert_eq!(
        h[1] & 0x80,
        0,
        "a masked frame from the server: not a frame header"
    );
    let len = payload_len(s, h[1]);
    assert!(
        len <= 64 * 1024,
        "a frame of {len} bytes: not a frame header"
    );
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0], p)
}

#[test]
fn pongs_wait_behind_a_half_sent_data_frame() {
    // The target sends far more than the socket buffers hold, so the server's data frame is cut
    // short by a full socket; pings arrive then, and their pongs must queue behind it.
    const LEN: usize = 32 << 20;
    let target = Target::start(|mut s| {
        let _ = s.write_all(&data(7, LEN));
        let _ = s.read_to_end(&mut Vec::new());
    });
    let srv = Server::start(&["--target", &target.arg()]);
    let mut ws = raw_ws(srv.addr, "/");
    target.wait_for_tunnel();
    std::thread::sleep(Duration::from_millis(300));
    // A ping after each MiB read: each finds the server in the middle of some frame.
    const PINGS: u8 = 20;
    let (mut got, mut pongs, mut pinged) = (Vec::with_capacity(LEN), Vec::new(), 0u8);
    while got.len() < LEN || pongs.len() < PINGS as usize {
        if pinged < PINGS && got.len() >= (pinged as usize) << 20 {
            ws.write_all(&frame(0x9, &[b'p', pinged])).unwrap();
            pinged += 1;
        }
        match read_frame(&mut ws) {
            (0x82, p) => got.extend_from_slice(&p),
            (0x8a, p) => pongs.push(p),
            (op, p) => panic!("frame {op:#x} of {} bytes", p.len()),
        }
    }
    let expected: Vec<Vec<u8>> = (0..PINGS).map(|i| vec![b'p', i]).collect();
    assert_eq!(pongs, expected);
    assert!(got == data(7, LEN), "the data arrived changed");
}
