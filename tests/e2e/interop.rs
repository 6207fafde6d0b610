//! wssh against a real peer of the family it succeeds: websockify (from PyPI) as the server.
//! Its `binary` subprotocol is accepted, our end-of-data message does it no harm, and its
//! Close after the target ends lets the client exit 0 with every byte.

use crate::ssh::free_port;
use crate::support::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

#[test]
fn client_through_websockify() {
    let target = Target::start(|mut s| {
        let mut ping = [0u8; 4];
        s.read_exact(&mut ping).unwrap();
        assert_eq!(&ping, b"ping");
        s.write_all(b"pong").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300)); // after the client's EOF
        s.write_all(b"bye").unwrap();
    });
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "websockify",
            &format!("127.0.0.1:{port}"),
            &target.arg(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    let mut wsfy = Proc {
        child,
        stderr: Default::default(),
    };
    let log = wsfy.child.stderr.take().unwrap();
    let log = std::thread::spawn(move || read_all_bounded(log));
    // (If websockify is missing, python3 exits and this times out with the log below.)
    eventually("websockify to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let (status, out, err) = run_client(&[&format!("ws://127.0.0.1:{port}/")], b"ping");
    assert_eq!(String::from_utf8_lossy(&out), "pongbye", "{err}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    let _ = wsfy.child.kill();
    let log = String::from_utf8_lossy(&log.join().unwrap()).into_owned();
    assert!(!log.contains("Traceback"), "websockify choked: {log}");
}
