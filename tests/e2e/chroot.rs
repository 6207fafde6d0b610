//! The binary in an empty root: no /dev (so no /dev/urandom), no /etc/resolv.conf, only wssh,
//! /etc/hosts, a CA file and the server's certificate and key, and for a dynamic build the
//! libraries `ldd` names (none for the static musl build, which scripts/test runs it against).

use crate::support::*;
use std::process::Command;

/// `wssh ARGS` inside `root`: chroot as root (as CI runs), else in a user namespace of its own.
fn inside(root: &TempDir, args: &[&str]) -> Command {
    let root = root.0.to_str().unwrap();
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        Command::new("chroot")
    } else {
        let mut c = Command::new("unshare");
        c.args(["--map-root-user", "chroot"]);
        c
    };
    cmd.args([root, "/wssh"]).args(args);
    cmd
}

/// The shared libraries `bin` loads, by absolute path (none for a static binary).
fn libraries(bin: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(bin).output().expect("ldd runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let static_ = !out.status.success() || text.contains("statically linked");
    let paths = text.lines().filter_map(|l| {
        let l = l.split(" (").next()?.trim();
        let path = l.rsplit("=> ").next()?;
        path.starts_with('/').then(|| path.to_string())
    });
    match static_ {
        true => Vec::new(),
        false => paths.collect(),
    }
}

#[test]
fn the_binary_serves_tls_and_tunnels_in_an_empty_root() {
    let root = TempDir::new("chroot");
    let made = TempDir::new("chroot-certs");
    let certs = certs(&made);
    let (ca, cert, key) = (&*certs.ca, &*certs.cert, &*certs.key);
    for (from, to) in [
        (&*BIN, "wssh"),
        (ca, "ca.pem"),
        (cert, "cert.pem"),
        (key, "key.pem"),
    ] {
        std::fs::copy(from, root.path(to)).unwrap();
    }
    std::fs::create_dir(root.path("etc")).unwrap();
    std::fs::write(root.path("etc/hosts"), "127.0.0.1 localhost gw.smoke\n").unwrap();
    let libs = libraries(&BIN);
    for lib in &libs {
        let to = root.path(&lib[1..]);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, to).unwrap();
    }
    let mut tops: Vec<_> = libs
        .iter()
        .filter_map(|l| l[1..].split('/').next())
        .collect();
    tops.sort_unstable();
    tops.dedup();
    let entries = std::fs::read_dir(&root.0).unwrap().count();
    assert_eq!(
        entries,
        5 + tops.len(),
        "the root holds only what is named above"
    );

    let target = Target::echo();
    let tgt = target.arg();
    let server_args = ["server", "--listen", "127.0.0.1:0", "--target", &tgt];
    let tls = ["--cert", "/cert.pem", "--key", "/key.pem"];
    let srv = Server::spawn(inside(&root, &[&server_args[..], &tls[..]].concat()));
    let port = srv.addr.port();
    let client = |args: &[&str], input: &[u8]| {
        let args = [&["client"][..], args].concat();
        let (status, out, err) = run_client_cmd(inside(&root, &args), input);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        (status.map(|s| s.success()), out, err)
    };
    let data = data(13, 300_000);
    // ws to a name only /etc/hosts knows, wss to localhost with the CA file.
    for args in [
        vec![format!("ws://gw.smoke:{port}/")],
        vec![
            "--ca".into(),
            "/ca.pem".into(),
            format!("wss://localhost:{port}/"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = client(&args, &data);
        assert_eq!(ok, Some(true), "{args:?}: {err}");
        assert!(
            out == data,
            "{args:?}: {} bytes back of {}",
            out.len(),
            data.len()
        );
    }
    // A name nowhere (no resolv.conf) and a server no CA vouches for: errors in words.
    let (ok, _, err) = client(&[&format!("ws://nowhere.smoke:{port}/")], b"");
    assert_eq!(ok, Some(false), "{err}");
    assert!(
        err.contains("error: ") && err.contains("nowhere.smoke"),
        "{err}"
    );
    let (ok, _, err) = client(&[&format!("wss://localhost:{port}/")], b"");
    assert_eq!(ok, Some(false), "{err}");
    assert!(
        err.contains("error: ") && err.contains("certificate"),
        "{err}"
    );
    assert!(!srv.log().contains("panicked"), "{}", srv.log());
}
