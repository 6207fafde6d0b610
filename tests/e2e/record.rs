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
    let len = payload_len(s, h[1]);
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

/// Read a recording as noVNC's playback page does (`tests/playback-ui.js`: loaded as a classic
/// script, `VNC_frame_data` up to `'EOF'`, the time between the marks, each character after
/// the second mark one byte by `charCodeAt`), in node. Returns the bytes to the browser and
/// from it, and checks on the way: the trailer is there, times are whole milliseconds that
/// never go back in one direction, no character is over 255.
fn playback(file: &std::path::Path, dir: &TempDir) -> (Vec<u8>, Vec<u8>) {
    let script = dir.path("playback.js");
    std::fs::write(
        &script,
        r#"
const fs = require('fs'), vm = require('vm');
const [file, toOut, fromOut] = process.argv.slice(2);
const ctx = {};
vm.runInNewContext(fs.readFileSync(file, 'utf8'), ctx, { filename: file });
const frames = ctx.VNC_frame_data;
if (!Array.isArray(frames)) throw new Error('no VNC_frame_data array');
if (frames.indexOf('EOF') !== frames.length - 1) throw new Error("'EOF' is not last, once");
const out = { '{': [], '}': [] }, last = { '{': 0, '}': 0 };
for (const frame of frames.slice(0, -1)) {
    const mark = frame[0];
    if (!(mark in out)) throw new Error('entry without a mark: ' + frame.slice(0, 20));
    // noVNC looks for '{' in both kinds (it skips '}' entries); here each by its own mark.
    const dataIdx = frame.indexOf(mark, 1) + 1;
    const digits = frame.slice(1, dataIdx - 1);
    if (!/^[0-9]+$/.test(digits)) throw new Error('time is not whole milliseconds: ' + digits);
    const time = parseInt(digits);
    if (time < last[mark]) throw new Error('time goes back: ' + time + ' after ' + last[mark]);
    last[mark] = time;
    const u8 = new Uint8Array(frame.length - dataIdx);
    for (let j = 0; j < frame.length - dataIdx; j++) {
        const c = frame.charCodeAt(dataIdx + j);
        if (c > 255) throw new Error('a character over 255');
        u8[j] = c;
    }
    out[mark].push(u8);
}
fs.writeFileSync(toOut, Buffer.concat(out['{']));
fs.writeFileSync(fromOut, Buffer.concat(out['}']));
console.log(JSON.stringify({ entries: frames.length - 1, last }));
"#,
    )
    .unwrap();
    let (to, from) = (dir.path("to.bin"), dir.path("from.bin"));
    let out = run(std::process::Command::new("node").args([
        script.as_os_str(),
        file.as_os_str(),
        to.as_os_str(),
        from.as_os_str(),
    ]));
    assert!(out.contains("\"entries\":"), "{out}");
    (std::fs::read(to).unwrap(), std::fs::read(from).unwrap())
}

/// A target that sends `down` bytes of seed 8 while it reads whatever comes, then closes once
/// both are done; what it read arrives on the channel.
fn talker(down: usize) -> (Target, std::sync::mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let t = Target::start(move |s| {
        let mut w = s.try_clone().unwrap();
        let sender = thread::spawn(move || w.write_all(&data(8, down)).unwrap());
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        tx.lock().unwrap().send(got).unwrap();
    });
    (t, rx)
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn record_holds_both_directions_as_novnc_playback_reads_them() {
    const UP: usize = 1 << 20;
    const DOWN: usize = 1_500_000;
    let dir = TempDir::new("record");
    let base = dir.path("session");
    // A symlink where the third recording would go: skipped, never followed.
    let elsewhere = dir.path("elsewhere");
    std::fs::write(&elsewhere, "untouched").unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path("session.3")).unwrap();
    let (target, read) = talker(DOWN);
    let srv = Server::start(&[
        "--target",
        &target.arg(),
        "--record",
        base.to_str().unwrap(),
    ]);
    let url = srv.url("ws", "/");
    for (n, file) in [(1, "session.1"), (2, "session.2"), (3, "session.4")] {
        let up = data(n, UP);
        let started = std::time::Instant::now();
        let (status, out, err) = run_client(&[&url], &up);
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
        assert!(out == data(8, DOWN), "the tunnel's bytes down");
        assert!(
            read.recv_timeout(PATIENCE).unwrap() == up,
            "the tunnel's bytes up"
        );
        eventually("the tunnel's end", || {
            srv.log().matches(" end=").count() == n as usize
        });
        let file = dir.path(file);
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        let (to_browser, from_browser) = playback(&file, &dir);
        assert!(to_browser == data(8, DOWN), "recorded to the browser: {n}");
        assert!(from_browser == up, "recorded from the browser: {n}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("var VNC_frame_data = [\n'"),
            "{}",
            &text[..40]
        );
        assert!(text.ends_with("',\n'EOF'];\n"));
        let ms = started.elapsed().as_millis() as u64;
        for line in text.lines().skip(1).filter(|l| *l != "'EOF'];") {
            let t: u64 = line[2..line[2..].find(&line[1..2]).unwrap() + 2]
                .parse()
                .unwrap();
            assert!(t <= ms, "an entry at {t} ms in a session of {ms} ms");
        }
    }
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched");
    let log = srv.log();
    assert!(
        log.contains(&format!("recording each tunnel to {}.N", base.display())),
        "{log}"
    );
    assert!(
        log.contains(&format!("recording to {}.4", base.display())),
        "{log}"
    );
    assert!(!log.contains("WARN"), "{log}");
}

#[test]
fn record_stops_at_its_size_cap_and_the_tunnel_goes_on() {
    const DOWN: usize = 3 << 20;
    let dir = TempDir::new("record-cap");
    let base = dir.path("capped");
    let (target, read) = talker(DOWN);
    let srv = Server::start(&[
        "--target",
        &target.arg(),
        "--record",
        base.to_str().unwrap(),
        "--record-max",
        "1",
    ]);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], b"hello");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert!(out == data(8, DOWN), "every byte crossed, cap or not");
    assert_eq!(read.recv_timeout(PATIENCE).unwrap(), b"hello");
    eventually("the tunnel's end", || srv.log().contains(" end="));
    let file = dir.path("capped.1");
    let size = std::fs::metadata(&file).unwrap().len();
    // Below the cap, by less than one entry (a 64 KiB read is at most 256 KiB escaped).
    assert!(size <= 1 << 20, "{size}");
    assert!(size > (1 << 20) - (256 << 10) - 64, "{size}");
    // Still a recording noVNC plays: what it holds is where the session began.
    let (to_browser, from_browser) = playback(&file, &dir);
    assert!(!to_browser.is_empty() && data(8, DOWN).starts_with(&to_browser));
    assert_eq!(from_browser, b"hello");
    let log = srv.log();
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert_eq!(log.matches("stopped at its size cap").count(), 1, "{log}");
}

#[test]
fn record_into_a_read_only_directory_warns_once_and_the_tunnel_works() {
    let dir = TempDir::new("record-ro");
    let ro = dir.path("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let target = Target::echo();
    // root writes into a 0555 directory anyway: run the server as nobody then, from a copy that
    // nobody can reach (a checkout under /root, mode 0700, is not).
    let bin = dir.path("wssh");
    std::fs::copy(&*BIN, &bin).unwrap();
    let mut cmd = std::process::Command::new(&bin);
    let base = ro.join("session");
    cmd.args([
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target.arg(),
    ])
    .args(["--record", base.to_str().unwrap()]);
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    }
    let srv = Server::spawn(cmd);
    let up = data(5, 300_000);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], &up);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert!(out == up, "the echo came back whole");
    eventually("the tunnel's end", || srv.log().contains(" end="));
    let log = srv.log();
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(
        log.contains("not recorded: ") && log.contains("the tunnel goes on"),
        "{log}"
    );
    assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0);
    let _ = std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o755));
}

#[test]
fn record_options_are_checked_before_any_socket_opens() {
    let dir = TempDir::new("record-usage");
    let missing = dir.path("no/such/dir/rec");
    for (args, says) in [
        (
            vec!["--record", missing.to_str().unwrap()],
            "directory does not exist",
        ),
        (vec!["--record-max", "5"], "--record-max goes with --record"),
        (vec!["--record", "x", "--record-max", "0"], "at least 1"),
        (vec!["--record", "x/"], "name a file"),
    ] {
        let out = std::process::Command::new(BIN)
            .arg("server")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn record_onto_a_full_disk_warns_once_and_the_tunnel_goes_on() {
    const DOWN: usize = 3 << 20;
    // A 256 KiB tmpfs in a mount namespace of the server's own: it needs root (or the right
    // to mount), and goes away with the server.
    let can = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !can {
        eprintln!("skipped: cannot unshare a mount namespace here");
        return;
    }
    let dir = TempDir::new("record-full");
    let (target, read) = talker(DOWN);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o size=256k tmpfs \"$0\" && exec \"$1\" server --listen \
             127.0.0.1:0 --target \"$2\" --record \"$0/full\"",
        )
        .arg(&dir.0)
        .args([&*BIN, &target.arg()]);
    let srv = Server::spawn(cmd);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], b"hi");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert!(out == data(8, DOWN), "every byte crossed, disk full or not");
    assert_eq!(read.recv_timeout(PATIENCE).unwrap(), b"hi");
    eventually("the tunnel's end", || srv.log().contains(" end="));
    let log = srv.log();
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("the tunnel goes on"), "{log}");
}
