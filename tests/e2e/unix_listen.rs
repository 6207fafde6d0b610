//! `--unix-listen` and `--unix-listen-mode`: the server on a Unix socket with the asked-for
//! permissions, reached by the real client through a small TCP-to-Unix relay (as nginx's
//! `proxy_pass http://unix:...` would); a stale socket replaced, a live one or a plain file
//! refused; the socket removed at exit; websockify's `--unix-listen` with its banner.

use crate::support::*;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;

/// A TCP listener on loopback whose every connection is relayed to the Unix socket `path`.
pub fn relay_to(path: &Path) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        for tcp in l.incoming().map_while(Result::ok) {
            let Ok(unix) = UnixStream::connect(&path) else {
                continue;
            };
            let (mut t2, mut u2) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut t2, &mut u2);
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut t, mut u) = (tcp, unix);
                let _ = std::io::copy(&mut u, &mut t);
                let _ = t.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A tunnel through `addr` echoes 100 kB.
pub fn echoes_through(addr: SocketAddr) {
    let msg = data(11, 100_000);
    let (status, out, err) = run_client(&[&format!("ws://{addr}/")], &msg);
    assert!(status.is_some_and(|s| s.success()), "{err}");
    assert_eq!(checksum(&out), checksum(&msg));
}

/// Start `wssh ARGS` and wait until it listens on the Unix socket.
fn start(args: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    Server::spawn_unix(cmd)
}

#[test]
fn serves_tunnels_on_a_unix_socket_with_its_mode() {
    let dir = TempDir::new("unix-listen");
    let target = Target::echo();
    let sock = dir.path("ws.sock");
    let s = sock.to_str().unwrap();
    let p = start(&["server", "--unix-listen", s, "--target", &target.arg()]);
    assert_eq!(mode_of(&sock), 0o600, "the default mode");
    let relay = relay_to(&sock);
    echoes_through(relay);
    echoes_through(relay);
    eventually("the tunnel logged", || {
        p.stderr_text().contains("peer=unix target=")
    });
    p.signal("TERM");
    let mut p = p;
    assert!(
        p.wait_for(PATIENCE).is_some_and(|s| s.success()),
        "{}",
        p.stderr_text()
    );
    assert!(!exists(&sock), "the socket is removed at exit");

    // Another mode, asked for.
    let p = start(&[
        "server",
        "--unix-listen",
        s,
        "--unix-listen-mode",
        "660",
        "--target",
        &target.arg(),
    ]);
    assert_eq!(mode_of(&sock), 0o660);
    echoes_through(relay);
    drop(p);
}

#[test]
fn a_stale_socket_is_replaced_a_live_one_or_a_file_refused() {
    let dir = TempDir::new("unix-stale");
    let target = Target::echo();
    let sock = dir.path("ws.sock");
    let s = sock.to_str().unwrap();
    // Left by a server that is gone: bound, then closed.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(std::fs::symlink_metadata(&sock)
        .unwrap()
        .file_type()
        .is_socket());
    let p = start(&["server", "--unix-listen", s, "--target", &target.arg()]);
    echoes_through(relay_to(&sock));
    // A second server on the same path: refused, and the first one keeps its socket.
    let (ok, _, err) = try_run(Command::new(BIN).args(["server", "--unix-listen", s]));
    assert!(!ok);
    assert!(err.contains("another server listens there"), "{err}");
    echoes_through(relay_to(&sock));
    drop(p);
    // Not a socket: left alone.
    let file = dir.path("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let (ok, _, err) =
        try_run(Command::new(BIN).args(["server", "--unix-listen", file.to_str().unwrap()]));
    assert!(!ok);
    assert!(
        err.contains("exists and is not a socket (not removed)"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // Usage errors.
    for (args, says) in [
        (
            &["--unix-listen", s, "--listen", "127.0.0.1:0"][..],
            "--listen, --unix-listen",
        ),
        (
            &["--unix-listen", s, "--unix-listen-mode", "rw"],
            "give octal permission bits",
        ),
        (
            &["--unix-listen", s, "--unix-listen-mode", "1777"],
            "give octal permission bits",
        ),
        (
            &["--unix-listen-mode", "600"],
            "--unix-listen-mode goes with --unix-listen",
        ),
    ] {
        let (status, _, err) = outcome(Command::new(BIN).arg("server").args(args), None);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn websockify_unix_listen() {
    let dir = TempDir::new("wsfy-unix");
    let target = Target::echo();
    let sock = dir.path("ws.sock");
    let s = sock.to_str().unwrap();
    let p = start(&[
        "websockify",
        "--unix-listen",
        s,
        "--unix-listen-mode=0640",
        &target.arg(),
    ]);
    assert_eq!(mode_of(&sock), 0o640);
    echoes_through(relay_to(&sock));
    let log = p.stderr_text();
    assert!(
        log.contains(&format!("  - Listen on unix socket {s}")),
        "{log}"
    );
    assert!(log.contains(&format!("  - proxying from {s} to ")), "{log}");
}
