//! Listening sockets handed over by a launcher: `--inetd` (fd 0, from a small Python launcher
//! as inetd's wait mode gives it) and systemd socket activation (fd 3, from
//! `systemd-socket-activate` without `--accept`), each carrying a tunnel to a `--unix-target`
//! socket; and what is refused: no socket, a connected socket, two sockets, `--listen` as well
//! (a handed Unix socket is in `unix_listen`).

use crate::support::*;
use crate::unix_listen::{echoes_through, relay_to};
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

/// A Unix socket echo target.
fn unix_echo(path: &Path) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
}

/// A Python launcher: a listening socket of `family` (`inet` or `unix`) on fd 0, then exec.
fn on_fd0(family: &str, dir: &TempDir, args: &[&str]) -> Command {
    let sock = dir.path("handed.sock");
    let script = "import os, socket, sys\n\
         if sys.argv[1] == 'inet':\n    s = socket.socket(); s.bind(('127.0.0.1', 0))\n\
         else:\n    s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[2])\n\
         s.listen(16)\nprint('handed', s.getsockname(), file=sys.stderr, flush=True)\nos.dup2(s.fileno(), 0)\nos.execv(sys.argv[3], sys.argv[3:])\n";
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        script,
        family,
        sock.to_str().unwrap(),
        &BIN,
        "server",
        "--inetd",
    ])
    .args(args);
    cmd
}

/// A tunnel through `url` echoes.
fn tunnel_echoes(url: &str) {
    let msg = data(7, 100_000);
    let (status, out, err) = run_client(&[url], &msg);
    assert!(status.is_some_and(|s| s.success()), "{err}");
    assert_eq!(checksum(&out), checksum(&msg));
}

#[test]
fn inetd_listens_on_fd0() {
    let dir = TempDir::new("inetd");
    let target = dir.path("vnc.sock");
    unix_echo(&target);
    let s = Server::spawn(on_fd0(
        "inet",
        &dir,
        &["--unix-target", target.to_str().unwrap()],
    ));
    tunnel_echoes(&s.url("ws", "/"));
    tunnel_echoes(&s.url("ws", "/"));
}

#[test]
fn systemd_socket_activation_listens_on_fd3() {
    let dir = TempDir::new("activate");
    let target = dir.path("vnc.sock");
    unix_echo(&target);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &addr, &BIN, "server", "--unix-target"])
        .arg(&target);
    // It waits for a first connection before it starts wssh.
    let (proc, _) = spawn_until(cmd, "Listening on");
    tunnel_echoes(&format!("ws://{addr}/"));
    tunnel_echoes(&format!("ws://{addr}/"));
    let log = proc.stderr_text();
    assert!(log.contains(&format!("listening on {addr}")), "{log}");
}

#[test]
fn a_unix_socket_handed_over_on_fd0() {
    // As inetd's wait mode, or systemd's StandardInput=socket with ListenStream=PATH, give it.
    let dir = TempDir::new("inetd-unix");
    let target = Target::echo();
    let mut p = Server::spawn_unix(on_fd0("unix", &dir, &["--target", &target.arg()]));
    echoes_through(relay_to(&dir.path("handed.sock")));
    p.signal("TERM");
    assert!(p.wait_for(PATIENCE).is_some_and(|s| s.success()));
    // Handed over: its owner removes it, not wssh.
    assert!(exists(&dir.path("handed.sock")));
}

#[test]
fn what_is_not_a_listening_socket_is_refused() {
    // fd 0 is /dev/null.
    let (ok, _, err) = try_run(Command::new(BIN).args(["server", "--inetd"]));
    assert!(!ok);
    assert!(err.contains("--inetd: fd 0: not a socket"), "{err}");
    // A connected socket, not a listening one (inetd's nowait mode).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["server", "--inetd"]);
    let mut child = cmd
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(c)))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(err.contains("not a listening socket"), "{err}");
    // Two sockets, and --listen as well.
    let (ok, _, err) = try_run(Command::new("sh").args([
        "-c",
        &format!("LISTEN_PID=$$ LISTEN_FDS=2 exec {BIN} server"),
    ]));
    assert!(!ok);
    assert!(
        err.contains("LISTEN_FDS=2: wssh server takes one socket"),
        "{err}"
    );
    let (ok, _, err) =
        try_run(Command::new(BIN).args(["server", "--inetd", "--listen", "127.0.0.1:0"]));
    assert!(!ok);
    assert!(
        err.contains("--listen, --unix-listen and a socket handed over"),
        "{err}"
    );
}

#[test]
fn inetd_and_daemon_keep_the_socket() {
    let dir = TempDir::new("inetd-daemon");
    let target = dir.path("vnc.sock");
    unix_echo(&target);
    let pid_file = dir.path("wssh.pid");
    let (ok, _, err) = try_run(&mut on_fd0(
        "inet",
        &dir,
        &[
            "-D",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--unix-target",
            target.to_str().unwrap(),
        ],
    ));
    assert!(ok, "{err}");
    let port = err
        .split("handed ('127.0.0.1', ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the launcher names its port");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    tunnel_echoes(&format!("ws://127.0.0.1:{port}/"));
    let killed = Command::new("kill").args(["-TERM", pid.trim()]).status();
    assert!(killed.unwrap().success());
    eventually("the pid file to go", || !pid_file.exists());
}
