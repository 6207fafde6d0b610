//! Who may open a tunnel, end to end: Basic auth (`--auth-file` with plain and hashed lines,
//! `--auth-basic`, `--web-auth`) against curl, `wssh client` (password in the URL, in
//! `WSSH_PASSWORD`, in `--password-file`) and a page in Chromium; client certificates
//! (`--verify-client --cafile`, `--client-cn`) against `wssh client`, `forward` and `connect`
//! with `--cert`/`--key`, and curl. Refusals are checked for their status, their log line
//! (the user named, never the password) and that the target was never dialled.

use crate::browser::{node, one_at_a_time, pages};
use crate::support::*;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};

const ALICE_PW: &str = "Alice-pw-7Qz";
const BOB_PW: &str = "Bob pw:with colon";
const WRONG_PW: &str = "Wrong-pw-3Xk";
const UPGRADE: [&str; 8] = [
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: websocket",
    "-H",
    "Sec-WebSocket-Version: 13",
    "-H",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

/// `wssh hash-password --iterations 1000 USER` with `password` on stdin: its stdout line.
fn hash_password(user: &str, password: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["hash-password", "--iterations", "1000", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    drop(stdin);
    let out = read_all_bounded(child.stdout.take().unwrap());
    let mut p = Proc {
        stderr: Default::default(),
        child,
    };
    assert!(p.wait_for(PATIENCE).expect("hash-password hung").success());
    String::from_utf8(out).unwrap()
}

/// A credentials file in `dir` with `text` and `mode`.
fn auth_file(dir: &TempDir, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path("users");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_string()
}

/// alice with a plain password, bob hashed (his password holds a space and a colon).
fn users(dir: &TempDir) -> String {
    let bob = hash_password("bob", BOB_PW);
    assert!(bob.starts_with("bob:pbkdf2-sha256$1000$"), "{bob}");
    assert!(!bob.contains(BOB_PW));
    let text = format!("# who may open tunnels\nalice:{ALICE_PW}\n\n{bob}");
    auth_file(dir, &text, 0o600)
}

/// curl, bounded: its exit status and everything it printed (`--include`: the answer's head).
fn curl(args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--include", "--max-time", "10"])
        .args(args);
    try_run(&mut cmd)
}

/// A target that closes each connection at once: a tunnel to it opens, then ends by itself
/// (so curl, which does not speak WebSocket, gets its 101 and then an end).
fn closing_target() -> Target {
    Target::start(drop)
}

/// Run `wssh ARGS`, which must stop at start with a usage error (exit 2): its stderr. One that
/// starts serving instead is killed after PATIENCE and fails the test.
fn usage_error(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let mut p = Proc {
        child,
        stderr: Default::default(),
    };
    let status = p.wait_for(PATIENCE);
    let status = status.unwrap_or_else(|| panic!("{args:?} started instead of failing"));
    let err = String::from_utf8_lossy(&read_all_bounded(err)).into_owned();
    assert_eq!(status.code(), Some(2), "{args:?}: {err}");
    err
}

/// The server must not have dialled `target`, and must not show `secret` in its log.
fn refused_cleanly(srv: &Server, target: &Target, secret: &str) {
    assert_eq!(target.accepted(), 0, "a refused request reached the target");
    assert!(!srv.log().contains(secret), "{}", srv.log());
}

#[test]
fn basic_auth_answers_401_with_the_challenge_then_lets_curl_through() {
    let dir = TempDir::new("auth-curl");
    let target = closing_target();
    let srv = Server::start(&["--target", &target.arg(), "--auth-file", &users(&dir)]);
    let url = srv.url("http", "/");

    // No credentials: 401 and the challenge, before any upgrade; curl's plain GET too.
    for upgrade in [&UPGRADE[..], &[]] {
        let (_, out, err) = curl(&[upgrade, &[url.as_str()]].concat());
        assert!(
            out.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{out}{err}"
        );
        assert!(
            out.contains("\r\nWWW-Authenticate: Basic realm=\"wssh\"\r\n"),
            "{out}"
        );
    }
    // Good credentials, plain and hashed: the upgrade.
    for user in [format!("alice:{ALICE_PW}"), format!("bob:{BOB_PW}")] {
        let (_, out, err) = curl(&[&UPGRADE[..], &["--user", &user, &url]].concat());
        assert!(out.starts_with("HTTP/1.1 101 "), "{user}: {out}{err}");
    }
    eventually("both tunnels", || target.accepted() == 2);
    eventually("the tunnels' lines", || {
        srv.log().matches(" end=").count() == 2
    });
    let log = srv.log();
    assert!(log.contains(" user=\"alice\" target="), "{log}");
    assert!(log.contains(" user=\"bob\" target="), "{log}");
    // A wrong password is 401 again; a malformed header (not Basic, not base64) 403.
    let wrong = format!("alice:{WRONG_PW}");
    let (_, out, _) = curl(&[&UPGRADE[..], &["--user", &wrong, &url]].concat());
    assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
    for header in ["Authorization: Bearer abc", "Authorization: Basic !!!"] {
        let (_, out, _) = curl(&[&UPGRADE[..], &["-H", header, &url]].concat());
        assert!(out.starts_with("HTTP/1.1 403 Forbidden"), "{header}: {out}");
        assert!(out.contains("malformed Authorization header"), "{out}");
    }
    assert_eq!(target.accepted(), 2);
}

#[test]
fn wssh_client_brings_the_password_in_the_url_from_the_environment_or_a_file() {
    let dir = TempDir::new("auth-client");
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "--auth-file", &users(&dir)]);
    let host = srv.addr;
    let pw_file = dir.path("bob-password");
    std::fs::write(&pw_file, format!("{BOB_PW}\n")).unwrap();
    let mut set_mode = Command::new("chmod");
    run(set_mode.args(["600", pw_file.to_str().unwrap()]));

    let url_pw = format!("ws://alice:{ALICE_PW}@{host}/");
    let (status, out, err) = run_client(&[&url_pw], b"from the url");
    assert!(status.unwrap().success(), "{err}");
    assert_eq!(out, b"from the url");

    let mut cmd = client_cmd(&[&format!("ws://bob@{host}/")]);
    cmd.env("WSSH_PASSWORD", BOB_PW);
    let (status, out, err) = run_client_cmd(cmd, b"from the environment");
    assert!(status.unwrap().success(), "{err}");
    assert_eq!(out, b"from the environment");

    let file_args = ["--password-file", pw_file.to_str().unwrap()];
    let bob = format!("ws://bob@{host}/");
    let (status, out, err) = run_client(&[&file_args[..], &[bob.as_str()]].concat(), b"file");
    assert!(status.unwrap().success(), "{err}");
    assert_eq!(out, b"file");

    // Without credentials, or with a wrong password: 401, exit 1.
    for url in [
        format!("ws://{host}/"),
        format!("ws://bob:{WRONG_PW}@{host}/"),
    ] {
        let (status, _, err) = run_client(&[&url], b"");
        assert_eq!(status.unwrap().code(), Some(1), "{err}");
        assert!(
            err.contains("server answered 401 Unauthorized"),
            "{url}: {err}"
        );
    }
    eventually("three tunnels", || srv.log().matches(" end=").count() == 3);
    assert_eq!(target.accepted(), 3);
}

#[test]
fn a_wrong_password_is_refused_and_logged_with_the_user_never_the_password() {
    let dir = TempDir::new("auth-wrong");
    let target = Target::echo();
    let srv = Server::start(&[
        "-vv",
        "--target",
        &target.arg(),
        "--auth-file",
        &users(&dir),
    ]);
    for (user, pw) in [("alice", WRONG_PW), ("bob", ALICE_PW), ("carol", WRONG_PW)] {
        let url = format!("ws://{user}:{pw}@{}/", srv.addr);
        let (status, _, err) = run_client(&[&url], b"");
        assert_eq!(status.unwrap().code(), Some(1), "{err}");
        assert!(
            err.contains("401 Unauthorized: wrong user or password"),
            "{err}"
        );
    }
    eventually("three refusals", || {
        srv.log().matches("GET /: ").count() == 3
    });
    let log = srv.log();
    assert!(
        log.contains("GET /: wrong password for user \"alice\""),
        "{log}"
    );
    assert!(
        log.contains("GET /: wrong password for user \"bob\""),
        "{log}"
    );
    assert!(log.contains("GET /: unknown user \"carol\""), "{log}");
    assert!(log.contains("Authorization: [redacted]"), "{log}");
    for secret in [WRONG_PW, ALICE_PW, BOB_PW] {
        refused_cleanly(&srv, &target, secret);
    }
    // Nor in their Basic encodings.
    let basic = |s: &str| {
        let mut cmd = Command::new("base64");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    for creds in [format!("alice:{WRONG_PW}"), format!("carol:{WRONG_PW}")] {
        let b = basic(&creds);
        assert!(!log.contains(b.trim()), "{log}");
    }
}

#[test]
fn a_credentials_file_others_can_read_is_refused_at_start() {
    let dir = TempDir::new("auth-mode");
    let text = format!("alice:{ALICE_PW}\n");
    for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
        let file = auth_file(&dir, &text, mode);
        let err = usage_error(&["server", "--auth-file", &file]);
        let want = format!(
            "error: --auth-file {file}: group or others may read or write it (mode {mode:o}): \
             chmod 600 it"
        );
        assert!(err.contains(&want), "{err}");
        assert!(!err.contains(ALICE_PW));
    }
    for mode in [0o600, 0o400] {
        let file = auth_file(&dir, &text, mode);
        // It starts: Server::start waits for `listening on`.
        let _srv = Server::start(&["--auth-file", &file]);
    }
    // A broken line is named by its number; no line of the file is quoted.
    let file = auth_file(&dir, &format!("alice:{ALICE_PW}\n{WRONG_PW}\n"), 0o600);
    let err = usage_error(&["server", "--auth-file", &file]);
    assert!(
        err.contains(&format!(
            "--auth-file {file}: line 2: expected USER:PASSWORD"
        )),
        "{err}"
    );
    assert!(!err.contains(WRONG_PW) && !err.contains(ALICE_PW), "{err}");
}

#[test]
fn auth_basic_takes_websockify_style_credentials_and_web_auth_guards_pages() {
    let target = closing_target();
    let web = pages();
    let web = web.to_str().unwrap();
    let pass = format!("alice:{ALICE_PW}");
    let page = |srv: &Server, user: Option<&str>| {
        let url = srv.url("http", "/echo.html");
        let mut args = vec![url.as_str()];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        let (_, out, err) = curl(&args);
        out.lines().next().unwrap_or(&err).to_string()
    };
    let upgrade = |srv: &Server, user: &str| {
        let url = srv.url("http", "/");
        let (_, out, err) = curl(&[&UPGRADE[..], &["--user", user, &url]].concat());
        out.lines().next().unwrap_or(&err).to_string()
    };

    // Pages public, tunnels guarded.
    let base = [
        "--target",
        &target.arg(),
        "--web",
        web,
        "--auth-basic",
        &pass,
    ];
    let srv = Server::start(&base);
    assert_eq!(page(&srv, None), "HTTP/1.1 200 OK");
    let (_, out, _) = curl(&[&UPGRADE[..], &[srv.url("http", "/").as_str()]].concat());
    assert!(out.starts_with("HTTP/1.1 401 "), "{out}");
    assert!(upgrade(&srv, &pass).starts_with("HTTP/1.1 101 "));
    drop(srv);

    // --web-auth: pages too.
    let srv = Server::start(&[&base[..], &["--web-auth"]].concat());
    assert_eq!(page(&srv, None), "HTTP/1.1 401 Unauthorized");
    assert_eq!(page(&srv, Some(&pass)), "HTTP/1.1 200 OK");
    let wrong = format!("alice:{WRONG_PW}");
    assert_eq!(page(&srv, Some(&wrong)), "HTTP/1.1 401 Unauthorized");
    assert!(upgrade(&srv, &pass).starts_with("HTTP/1.1 101 "));
    eventually("the refused page in the log", || {
        srv.log()
            .contains("GET /echo.html: wrong password for user \"alice\"")
    });
    assert!(!srv.log().contains(WRONG_PW));
    assert_eq!(target.accepted(), 2);

    // What goes together, and no password in a usage error.
    for (args, want) in [
        (
            vec!["--web-auth", "--auth-basic", &pass],
            "--web-auth needs --web DIR",
        ),
        (
            vec!["--web", web, "--web-auth"],
            "--web-auth needs --auth-file, --auth-basic or --client-cn",
        ),
        (
            vec!["--auth-basic", ALICE_PW],
            "--auth-basic number 1: expected USER:PASSWORD",
        ),
        (
            vec!["--auth-basic", &pass, "--auth-basic", &pass],
            "--auth-basic: user \"alice\" is given twice",
        ),
    ] {
        let err = usage_error(&[&["server"], &args[..]].concat());
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains(ALICE_PW), "{err}");
    }
}

#[test]
fn hash_password_makes_lines_that_check_and_says_what_it_needs() {
    let a = hash_password("carol", "same password");
    let b = hash_password("carol", "same password");
    assert_ne!(a, b, "the salt is random");
    let parts: Vec<&str> = a.trim_end().split('$').collect();
    assert_eq!(parts.len(), 4, "{a}");
    assert_eq!(parts[0], "carol:pbkdf2-sha256");
    assert_eq!((parts[1], parts[2].len(), parts[3].len()), ("1000", 24, 44));
    // The default count, and the help the README quotes.
    let out = Command::new(BIN)
        .args(["hash-password", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("[default: 600000]"), "{help}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    assert!(
        readme.unwrap().contains(help.trim_end()),
        "README's `wssh hash-password` block differs from --help"
    );
    for (args, input, want) in [
        (vec!["a:b"], "pw\n", "a user name cannot hold ':'"),
        (vec!["carol"], "\n", "hash-password: empty password"),
        (
            vec!["--iterations", "10", "carol"],
            "pw\n",
            "--iterations 10",
        ),
        (vec![], "pw\n", "hash-password needs a USER"),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.arg("hash-password").args(&args);
        let (status, out, err) = outcome(&mut cmd, Some(input.as_bytes()));
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Client certificates.

/// A client CA, certificates it signed for alice and mallory, and one for alice signed by
/// nobody the server knows; made with the openssl CLI, PKCS#8 keys.
struct ClientCerts {
    ca: String,
    alice: (String, String),
    mallory: (String, String),
    outsider: (String, String),
}

fn client_certs(dir: &TempDir) -> ClientCerts {
    let p = |n: &str| dir.path(n).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args));
    let (ca, ca_key) = self_signed(dir, "client-ca", "wssh test client CA", &[]);
    let signed = |cn: &str| {
        let subj = format!("/CN={cn}");
        let (key, csr, pem) = (
            p(&format!("{cn}.key")),
            p(&format!("{cn}.csr")),
            p(&format!("{cn}.pem")),
        );
        openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj,
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
        ]);
        (pem, key)
    };
    ClientCerts {
        alice: signed("alice"),
        mallory: signed("mallory"),
        outsider: self_signed(dir, "outsider", "alice", &[]),
        ca: ca.clone(),
    }
}

/// `wssh client --ca SERVER_CA [--cert C --key K] URL` run to its end with `input`.
fn client_with(ca: &str, id: Option<&(String, String)>, url: &str, input: &[u8]) -> Run {
    let mut args = vec!["--ca", ca];
    if let Some((cert, key)) = id {
        args.extend(["--cert", cert.as_str(), "--key", key.as_str()]);
    }
    args.push(url);
    run_client(&args, input)
}

#[test]
fn client_certificates_an_accepted_cn_a_refused_cn_and_none() {
    let certs_dir = TempDir::new("auth-client-certs");
    let cc = client_certs(&certs_dir);
    let target = Target::echo();
    let TlsServer {
        srv,
        certs,
        dir: _dir,
    } = tls_server(
        &target.arg(),
        &[
            "--verify-client",
            "--cafile",
            &cc.ca,
            "--client-cn",
            "alice",
        ],
    );
    let url = srv.url("wss", "/");

    // alice: the tunnel.
    let (status, out, err) = client_with(&certs.ca, Some(&cc.alice), &url, b"alice's bytes");
    assert!(status.unwrap().success(), "{err}");
    assert_eq!(out, b"alice's bytes");
    eventually("alice's tunnel line", || srv.log().contains(" end="));
    assert!(srv.log().contains(" cn=\"alice\" target="), "{}", srv.log());

    // mallory: a good certificate, an unlisted CN: 403 before the upgrade.
    let (status, _, err) = client_with(&certs.ca, Some(&cc.mallory), &url, b"");
    assert_eq!(status.unwrap().code(), Some(1), "{err}");
    assert!(
        err.contains("server answered 403 Forbidden: client certificate not allowed"),
        "{err}"
    );
    eventually("mallory's refusal", || {
        srv.log()
            .contains("GET /: client certificate CN \"mallory\" is not a --client-cn")
    });

    // No certificate, or one from a CA the server does not know: the TLS handshake fails, and
    // the client says why (several times: a reset must not hide the server's alert).
    for _ in 0..5 {
        let (status, _, err) = client_with(&certs.ca, None, &url, b"");
        assert_eq!(status.unwrap().code(), Some(1), "{err}");
        let want = format!(
            "error: tls: {} requires a client certificate (give --cert FILE --key FILE)",
            srv.addr
        );
        assert!(err.contains(&want), "{err}");
    }
    let (status, _, err) = client_with(&certs.ca, Some(&cc.outsider), &url, b"");
    assert_eq!(status.unwrap().code(), Some(1), "{err}");
    assert!(
        err.contains("refused our client certificate (unknown ca)"),
        "{err}"
    );
    eventually("the handshake failures in the log", || {
        srv.log().contains("peer did not return a certificate")
    });
    // Plain ws:// would get past the certificate check: refused.
    let (status, _, err) = run_client(&[&srv.url("ws", "/")], b"");
    assert_eq!(status.unwrap().code(), Some(1), "{err}");
    assert!(err.contains("400 Bad Request"), "{err}");
    assert_eq!(target.accepted(), 1, "only alice reached the target");
}

#[test]
fn curl_with_and_without_a_client_certificate() {
    let certs_dir = TempDir::new("auth-curl-certs");
    let cc = client_certs(&certs_dir);
    let target = closing_target();
    let TlsServer {
        srv,
        certs,
        dir: _dir,
    } = tls_server(
        &target.arg(),
        &[
            "--verify-client",
            "--cafile",
            &cc.ca,
            "--client-cn",
            "alice",
        ],
    );
    let url = srv.url("https", "/");
    let with = |id: Option<&(String, String)>| {
        let mut args: Vec<&str> = vec!["--cacert", &certs.ca];
        if let Some((cert, key)) = id {
            args.extend(["--cert", cert.as_str(), "--key", key.as_str()]);
        }
        args.extend_from_slice(&UPGRADE);
        args.push(&url);
        curl(&args)
    };
    let (_, out, err) = with(Some(&cc.alice));
    assert!(out.starts_with("HTTP/1.1 101 "), "{out}{err}");
    let (_, out, err) = with(Some(&cc.mallory));
    assert!(out.starts_with("HTTP/1.1 403 Forbidden"), "{out}{err}");
    let (ok, out, err) = with(None);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("alert certificate required"), "{err}");
    eventually("alice's tunnel", || target.accepted() == 1);
}

/// `--console` (branch console): its page and check pass the same client certificate gate.
#[test]
fn the_console_needs_an_accepted_client_certificate_too() {
    let certs_dir = TempDir::new("auth-console-certs");
    let cc = client_certs(&certs_dir);
    let target = closing_target();
    let args = [
        "--console",
        "--verify-client",
        "--cafile",
        &cc.ca,
        "--client-cn",
        "alice",
    ];
    let TlsServer {
        srv,
        certs,
        dir: _dir,
    } = tls_server(&target.arg(), &args);
    for path in ["/", "/_wssh/check?path=%2F"] {
        let url = srv.url("https", path);
        let with = |(cert, key): &(String, String)| {
            curl(&["--cacert", &certs.ca, "--cert", cert, "--key", key, &url])
        };
        let (_, out, err) = with(&cc.alice);
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{path}: {out}{err}");
        let (_, out, err) = with(&cc.mallory);
        assert!(
            out.starts_with("HTTP/1.1 403 Forbidden"),
            "{path}: {out}{err}"
        );
    }
    let (_, out, _) = curl(&[
        "--cacert",
        &certs.ca,
        "--cert",
        &cc.alice.0,
        "--key",
        &cc.alice.1,
        &srv.url("https", "/_wssh/check?path=%2F"),
    ]);
    assert!(out.ends_with("{\"allowed\":true}\n"), "{out}");
    assert_eq!(target.accepted(), 0, "the check dialled the target");
}

#[test]
fn verify_client_without_cn_list_forward_and_connect_present_certificates() {
    let certs_dir = TempDir::new("auth-forward-certs");
    let cc = client_certs(&certs_dir);
    let target = Target::echo();
    let TlsServer {
        srv,
        certs,
        dir: _dir,
    } = tls_server(
        &target.arg(),
        &[
            "--verify-client",
            "--cafile",
            &cc.ca,
            "--allow",
            "127.0.0.1:*",
        ],
    );
    // Plain ws:// would pass no check at all: refused.
    let (status, _, err) = run_client(&[&srv.url("ws", "/")], b"");
    assert_eq!(status.unwrap().code(), Some(1), "{err}");
    assert!(err.contains("400 Bad Request"), "{err}");
    // Without --client-cn, any certificate the CA signed will do: mallory's too.
    let (status, out, err) = client_with(&certs.ca, Some(&cc.mallory), &srv.url("wss", "/"), b"m");
    assert!(status.unwrap().success(), "{err}");
    assert_eq!(out, b"m");

    let (cert, key) = &cc.alice;
    let id = ["--ca", &certs.ca, "--cert", cert, "--key", key];
    let fwd = Server::mode(
        "forward",
        "127.0.0.1:0",
        &[&id[..], &[srv.url("wss", "/").as_str()]].concat(),
    );
    let mut s = TcpStream::connect(fwd.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"through forward").unwrap();
    let mut back = [0u8; 15];
    std::io::Read::read_exact(&mut s, &mut back).unwrap();
    assert_eq!(&back, b"through forward");

    let template = srv.url("wss", "/ssh/{host}:{port}");
    let connect = Server::mode(
        "connect",
        "127.0.0.1:0",
        &[&id[..], &[template.as_str()]].concat(),
    );
    let mut s = TcpStream::connect(connect.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let t = target.arg();
    write!(s, "CONNECT {t} HTTP/1.1\r\nHost: {t}\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"through connect").unwrap();
    std::io::Read::read_exact(&mut s, &mut back).unwrap();
    assert_eq!(&back, b"through connect");

    // forward without a certificate: the tunnel fails, and its log line says why.
    let bare = Server::mode(
        "forward",
        "127.0.0.1:0",
        &["--ca", &certs.ca, &srv.url("wss", "/")],
    );
    let mut s = TcpStream::connect(bare.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    eventually("forward's failure line", || {
        bare.log().contains("requires a client certificate")
    });
}

#[test]
fn client_certificate_flags_are_checked_at_start() {
    let certs_dir = TempDir::new("auth-cert-flags");
    let cc = client_certs(&certs_dir);
    let c = certs(&certs_dir);
    let (cert, key) = &cc.alice;
    // A traditional (not PKCS#8) key gets the conversion hint the server gives.
    let rsa = certs_dir.path("alice-rsa.key");
    let rsa = rsa.to_str().unwrap();
    run(Command::new("openssl").args(["rsa", "-in", key, "-traditional", "-out", rsa]));
    fn server<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["server"], extra].concat()
    }
    let tls = ["--cert", c.cert.as_str(), "--key", c.key.as_str()];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["client", "--cert", cert, "--key", rsa, "wss://127.0.0.1:1/"],
            "the key must be PKCS#8 PEM (BEGIN PRIVATE KEY); convert it with `openssl pkcs8",
        ),
        (
            vec!["client", "--cert", cert, "--key", key, "ws://127.0.0.1:1/"],
            "--cert and --key need a wss:// URL",
        ),
        (
            vec![
                "forward",
                "--listen",
                "127.0.0.1:0",
                "--cert",
                cert,
                "wss://127.0.0.1:1/",
            ],
            "--cert and --key go together",
        ),
        (
            server(&[&tls[..], &["--client-cn", "alice"]].concat()),
            "--client-cn needs --verify-client",
        ),
        (
            server(&[&tls[..], &["--verify-client"]].concat()),
            "--verify-client needs --cafile FILE",
        ),
        (
            server(&[&tls[..], &["--cafile", &cc.ca]].concat()),
            "--cafile goes with --verify-client",
        ),
        (
            server(&["--verify-client", "--cafile", &cc.ca]),
            "--verify-client needs --cert and --key",
        ),
        (
            server(&[&tls[..], &["--verify-client", "--cafile", key]].concat()),
            "--cafile",
        ),
    ];
    for (args, want) in cases {
        let err = usage_error(&args);
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Chromium.

/// What Chromium does with Basic auth and a WebSocket (checked with Chromium 156): it answers a
/// page's 401 with the credentials it has (here the context's, as if typed into its prompt) and
/// then sends them, cached for the origin, on the page's WebSocket; it does not answer a 401 to
/// the WebSocket itself from them. Credentials in the WebSocket's own URL
/// (`ws://user:pass@host/`) are used: the first attempt goes without, the 401 is answered.
#[test]
fn a_page_in_chromium_opens_a_tunnel_with_basic_auth() {
    let _one = one_at_a_time();
    let target = Target::echo();
    let web = pages();
    let pass = format!("alice:{ALICE_PW}");
    let base = [
        "--target",
        &target.arg(),
        "--web",
        web.to_str().unwrap(),
        "--auth-basic",
        &pass,
    ];

    // --web-auth: the page asks, the browser answers, the WebSocket follows.
    let srv = Server::start(&[&base[..], &["--web-auth", "-v"]].concat());
    let page = srv.url("http", "/echo.html?path=/echo");
    let r = node("echo.mjs", &[&page, "--credentials", &pass]);
    assert!(r.ok, "echo page behind --web-auth: {}", r.line);
    assert_eq!(r.raw("match"), "true", "{}", r.line);
    eventually("the tunnel's line", || srv.log().contains(" end="));
    assert!(
        srv.log().contains(" user=\"alice\" target="),
        "{}",
        srv.log()
    );
    // Without credentials the page itself is refused.
    let r = node("echo.mjs", &[&page, "--expect", "refused"]);
    assert!(
        !r.ok && r.str("failed").contains("ERR_INVALID_AUTH_CREDENTIALS"),
        "{}",
        r.line
    );
    drop(srv);

    // A public page: the credentials the browser has are not offered to the WebSocket's 401...
    let srv = Server::start(&base);
    let page = srv.url("http", "/echo.html?path=/echo");
    let r = node(
        "echo.mjs",
        &[&page, "--credentials", &pass, "--expect", "refused"],
    );
    assert!(r.ok, "{}", r.line);
    assert!(
        r.str("handshake").contains("HTTP Authentication failed"),
        "{}",
        r.line
    );
    // ...but those in the WebSocket's URL are.
    let ws = format!("ws://{pass}@{}/echo", srv.addr);
    let page = format!(
        "{page}&ws={}",
        ws.replace(':', "%3A")
            .replace('/', "%2F")
            .replace('@', "%40")
    );
    let r = node("echo.mjs", &[&page]);
    assert!(r.ok, "credentials in the WebSocket URL: {}", r.line);
    assert_eq!(r.raw("match"), "true", "{}", r.line);
    eventually("the tunnel's line", || srv.log().contains(" end="));
    assert_eq!(target.accepted(), 2);
}
