//! wss:// on the same port as ws://: certificate verification, --ca, --insecure, --tls-only.

use crate::support::*;

fn code(r: &(Option<std::process::ExitStatus>, Vec<u8>, String)) -> Option<i32> {
    r.0.and_then(|s| s.code())
}

#[test]
fn wss_and_ws_share_a_port_and_verification_is_on_by_default() {
    let target = Target::echo();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&target.arg(), &[]);
    let r = run_client(&[&srv.url("wss", "/"), "--ca", &c.ca], b"over tls");
    assert_eq!(
        (code(&r), r.1.as_slice()),
        (Some(0), &b"over tls"[..]),
        "{}",
        r.2
    );
    let r = run_client(&[&srv.url("ws", "/")], b"plain");
    assert_eq!(
        (code(&r), r.1.as_slice()),
        (Some(0), &b"plain"[..]),
        "{}",
        r.2
    );
    // Without the CA: refused, with one clear line.
    let r = run_client(&[&srv.url("wss", "/")], b"x");
    assert_eq!(code(&r), Some(1));
    assert!(
        r.2.contains("error: tls: certificate verify failed for 127.0.0.1"),
        "{}",
        r.2
    );
    // --insecure connects, and says loudly that it is insecure.
    let r = run_client(&[&srv.url("wss", "/"), "--insecure"], b"x");
    assert_eq!(code(&r), Some(0), "{}", r.2);
    assert!(r.2.contains("NOT verified"), "{}", r.2);
}

#[test]
fn wrong_name_fails_verification() {
    let target = Target::echo();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&target.arg(), &[]);
    // The certificate names 127.0.0.1 and localhost, not this name.
    let url = format!("wss://wrong-name.invalid:{}/", srv.addr.port());
    let r = run_client(&[&url, "--ca", &c.ca], b"");
    assert_eq!(code(&r), Some(1), "{}", r.2);
}

#[test]
fn tls_only_refuses_plain_with_a_reason() {
    let target = Target::echo();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&target.arg(), &["--tls-only"]);
    let r = run_client(&[&srv.url("ws", "/")], b"x");
    assert_eq!(code(&r), Some(1));
    assert!(r.2.contains("400") && r.2.contains("wss://"), "{}", r.2);
    let r = run_client(&[&srv.url("wss", "/"), "--ca", &c.ca], b"ok");
    assert_eq!(r.1, b"ok", "{}", r.2);
}

#[test]
fn tls_hello_on_a_plain_server_is_logged_and_dropped() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let r = run_client(&[&srv.url("wss", "/"), "--insecure"], b"x");
    assert_eq!(code(&r), Some(1));
    eventually("the log line", || {
        srv.log().contains("TLS hello on a plain server")
    });
}

#[test]
fn non_pkcs8_key_is_refused_at_startup() {
    let dir = TempDir::new("tls-key");
    let c = certs(&dir);
    let rsa = dir.path("rsa.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "rsa",
            "-in",
            &c.key,
            "-traditional",
            "-out",
            rsa.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(BIN)
        .args(["server", "--cert", &c.cert, "--key", rsa.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PKCS#8"));
}

#[cfg(all(unix, not(target_vendor = "apple")))]
#[test]
fn server_speaks_tls_1_3_with_aes_gcm_and_still_tls_1_2() {
    let target = Target::echo();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&target.arg(), &[]);
    let probe = |extra: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-brief",
                "-connect",
                &srv.addr.to_string(),
                "-CAfile",
                &c.ca,
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    };
    let t13 = probe(&[]);
    assert!(
        t13.contains("Protocol version: TLSv1.3") && t13.contains("AES"),
        "{t13}"
    );
    let t12 = probe(&["-tls1_2"]);
    assert!(
        t12.contains("Protocol version: TLSv1.2") && t12.contains("GCM"),
        "{t12}"
    );
}

#[test]
fn a_stalled_tls_hello_is_dropped_after_the_handshake_timeout() {
    let target = Target::echo();
    let TlsServer { srv, dir: _dir, .. } = tls_server(&target.arg(), &["--handshake-timeout", "1"]);
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    std::io::Write::write_all(&mut s, &[0x16, 0x03]).unwrap(); // the start of a hello, then nothing
    let t = std::time::Instant::now();
    let mut b = [0u8; 16];
    let n = std::io::Read::read(&mut s, &mut b).unwrap_or(0);
    assert!(t.elapsed() < std::time::Duration::from_secs(4));
    assert!(n == 0 || b[0] == 0x15, "closed, or a TLS alert"); // 0x15: alert record
    eventually("the log line", || {
        srv.log()
            .contains("handshake timed out (--handshake-timeout)")
    });
}

#[test]
fn over_the_tunnel_limit_a_wss_client_reads_the_503_through_tls() {
    let target = Target::sink();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&target.arg(), &["--max-tunnels", "1"]);
    let _first = raw_ws(srv.addr, "/");
    target.wait_for_tunnel();
    let r = run_client(&[&srv.url("wss", "/"), "--ca", &c.ca], b"x");
    assert_eq!(code(&r), Some(1));
    assert!(
        r.2.contains("server answered 503 Service Unavailable: too many tunnels (limit 1)"),
        "{}",
        r.2
    );
}

/// Run a wss client to the end under strace (files opened), with the system's CA variables
/// cleared and then `env` set; returns its run and the trace.
fn traced_client(args: &[&str], env: &[(&str, &str)], dir: &TempDir) -> (Run, String) {
    let trace = dir.path("client-trace.txt");
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-e", "trace=openat,open", "-o"])
        .arg(&trace)
        .args([&*BIN, "client"])
        .args(args)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .envs(env.iter().copied());
    let r = run_client_cmd(cmd, b"roots");
    (r, std::fs::read_to_string(&trace).unwrap())
}

#[test]
fn a_wss_client_looks_cas_up_in_the_hashed_directory_instead_of_parsing_the_bundle() {
    // Debian's ca-certificates (scripts/test installs it) makes both the bundle and the links.
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    let hashed = std::fs::read_dir("/etc/ssl/certs").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".0"))
    });
    assert!(
        hashed && exists(std::path::Path::new(bundle)),
        "no hashed /etc/ssl/certs with {bundle}: install ca-certificates"
    );
    let target = Target::echo();
    let TlsServer { srv, certs: c, dir } = tls_server(&target.arg(), &[]);
    let url = srv.url("wss", "/");
    let args = [url.as_str(), "--ca", &c.ca];
    let bundles = |t: &str| {
        t.lines()
            .filter(|l| l.contains(bundle) || l.contains("/usr/lib/ssl/cert.pem"))
            .count()
    };
    let (r, trace) = traced_client(&args, &[], &dir);
    assert_eq!(
        (r.0.and_then(|s| s.code()), r.1.as_slice()),
        (Some(0), &b"roots"[..]),
        "{}",
        r.2
    );
    assert_eq!(bundles(&trace), 0, "the bundle was read:\n{trace}");
    // A bundle the user names is read, as OpenSSL always does (and the trace would show it).
    let (r, trace) = traced_client(&args, &[("SSL_CERT_FILE", bundle)], &dir);
    assert_eq!(r.1, b"roots", "{}", r.2);
    assert!(bundles(&trace) > 0, "SSL_CERT_FILE was not read:\n{trace}");
    // Paths the user names that do not exist give no CA, as to OpenSSL: the system's bundle
    // and directory are not put in their place (openssl-probe would), and `--ca` still works.
    let none = [
        ("SSL_CERT_FILE", "/nonexistent/ca.pem"),
        ("SSL_CERT_DIR", "/nonexistent/certs"),
    ];
    let (r, trace) = traced_client(&args, &none, &dir);
    assert_eq!(r.1, b"roots", "{}", r.2);
    assert_eq!(bundles(&trace), 0, "the system bundle was read:\n{trace}");
    let system = trace
        .lines()
        .filter(|l| l.contains("/etc/ssl/certs/"))
        .count();
    assert_eq!(system, 0, "the system directory was read:\n{trace}");
}
