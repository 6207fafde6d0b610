//! `-D/--daemon` with `--pid-file`: the launching command returns once the daemon runs, the
//! pid file (given relative) names it, it works from / with no terminal, a tunnel goes
//! through, SIGTERM ends it and removes the file; a port in use fails the launching command.

use crate::support::*;
use std::process::Command;

/// Whether a process runs (a zombie does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat[stat.rfind(')').unwrap() + 2..].chars().next(),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn detaches_writes_its_pid_file_and_removes_it_at_sigterm() {
    let dir = TempDir::new("daemon");
    let target = Target::echo();
    let addr = format!("127.0.0.1:{}", free_port());
    let (ok, _, err) = try_run(
        Command::new(BIN)
            .args(["server", "-D", "--pid-file", "wssh.pid", "--listen", &addr])
            .args(["--target", &target.arg()])
            .current_dir(&dir.0),
    );
    assert!(ok, "{err}");
    let pid_file = dir.path("wssh.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file written before the launcher returns")
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, std::path::Path::new("/"));
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    assert_eq!(stdin, std::path::Path::new("/dev/null"));
    // Not a session leader, so it can never get a terminal back.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let sid: u32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(sid, pid);

    let msg = data(3, 50_000);
    let (status, out, err) = run_client(&[&format!("ws://{addr}/")], &msg);
    assert!(status.is_some_and(|s| s.success()), "{err}");
    assert_eq!(checksum(&out), checksum(&msg));

    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    eventually("the daemon to end", || !alive(pid));
    eventually("the pid file to go", || !pid_file.exists());
}

#[test]
fn a_port_in_use_fails_the_launching_command() {
    let dir = TempDir::new("daemon-busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, _, err) = try_run(
        Command::new(BIN)
            .args([
                "server",
                "--daemon",
                "--pid-file",
                "wssh.pid",
                "--listen",
                &addr,
            ])
            .current_dir(&dir.0),
    );
    assert!(!ok);
    assert!(
        err.contains(&format!("listen on {addr}: Address already in use")),
        "{err}"
    );
    assert!(!dir.path("wssh.pid").exists());
}
