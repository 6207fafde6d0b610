//! The static binary alone in an empty root: no /dev (so no /dev/urandom), no /etc/resolv.conf,
//! no library, only wssh, /etc/hosts, a CA file and the server's certificate and key. Run by
//! scripts/test against the musl build (WSSH_BIN); a dynamic binary cannot even start there.

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

#[test]
#[ignore = "needs a static binary in WSSH_BIN: scripts/test runs it against the musl build"]
fn static_binary_serves_tls_and_tunnels_in_an_empty_root() {
    assert!(
        std::env::var("WSSH_BIN").is_ok(),
        "WSSH_BIN names the binary to test"
    );
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
    let entries = std::fs::read_dir(&root.0).unwrap().count();
    assert_eq!(entries, 5, "the root holds only what is named above");

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
