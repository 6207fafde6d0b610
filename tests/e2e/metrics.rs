//! `wssh server --metrics`: scraped with curl before and after a scripted sequence (tunnels
//! opened and closed, a 403, a 503, a target that refuses), each counter moving by exactly what
//! happened; the output passes `promtool check metrics`.

use crate::support::*;
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// The metrics port the server announced (`metrics on ADDR`).
fn metrics_addr(srv: &Server) -> String {
    let log = srv.log();
    let line = log.lines().find(|l| l.contains("metrics on ")).unwrap();
    line.split("metrics on ").nth(1).unwrap().trim().to_string()
}

/// One scrape with curl: the text, and each sample by its name and labels.
fn scrape(addr: &str) -> (String, HashMap<String, f64>) {
    let text = run(Command::new("curl").args([
        "-sS",
        "--max-time",
        "5",
        &format!("http://{addr}/metrics"),
    ]));
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    (text, samples)
}

#[test]
fn counters_move_by_exactly_what_happened_and_promtool_agrees() {
    let echo = Target::echo();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let srv = Server::start(&[
        "--metrics",
        "0",
        "--allow",
        "127.0.0.1:*",
        "--max-tunnels",
        "1",
    ]);
    let addr = metrics_addr(&srv);
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );
    let (_, before) = scrape(&addr);
    let to_echo = srv.url("ws", &format!("/ssh/{}", echo.addr));

    // A tunnel that carries 5 bytes each way and ends.
    let (status, out, err) = run_client(&[&to_echo], b"hello");
    assert!(status.unwrap().success(), "{err}");
    assert_eq!(out, b"hello");
    // A tunnel held open: the next one gets 503 (--max-tunnels 1).
    let held = raw_ws(srv.addr, &format!("/ssh/{}", echo.addr));
    eventually("the held tunnel to be counted", || {
        scrape(&addr).1["wssh_tunnels_open"] == 1.0
    });
    let (status, _, err) = run_client(&[&to_echo], b"");
    assert!(!status.unwrap().success() && err.contains("503"), "{err}");
    drop(held);
    eventually("the held tunnel to end", || {
        scrape(&addr).1["wssh_tunnels_open"] == 0.0
    });
    // A target the policy refuses (403), and one that refuses the connection (1011).
    let (status, _, err) = run_client(&[&srv.url("ws", "/ssh/10.0.0.1:22")], b"");
    assert!(!status.unwrap().success() && err.contains("403"), "{err}");
    let refusing = srv.url("ws", &format!("/ssh/127.0.0.1:{closed_port}"));
    let (status, _, err) = run_client(&[&refusing], b"");
    assert!(!status.unwrap().success() && err.contains("1011"), "{err}");

    let (text, after) = scrape(&addr);
    let delta = |k: &str| after[k] - before[k];
    let expected = [
        ("wssh_tunnels_total", 2.0),
        ("wssh_tunnels_open", 0.0),
        ("wssh_connections_handshaking", 0.0),
        ("wssh_bytes_total{direction=\"up\"}", 5.0),
        ("wssh_bytes_total{direction=\"down\"}", 5.0),
        ("wssh_refusals_total{status=\"403\"}", 1.0),
        ("wssh_refusals_total{status=\"503\"}", 1.0),
        ("wssh_refusals_total{status=\"400\"}", 0.0),
        ("wssh_refusals_by_reason_total{reason=\"target\"}", 1.0),
        ("wssh_refusals_by_reason_total{reason=\"busy\"}", 1.0),
        ("wssh_refusals_by_reason_total{reason=\"auth\"}", 0.0),
        ("wssh_target_connect_failures_total", 1.0),
        ("wssh_tunnel_duration_seconds_count", 2.0),
        ("wssh_tunnel_duration_seconds_bucket{le=\"+Inf\"}", 2.0),
        // The two tunnels and the one whose target refused got their 101.
        ("wssh_handshake_seconds_count", 3.0),
    ];
    for (k, d) in expected {
        assert_eq!(delta(k), d, "{k}\n{text}");
    }
    assert_eq!(after["wssh_build_info{version=\"0.1.0\"}"], 1.0);
    assert!(after["process_resident_memory_bytes"] > 0.0, "{text}");
    assert!(after["process_open_fds"] > 0.0, "{text}");
    // No free text as a label: no target address anywhere in the scrape.
    assert!(
        !text.contains("10.0.0.1") && !text.contains(&closed_port.to_string()),
        "{text}"
    );
    // Anything but /metrics is not found.
    let other = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{addr}/"),
    ]));
    assert_eq!(other, "404");

    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) must be installed");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = read_all_bounded(check.stdout.take().unwrap());
    let err = read_all_bounded(check.stderr.take().unwrap());
    let status = check.wait().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    assert!(
        status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn metrics_address_is_checked_and_a_port_in_use_fails_the_start() {
    let (ok, _, err) = try_run(Command::new(BIN).args(["server", "--metrics", "nowhere:x"]));
    assert!(!ok && err.contains("--metrics"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (ok, _, err) =
        try_run(Command::new(BIN).args(["server", "--listen", "127.0.0.1:0", "--metrics", &port]));
    assert!(!ok && err.contains("metrics: listen on"), "{err}");
}
