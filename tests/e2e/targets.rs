//! Which targets a path reaches: every spelling the system's resolver reads as an address
//! (`127.1`, `2130706433`, `0x7f.1`, `[::1%1]`, `127.0.0.1.`) is an address, matched by CIDR
//! rules only and never by a name glob; a name is checked again once resolved, so `localhost`
//! needs a CIDR rule too. The real server on loopback, local echo targets whose accept counts
//! show whether they were dialled.

use crate::support::*;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

/// An echo target on [::1]:0 and its accept count; None when this machine has no IPv6 loopback.
fn echo_v6() -> Option<(SocketAddr, Arc<AtomicUsize>)> {
    let l = TcpListener::bind("[::1]:0").ok()?;
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            acc.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                s.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    Some((addr, accepted))
}

/// The client's exit code and stderr for `path`, sending `ping`; asserts the echo when it is 0.
fn ask(srv: &Server, path: &str) -> (Option<i32>, String) {
    let (status, out, err) = run_client(&[&srv.url("ws", path)], b"ping");
    let code = status.and_then(|s| s.code());
    if code == Some(0) {
        assert_eq!(out, b"ping", "{path}: {err}");
    }
    (code, err)
}

/// The address spellings of 127.0.0.1 under test, each with the port.
fn v4_forms(port: u16) -> Vec<String> {
    [
        "127.1",
        "2130706433",
        "0x7f.1",
        "017700000001",
        "127.0.0.1.",
    ]
    .iter()
    .map(|f| format!("/ssh/{f}:{port}"))
    .collect()
}

#[test]
fn address_spellings_are_refused_under_a_name_glob_and_never_dialled() {
    let target = Target::echo();
    let v6 = echo_v6();
    let srv = Server::start(&["--allow", "*:*"]);
    let mut paths = v4_forms(target.addr.port());
    paths.push(format!("/ssh/0:{}", target.addr.port()));
    if let Some((a, _)) = &v6 {
        paths.push(format!("/ssh/%5B::1%251%5D:{}", a.port()));
    }
    for path in &paths {
        let (code, err) = ask(&srv, path);
        assert_eq!(code, Some(1), "{path}: {err}");
        assert!(err.contains("403 Forbidden"), "{path}: {err}");
    }
    assert_eq!(target.accepted(), 0, "the target must never be dialled");
    if let Some((_, accepted)) = &v6 {
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "the v6 target too");
    }
}

#[test]
fn address_spellings_reach_their_address_under_a_cidr_rule() {
    let target = Target::echo();
    let v6 = echo_v6();
    let srv = Server::start(&["--allow", "127.0.0.0/8:*", "--allow", "[::1]:*"]);
    let paths = v4_forms(target.addr.port());
    for path in &paths {
        let (code, err) = ask(&srv, path);
        assert_eq!(code, Some(0), "{path}: {err}");
    }
    assert_eq!(target.accepted(), paths.len());
    let want = format!("target=127.0.0.1:{} ", target.addr.port());
    eventually("the tunnels' log lines", || {
        srv.log().matches(&want).count() == paths.len()
    });
    // 0 is 0.0.0.0, outside 127.0.0.0/8, whatever the kernel would make of it.
    let (code, err) = ask(&srv, &format!("/ssh/0:{}", target.addr.port()));
    assert!(code == Some(1) && err.contains("403 Forbidden"), "{err}");
    match v6 {
        Some((a, accepted)) => {
            let (code, err) = ask(&srv, &format!("/ssh/%5B::1%251%5D:{}", a.port()));
            assert_eq!(code, Some(0), "{err}");
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        }
        None => eprintln!("no IPv6 loopback here: [::1%1] not tried"),
    }
}

#[test]
fn a_name_that_resolves_to_loopback_needs_a_cidr_rule() {
    let target = Target::echo();
    let port = target.addr.port();
    let path = format!("/ssh/localhost:{port}");
    let glob = Server::start(&["--allow", "*:*"]);
    let (code, err) = ask(&glob, &path);
    assert_eq!(code, Some(1), "{err}");
    // localhost is 127.0.0.1 here, and ::1 as well on some systems: the reason names them.
    let reason = format!("403 Forbidden: target localhost:{port} resolves to ");
    assert!(err.contains(&reason), "{err}");
    assert!(
        err.contains("127.0.0.1") && err.contains("(loopback)"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("with a CIDR rule"), "{err}");
    assert_eq!(target.accepted(), 0, "the target must never be dialled");
    eventually("the refusal in the log", || {
        glob.log().contains("(loopback)")
    });

    let cidr = Server::start(&["--allow", "*:*", "--allow", "127.0.0.0/8:*"]);
    let (code, err) = ask(&cidr, &path);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(target.accepted(), 1);

    // The fixed target's own address and port need no rule of their own.
    let fixed = Server::start(&["--allow", "*:*", "--target", &target.arg()]);
    let (code, err) = ask(&fixed, &path);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(target.accepted(), 2);
}

#[test]
fn a_hosts_file_name_for_localhost_needs_a_cidr_rule() {
    let target = Target::echo();
    let port = target.addr.port();
    let dir = TempDir::new("hosts-localhost");
    let hosts = dir.path("hosts");
    std::fs::write(&hosts, format!("db localhost:{port}\nlit 127.1:{port}\n")).unwrap();
    let hosts = hosts.to_str().unwrap();

    let plain = Server::start(&["--hosts", hosts]);
    let (code, err) = ask(&plain, "/ssh/db");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("resolves to") && err.contains("(loopback)"),
        "{err}"
    );
    assert_eq!(target.accepted(), 0, "the target must never be dialled");
    // An address written in the file is the operator's own choice: dialled as written.
    let (code, err) = ask(&plain, "/ssh/lit");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(target.accepted(), 1);

    let cidr = Server::start(&["--hosts", hosts, "--allow", &format!("127.0.0.0/8:{port}")]);
    let (code, err) = ask(&cidr, "/ssh/db");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(target.accepted(), 2);
}

#[test]
fn a_name_that_does_not_resolve_gets_502_before_the_upgrade() {
    let srv = Server::start(&["--allow", "*:*", "--connect-timeout", "3"]);
    // A label over 63 bytes: glibc refuses the name without sending a DNS query.
    let name = format!("{}.test", "a".repeat(64));
    let (code, err) = ask(&srv, &format!("/ssh/{name}:22"));
    assert_eq!(code, Some(1), "{err}");
    let want = format!("502 Bad Gateway: target {name}:22: ");
    assert!(err.contains(&want), "{err}");
}
