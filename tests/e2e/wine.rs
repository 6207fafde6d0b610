//! wssh.exe (built by `scripts/build-windows`) run under Wine against the Linux wssh, curl and
//! socket peers: what these pass, only Wine vouches for, not Windows. They run when
//! `WSSH_WINE_EXE` names the exe (`scripts/test` sets it, with a fresh `WINEPREFIX`); without it
//! they fail in CI (`CI=true`) and say that they skip elsewhere.

use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// The Wine loader and wssh.exe; None (after saying so) outside CI when not configured.
fn setup() -> Option<(String, String)> {
    let exe = std::env::var("WSSH_WINE_EXE")
        .ok()
        .filter(|e| exists(Path::new(e)));
    let loader = ["/usr/lib/wine/wine64", "/usr/bin/wine64", "/usr/bin/wine"]
        .into_iter()
        .find(|p| exists(Path::new(p)));
    match (exe, loader) {
        (Some(exe), Some(loader)) => Some((loader.to_string(), exe)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI: WSSH_WINE_EXE (from scripts/build-windows) or Wine is missing")
        }
        _ => {
            eprintln!("skipped: set WSSH_WINE_EXE to wssh.exe and install wine64 (scripts/test)");
            None
        }
    }
}

/// `wine64 wssh.exe ARGS`, quiet Wine.
fn wine(args: &[&str]) -> Option<Command> {
    let (loader, exe) = setup()?;
    let mut cmd = Command::new(loader);
    cmd.arg(exe).args(args).env("WINEDEBUG", "-all");
    Some(cmd)
}

/// A target that reads until the tunnel's end of data, then answers how much came, and closes:
/// the answer arrives only if stdin's EOF travelled as a half-close.
fn counting_target() -> Target {
    Target::start(|mut s| {
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let _ = write!(s, "got {} bytes", got.len());
    })
}

/// Words, never a bare Windows number.
fn assert_in_words(err: &str) {
    assert!(
        !err.contains("OS Error") && !err.contains("FormatMessageW"),
        "a bare Windows error number: {err}"
    );
}

#[test]
fn ws_client_half_closes_stdin_and_gets_the_reply() {
    let target = counting_target();
    let srv = Server::start(&["--target", &target.arg()]);
    let Some(mut cmd) = wine(&["client", &srv.url("ws", "/")]) else {
        return;
    };
    let input = data(1, 300_000);
    let (status, out, err) = outcome(&mut cmd, Some(&input));
    assert_eq!(out, "got 300000 bytes", "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}

#[test]
fn client_ends_when_the_server_closes_while_stdin_stays_open() {
    let target = Target::start(|mut s| {
        let _ = s.write_all(b"SSH-2.0-banner\r\n");
    });
    let srv = Server::start(&["--target", &target.arg()]);
    let Some(cmd) = wine(&["client", &srv.url("ws", "/")]) else {
        return;
    };
    let mut c = spawn_client(cmd);
    let _stdin = c.child.stdin.take(); // held open: no EOF from our side
    let out = read_all_bounded(c.child.stdout.take().unwrap());
    assert_eq!(out, b"SSH-2.0-banner\r\n");
    let status = c.wait_for(PATIENCE).expect("the client did not exit");
    assert_eq!(status.code(), Some(0), "{}", c.stderr_text());
}

#[test]
fn exit_codes_and_errors_in_words() {
    let Some(mut usage) = wine(&["client"]) else {
        return;
    };
    let (status, _, err) = outcome(&mut usage, None);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("see wssh --help"), "{err}");

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{closed}/");
    let (status, _, err) = outcome(&mut wine(&["client", &url]).unwrap(), Some(b""));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert_in_words(&err);

    // The server cannot reach its target: it closes the tunnel with 1011, the client exits 1.
    let srv = Server::start(&["--target", &closed.to_string()]);
    let (status, _, err) = outcome(
        &mut wine(&["client", &srv.url("ws", "/")]).unwrap(),
        Some(b""),
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("server closed the tunnel with code 1011"),
        "{err}"
    );
}

#[test]
fn wss_insecure_works_and_an_untrusted_certificate_is_refused_in_words() {
    let target = counting_target();
    let tls = tls_server(&target.arg(), &[]);
    let url = format!("wss://localhost:{}/", tls.srv.addr.port());
    let Some(mut cmd) = wine(&["client", "--insecure", &url]) else {
        return;
    };
    let (status, out, err) = outcome(&mut cmd, Some(b"hello over schannel"));
    assert_eq!(out, "got 19 bytes", "{err}");
    assert_eq!(status.code(), Some(0), "{err}");

    // A self-signed certificate: its own root, which nothing trusts. (Wine accepts a leaf
    // whose CA it cannot find at all, a partial chain, that Windows refuses: not tested.)
    let dir = TempDir::new("wine-self");
    let (cert, key) = self_signed(
        &dir,
        "self",
        "localhost",
        &["-addext", "subjectAltName=DNS:localhost"],
    );
    let srv = Server::start(&["--target", &target.arg(), "--cert", &cert, "--key", &key]);
    let url = format!("wss://localhost:{}/", srv.addr.port());
    let (status, out, err) = outcome(&mut wine(&["client", &url]).unwrap(), Some(b"x"));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("certificate verify failed for localhost")
            && err.contains("not trusted")
            && err.contains("--ca FILE"),
        "{err}"
    );
    assert_in_words(&err);
}

/// `--ca` with a private CA: wssh's own check (src/wincert.rs), as schannel's asks about
/// revocation, which Wine refuses for a certificate that names no revocation source. Another
/// CA's certificate is refused, in words.
#[test]
fn wss_with_a_private_ca_and_another_cas_refused() {
    let target = counting_target();
    let tls = tls_server(&target.arg(), &[]);
    let url = format!("wss://localhost:{}/", tls.srv.addr.port());
    let Some(mut cmd) = wine(&["client", "--ca", &tls.certs.ca, &url]) else {
        return;
    };
    let (status, out, err) = outcome(&mut cmd, Some(b"private CA"));
    assert_eq!(out, "got 10 bytes", "{err}");
    assert_eq!(status.code(), Some(0), "{err}");

    let other = TempDir::new("wine-other-ca");
    let other = certs(&other);
    let mut cmd = wine(&["client", "--ca", &other.ca, &url]).unwrap();
    let (status, out, err) = outcome(&mut cmd, Some(b"x"));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("certificate verify failed for localhost: its chain does not end in a CA"),
        "{err}"
    );
}

#[test]
fn curl_through_wssh_exe_connect() {
    let web = http_target("hello through wssh.exe");
    let srv = Server::start(&["--allow", "127.0.0.1:*"]);
    let template = srv.url("ws", "/ssh/{host}:{port}");
    let Some(cmd) = wine(&["connect", "--listen", "127.0.0.1:0", &template]) else {
        return;
    };
    let connect = Server::spawn(cmd);
    let out = curl_through(connect.addr, web.addr);
    assert_eq!(out, "hello through wssh.exe");
}

#[test]
fn wssh_exe_server_serves_a_linux_client_over_ws_not_wss() {
    let target = counting_target();
    let Some(cmd) = wine(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target.arg(),
    ]) else {
        return;
    };
    let srv = Server::spawn(cmd);
    let input = data(2, 200_000);
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], &input);
    assert_eq!(String::from_utf8_lossy(&out), "got 200000 bytes", "{err}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");

    // wss: schannel's acceptor needs the PKCS#8 key imported into a key container, which Wine
    // 8 cannot do; wssh.exe says so at start-up, naming the files, in words.
    let dir = TempDir::new("wine-server-certs");
    let certs = certs(&dir);
    let mut cmd = wine(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target.arg(),
        "--cert",
        &certs.cert,
        "--key",
        &certs.key,
    ])
    .unwrap();
    let (status, _, err) = outcome(&mut cmd, None);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{} and {}", certs.cert, certs.key)),
        "{err}"
    );
    assert_in_words(&err);
}
