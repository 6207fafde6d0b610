//! `--log-file`: the log goes to the file, and after the file is moved away, SIGHUP makes
//! wssh write to a new one, without stopping; with `-D` the log file keeps the daemon's log.

use crate::support::*;
use std::process::{Command, Stdio};

fn text(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn the_log_file_is_reopened_on_sighup() {
    let dir = TempDir::new("logfile");
    let log = dir.path("wssh.log");
    let target = Target::echo();
    let child = Command::new(BIN)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--target",
            &target.arg(),
        ])
        .arg("--log-file")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc {
        child,
        stderr: Default::default(),
    };
    eventually("listening on, in the file", || {
        text(&log).contains("listening on ")
    });
    let addr = text(&log)
        .split("listening on ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let rotated = dir.path("wssh.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    p.signal("HUP");
    eventually("a new file", || log.exists());
    let (status, _, err) = run_client(&[&format!("ws://{addr}/")], b"hello");
    assert!(status.is_some_and(|s| s.success()), "{err}");
    eventually("the tunnel's line in the new file", || {
        text(&log).contains("conn-1 ")
    });
    assert!(!text(&rotated).contains("conn-1 "));
    assert!(p.wait_for(std::time::Duration::from_millis(200)).is_none());
    p.signal("TERM");
    assert!(p.wait_for(PATIENCE).is_some_and(|s| s.success()));
    assert!(text(&log).contains("stopped"));
}

#[test]
fn a_daemon_logs_to_its_log_file() {
    let dir = TempDir::new("logfile-daemon");
    let target = Target::echo();
    let (ok, _, err) = try_run(
        Command::new(BIN)
            .args(["server", "-D", "--pid-file", "w.pid", "--log-file", "w.log"])
            .args(["--listen", "127.0.0.1:0", "--target", &target.arg()])
            .current_dir(&dir.0),
    );
    assert!(ok, "{err}");
    let log = dir.path("w.log");
    eventually("listening on, in the file", || {
        text(&log).contains("listening on ")
    });
    let pid = text(&dir.path("w.pid"));
    assert!(Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap()
        .success());
    eventually("stopped, in the file", || text(&log).contains("stopped"));
}
