//! `wssh server -- PROGRAM` (websockify's wrap mode): the exit status passed on, a tunnel to the
//! port wssh picked and passed in, `--wrap-mode ignore` and `respawn` with websockify's
//! throttle, and no process of the program's left after wssh ends, by SIGTERM or by SIGKILL.
//! The programs are small shell scripts that write their PIDs and starts to files.

use crate::support::*;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Whether a process runs (a zombie does not: this machine's init may reap late).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat[stat.rfind(')').unwrap() + 2..].chars().next(),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

/// Field `n` of /proc/PID/stat after the command name: 0 the state, 1 the parent, 2 the group.
fn stat_field(pid: u32, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(n).unwrap().to_string()
}

/// The number a script wrote to `file`, once it has.
fn pid_in(file: &Path) -> u32 {
    let mut pid = None;
    eventually(&format!("{}", file.display()), || {
        pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}

/// Lines in a file (0 if it is not there yet).
fn lines(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |t| t.lines().count())
}

fn gone_within(pid: u32, limit: Duration, what: &str) {
    let end = Instant::now() + limit;
    while alive(pid) && Instant::now() < end {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "{what} (pid {pid}) still runs after {limit:?}");
}

/// A program that writes its PID and its child's, then waits on the child.
fn sh_and_child(dir: &TempDir) -> String {
    format!(
        "echo $$ > {sh}; sleep 300 & echo $! > {kid}; wait",
        sh = dir.path("sh").display(),
        kid = dir.path("kid").display()
    )
}

#[test]
fn exit_mode_exits_with_the_programs_status() {
    for (script, code) in [("exit 7", 7), ("exit 0", 0), ("kill -TERM $$", 128 + 15)] {
        let mut srv = Server::start(&["--", "sh", "-c", script]);
        let status = srv.proc.wait_for(PATIENCE).expect("wssh did not exit");
        assert_eq!(status.code(), Some(code), "{script}: {}", srv.log());
        assert!(srv.log().contains("stopping with it (--wrap-mode exit)"));
    }
}

#[test]
fn a_tunnel_reaches_the_program_on_the_port_passed_in_and_ends_with_it() {
    let dir = TempDir::new("wrap-port");
    let (env, socat, stop) = (dir.path("env"), dir.path("socat"), dir.path("stop"));
    let script = format!(
        "echo \"$WSSH_TARGET_PORT $WSSH_TARGET {{port}}\" > {env}; \
         socat TCP-LISTEN:{{port}},bind=127.0.0.1,reuseaddr,fork EXEC:cat & echo $! > {socat}; \
         while [ ! -e {stop} ]; do sleep 0.05; done; exit 3",
        env = env.display(),
        socat = socat.display(),
        stop = stop.display(),
    );
    let mut srv = Server::start(&["--", "sh", "-c", &script]);
    let socat_pid = pid_in(&socat);
    let mut port = 0u16;
    eventually("the program's environment", || {
        let text = std::fs::read_to_string(&env).unwrap_or_default();
        port = text.split(' ').next().unwrap_or("").parse().unwrap_or(0);
        text.ends_with('\n')
    });
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        format!("{port} 127.0.0.1:{port} {port}\n"),
        "WSSH_TARGET_PORT, WSSH_TARGET and {{port}}"
    );
    assert!(srv
        .log()
        .contains(&format!("program's target: 127.0.0.1:{port}")));
    eventually("socat to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let data = data(7, 200_000);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], &data);
    assert!(status.is_some_and(|s| s.success()), "{err}");
    assert_eq!(checksum(&out), checksum(&data), "echo through the program");

    // The program ends by itself: the open tunnel is closed as on SIGTERM, wssh exits with 3,
    // and the program's child (socat) goes with the group.
    let mut ws = raw_ws(srv.addr, "/");
    std::fs::write(&stop, "").unwrap();
    assert_eq!(close_code(&mut ws), Some(1001), "{}", srv.log());
    let status = srv.proc.wait_for(PATIENCE).expect("wssh did not exit");
    assert_eq!(status.code(), Some(3), "{}", srv.log());
    gone_within(socat_pid, Duration::from_secs(2), "socat");
}

#[test]
fn unix_target_program_jupyter_style() {
    let dir = TempDir::new("wrap-unix");
    let sock = dir.path("vnc.sock");
    let sock = sock.to_str().unwrap();
    let listen = format!("UNIX-LISTEN:{sock},fork");
    let srv = Server::start(&["--unix-target", sock, "--", "socat", &listen, "EXEC:cat"]);
    eventually("the socket", || Path::new(sock).exists());
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], b"over a unix socket");
    assert!(status.is_some_and(|s| s.success()), "{err}");
    assert_eq!(out, b"over a unix socket");
}

#[test]
fn ignore_mode_serves_on_after_the_program_ends() {
    let target = Target::echo();
    let mut srv = Server::start(&[
        "--target",
        &target.arg(),
        "--wrap-mode",
        "ignore",
        "--",
        "sh",
        "-c",
        "exit 5",
    ]);
    eventually("the program's end", || {
        srv.log()
            .contains("serving on without it (--wrap-mode ignore)")
    });
    assert!(srv.log().contains("exit status: 5"), "{}", srv.log());
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], b"still here");
    assert!(status.is_some_and(|s| s.success()), "{err}");
    assert_eq!(out, b"still here");
    assert!(srv.proc.child.try_wait().unwrap().is_none(), "wssh exited");
    srv.proc.signal("TERM");
    let status = srv.proc.wait_for(PATIENCE).expect("wssh did not exit");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn respawn_mode_starts_it_again_then_throttles_as_websockify() {
    let dir = TempDir::new("wrap-respawn");
    let starts = dir.path("starts");
    let script = format!("echo start >> {}", starts.display());
    let target = Target::echo();
    let mut srv = Server::start(&[
        "--target",
        &target.arg(),
        "--wrap-mode",
        "respawn",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    eventually("the throttle", || {
        srv.log().contains("Command respawning too fast")
    });
    let held = Instant::now();
    assert_eq!(lines(&starts), 3, "three quick starts, then held");
    thread::sleep(Duration::from_secs(2));
    assert_eq!(lines(&starts), 3, "held for now");
    // Held until the last three starts average 10 s ago; then it starts again.
    eventually("a start after the pause", || lines(&starts) == 4);
    let pause = held.elapsed();
    assert!(pause > Duration::from_secs(6), "held only {pause:?}");
    assert!(srv.proc.child.try_wait().unwrap().is_none(), "wssh exited");
    srv.proc.signal("TERM");
    let status = srv.proc.wait_for(PATIENCE).expect("wssh did not exit");
    assert_eq!(status.code(), Some(0), "{}", srv.log());
}

#[test]
fn sigterm_ends_the_program_and_its_children() {
    let dir = TempDir::new("wrap-term");
    // wssh's stdin is a pipe here, so that the program's /dev/null is wssh's doing.
    let child = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--", "sh", "-c"])
        .arg(format!(
            "trap 'echo TERM > {}; exit' TERM; {}",
            dir.path("got").display(),
            sh_and_child(&dir)
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("log")).unwrap())
        .spawn()
        .unwrap();
    let mut wssh = Proc {
        child,
        stderr: Default::default(),
    };
    let (sh, kid) = (pid_in(&dir.path("sh")), pid_in(&dir.path("kid")));
    // Its own process group (not wssh's), stdin from /dev/null.
    let group = stat_field(sh, 2);
    assert_ne!(group, stat_field(wssh.pid(), 2), "a group of its own");
    assert_eq!(stat_field(kid, 2), group, "its child in its group");
    let stdin = std::fs::read_link(format!("/proc/{sh}/fd/0")).unwrap();
    assert_eq!(stdin, Path::new("/dev/null"));

    // The program gets SIGTERM (its trap runs), not only SIGKILL after the grace period.
    wssh.signal("TERM");
    let status = wssh.wait_for(PATIENCE).expect("wssh did not exit");
    let log = std::fs::read_to_string(dir.path("log")).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    let got = std::fs::read_to_string(dir.path("got")).unwrap_or_default();
    assert_eq!(got, "TERM\n", "{log}");
    assert!(!alive(sh) && !alive(kid), "program left running");
}

#[test]
fn a_program_that_ignores_sigterm_gets_sigkill() {
    let dir = TempDir::new("wrap-stubborn");
    let script = format!(
        "trap '' TERM; echo $$ > {}; while :; do sleep 0.1; done",
        dir.path("sh").display()
    );
    let mut srv = Server::start(&["--", "sh", "-c", &script]);
    let sh = pid_in(&dir.path("sh"));
    let start = Instant::now();
    srv.proc.signal("TERM");
    let status = srv.proc.wait_for(PATIENCE).expect("wssh did not exit");
    assert_eq!(status.code(), Some(0), "{}", srv.log());
    let took = start.elapsed();
    assert!(
        took > Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(srv.log().contains("SIGKILL"), "{}", srv.log());
    assert!(!alive(sh), "program left running");
}

#[test]
fn no_orphan_after_wssh_is_killed_with_sigkill() {
    let dir = TempDir::new("wrap-kill");
    let mut srv = Server::start(&["--", "sh", "-c", &sh_and_child(&dir)]);
    let (sh, kid) = (pid_in(&dir.path("sh")), pid_in(&dir.path("kid")));
    assert!(alive(sh) && alive(kid));
    srv.proc.signal("KILL");
    srv.proc.wait_for(PATIENCE).expect("wssh did not die");
    gone_within(sh, Duration::from_secs(2), "the program");
    gone_within(kid, Duration::from_secs(2), "the program's child");
}

/// Run wssh to its end (bounded): exit code and stderr.
fn wssh(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let err = read_all_bounded(child.stderr.take().unwrap());
    let mut p = Proc {
        child,
        stderr: Default::default(),
    };
    let status = p.wait_for(PATIENCE).expect("wssh did not exit");
    (status.code(), String::from_utf8_lossy(&err).into_owned())
}

#[test]
fn usage_errors() {
    for (args, msg) in [
        (
            &["--wrap-mode", "ignore"][..],
            "--wrap-mode goes with -- PROGRAM ARGS",
        ),
        (
            &["--wrap-mode", "often", "--", "sh"],
            "--wrap-mode \"often\": expected",
        ),
        (&["--"], "-- needs a PROGRAM after it"),
        (
            &["--target", "127.0.0.1:5901", "--", "x", "-p", "{port}"],
            "{port} stands for",
        ),
        (
            &["--unix-target", "/tmp/s", "--", "x", "{port}"],
            "{port} stands for",
        ),
    ] {
        let (code, err) = wssh(&[&["server"], args].concat());
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // What follows -- is the program's: its --help is not wssh's.
    let (code, err) = wssh(&["client", "--", "sh", "--help"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("-- PROGRAM ARGS goes with wssh server"),
        "{err}"
    );
}

#[test]
fn on_linux_the_program_goes_with_wssh_even_without_its_guard() {
    let dir = TempDir::new("wrap-pdeathsig");
    let script = format!("echo $$ > {}; exec sleep 300", dir.path("sh").display());
    let mut srv = Server::start(&["--", "sh", "-c", &script]);
    let program = pid_in(&dir.path("sh"));
    // The guard leads the program's group.
    let guard: u32 = stat_field(program, 2).parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{guard}/comm")).unwrap();
    assert_eq!(comm.trim(), "wssh-guard");
    // Without it, the kernel still ends the program when wssh dies (PR_SET_PDEATHSIG).
    let killed = Command::new("kill")
        .args(["-KILL", &guard.to_string()])
        .status();
    assert!(killed.unwrap().success());
    srv.proc.signal("KILL");
    srv.proc.wait_for(PATIENCE).expect("wssh did not die");
    gone_within(program, Duration::from_secs(2), "the program");
}
