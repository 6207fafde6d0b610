//! `wssh server --console`: the page, its script and `wssh.js` with their headers, the check
//! endpoint, the origin rule and the auth gate over raw HTTP; and in headless Chromium
//! (`tests/browser/console.mjs`): the console reaching a private sshd and Python's HTTP server
//! with the keyboard alone on a phone-sized viewport, a refusal in words, no request elsewhere;
//! `wssh.js` imported by a page of another origin, refused and then allowed by `--origin`; and
//! the console behind the shipped nginx snippet under a path prefix.

use crate::browser::{node, one_at_a_time};
use crate::reach::{nginx_with, wait_port};
use crate::ssh::{free_port, Sshd};
use crate::support::*;
use crate::web::{get, request, status, upgrade};
use std::io::Write;
use std::process::{Command, Stdio};

/// The headers every console answer carries.
fn assert_guarded(what: &str, r: &crate::web::Resp) {
    let csp = r.header("content-security-policy").unwrap_or("");
    assert!(csp.starts_with("default-src 'self'"), "{what}: {}", r.head);
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {}", r.head);
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("cache-control"), Some("no-cache"), "{what}");
}

#[test]
fn console_files_headers_and_the_check_endpoint() {
    let target = Target::echo();
    let srv = Server::start(&[
        "--console",
        "--target",
        &target.arg(),
        "--allow",
        "127.0.0.0/8:*",
    ]);
    let a = srv.addr;
    for (path, ctype, has) in [
        ("/", "text/html", "_wssh/console/console.js"),
        ("/_wssh/console/", "text/html", "\"console.js\""),
        ("/_wssh/console/console.js", "text/javascript", "../wssh.js"),
        ("/_wssh/console/console.css", "text/css", "pre {"),
        ("/_wssh/wssh.js", "text/javascript", "export class Tunnel"),
    ] {
        let r = get(a, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(ctype),
            "{path}"
        );
        assert!(r.text().contains(has), "{path}");
        assert_guarded(path, &r);
    }
    let r = get(a, "/_wssh/console");
    assert_eq!((r.status, r.header("location")), (301, Some("./console/")));
    for path in ["/_wssh/", "/_wssh/console/x", "/index.html"] {
        let want = if path == "/index.html" { 400 } else { 404 };
        assert_eq!(get(a, path).status, want, "{path}");
    }
    // The check: the verdict and its reason, in words.
    let check = |path: &str| {
        let r = get(a, &format!("/_wssh/check?path={path}"));
        assert_guarded("check", &r);
        (r.status, r.text())
    };
    assert_eq!(check("/"), (200, "{\"allowed\":true}\n".into()));
    let own = format!("%2Fssh%2F{}", target.arg().replace(':', "%3A"));
    assert_eq!(check(&own), (200, "{\"allowed\":true}\n".into()));
    assert_eq!(
        check("/ssh/192.0.2.1:22"),
        (
            200,
            "{\"allowed\":false,\"status\":403,\"reason\":\"target 192.0.2.1:22 not allowed\"}\n"
                .into()
        )
    );
    let (code, text) = check("/ssh/localhost.invalid:22");
    assert!(text.contains("\"allowed\":false"), "{code} {text}");
    let (code, text) = check("/_wssh/x");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("server's own"), "{text}");
    assert_eq!(check("%zz").0, 400);
    assert_eq!(target.accepted(), 0, "the check dialled the target");
    // Only GET and HEAD; an upgrade under /_wssh/ is still never a tunnel.
    assert_eq!(
        request(a, "POST", "/_wssh/wssh.js", "Content-Length: 0\r\n").status,
        405
    );
    assert_eq!(request(a, "HEAD", "/_wssh/wssh.js", "").status, 200);
    assert_eq!(status(&upgrade(a, "/_wssh/console/", "Host: x\r\n")), 404);
    // Another origin: 403 unless --origin lists it, then the CORS header.
    let evil = "Origin: http://evil.example\r\n";
    let r = request(a, "GET", "/_wssh/wssh.js", evil);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let listed = Server::start(&["--console", "--origin", "http://evil.example"]);
    let r = request(listed.addr, "GET", "/_wssh/wssh.js", evil);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://evil.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));

    // Without --console: today's answers.
    let plain = Server::start(&["--target", &target.arg()]);
    assert_eq!(get(plain.addr, "/_wssh/wssh.js").status, 404);
    assert_eq!(get(plain.addr, "/").status, 400);
}

#[test]
fn console_with_web_keeps_the_root_and_obeys_the_auth_gate() {
    let dir = TempDir::new("console-web");
    std::fs::write(dir.path("index.html"), "<p>the site</p>").unwrap();
    let srv = Server::start(&[
        "--console",
        "--web",
        dir.0.to_str().unwrap(),
        "--auth-basic",
        "alice:s3cret",
    ]);
    // Pages of --web are public (no --web-auth); the console is guarded as tunnels are.
    assert_eq!(get(srv.addr, "/").text(), "<p>the site</p>");
    for path in ["/_wssh/console/", "/_wssh/wssh.js", "/_wssh/check?path=/"] {
        let r = get(srv.addr, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.header("www-authenticate").is_some(), "{path}");
        let wrong = request(
            srv.addr,
            "GET",
            path,
            "Authorization: Basic YWxpY2U6bm8=\r\n",
        );
        assert_eq!(wrong.status, 401, "{path}");
        // alice:s3cret
        let right = "Authorization: Basic YWxpY2U6czNjcmV0\r\n";
        assert_eq!(request(srv.addr, "GET", path, right).status, 200, "{path}");
    }
}

/// Python's HTTP server on a port of its own, serving `hello-from-http`.
struct HttpServer {
    port: u16,
    _proc: Proc,
    _dir: TempDir,
}

impl HttpServer {
    fn start() -> HttpServer {
        let dir = TempDir::new("http");
        std::fs::write(dir.path("index.html"), "hello-from-http\n").unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed");
        let proc = Proc {
            child,
            stderr: Default::default(),
        };
        wait_port(port);
        HttpServer {
            port,
            _proc: proc,
            _dir: dir,
        }
    }
}

#[test]
fn console_in_chromium_reaches_sshd_and_http_by_keyboard_on_a_phone() {
    let _one = one_at_a_time();
    let sshd = Sshd::start();
    let http = HttpServer::start();
    let srv = Server::start(&["--console", "--allow", "127.0.0.0/8:*"]);
    let page = format!("http://{}/", srv.addr);
    // Allowed, but nothing listens there: the server says so in its close.
    let dead = format!("127.0.0.1:{}", free_port());
    let (ssh, web) = (
        format!("127.0.0.1:{}", sshd.port),
        format!("127.0.0.1:{}", http.port),
    );
    let r = node(
        "console.mjs",
        &[
            &page,
            "--sshd",
            &ssh,
            "--http",
            &web,
            "--refused",
            "192.0.2.1:22",
            "--dead",
            &dead,
        ],
    );
    assert!(r.ok, "console: {}", r.line);
    assert!(r.str("banner").starts_with("SSH-2.0-OpenSSH"), "{}", r.line);
    assert!(r.str("escaped").contains("\\x00"), "{}", r.line);
    assert!(
        r.str("hex_first").starts_with("00000000  53 53 48 2d"),
        "{}",
        r.line
    );
    assert_eq!(r.raw("hex_kexinit"), "true", "{}", r.line);
    assert!(
        r.str("sshd_closed").starts_with("closed: 1000"),
        "{}",
        r.line
    );
    assert_eq!(r.str("http_status"), "HTTP/1.0 200 OK", "{}", r.line);
    assert!(
        r.str("http_closed")
            .starts_with("closed: 1000 target closed"),
        "{}",
        r.line
    );
    assert_eq!(r.str("eof_status"), "HTTP/1.0 200 OK", "{}", r.line);
    assert!(r.raw("events").contains("end of data sent"), "{}", r.line);
    assert!(
        r.str("eof_closed")
            .starts_with("closed: 1000 target closed"),
        "{}",
        r.line
    );
    assert_eq!(
        r.str("refused"),
        "refused: target 192.0.2.1:22 not allowed",
        "{}",
        r.line
    );
    let closed = format!("closed: 1011 connect {dead}: Connection refused");
    assert!(r.str("dead").starts_with(&closed), "{}", r.line);
    assert!(
        r.str("counts").starts_with("sent 16 bytes, received "),
        "{}",
        r.line
    );
    for key in ["sideways_empty", "sideways_hex", "sideways"] {
        assert_eq!(r.raw(key), "false", "{key}: {}", r.line);
    }
    assert_eq!(r.raw("foreign"), "[]", "{}", r.line);
    assert!(
        r.raw("requests").contains("/_wssh/check?path="),
        "{}",
        r.line
    );
}

#[test]
fn wssh_js_from_another_origin_needs_origin() {
    let _one = one_at_a_time();
    let target = Target::echo();
    let other = free_port();
    let origin = format!("http://127.0.0.1:{other}");
    let plain = Server::start(&["--console", "--target", &target.arg()]);
    let root = format!("http://{}/", plain.addr);
    let port = other.to_string();
    let r = node(
        "console.mjs",
        &[
            &root,
            "--embed",
            "--other-port",
            &port,
            "--expect",
            "refused",
        ],
    );
    assert!(r.ok, "refused embed: {}", r.line);
    assert_eq!(
        (r.raw("imported"), r.raw("ws_opened")),
        ("false".into(), "false".into())
    );
    assert_eq!(
        target.accepted(),
        0,
        "a page of another origin reached the target"
    );
    drop(plain);

    let listed = Server::start(&["--console", "--target", &target.arg(), "--origin", &origin]);
    let root = format!("http://{}/", listed.addr);
    let r = node("console.mjs", &[&root, "--embed", "--other-port", &port]);
    assert!(r.ok, "allowed embed: {}", r.line);
    assert_eq!(r.str("echoed"), "hello-embed\\n", "{}", r.line);
    assert_eq!(r.raw("verdict"), "{\"allowed\":true}", "{}", r.line);
    assert_eq!(target.accepted(), 1);
}

#[test]
fn console_behind_nginx_under_a_path_prefix() {
    let _one = one_at_a_time();
    let target = Target::echo();
    let srv = Server::start(&[
        "--console",
        "--target",
        &target.arg(),
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    let nginx = nginx_with(srv.addr, None, "60s", "wssh-console-location.conf");
    let page = format!("http://127.0.0.1:{}/wssh/", nginx.port);
    let r = node("console.mjs", &[&page, "--echo"]);
    assert!(r.ok, "console behind nginx: {}", r.line);
    assert_eq!(r.str("echoed"), "hello-through-the-console", "{}", r.line);
    let prefix = format!("ws://127.0.0.1:{}/wssh/", nginx.port);
    assert!(r.raw("websockets").contains(&prefix), "{}", r.line);
    let check = format!("{page}_wssh/check?path=%2F");
    assert!(r.raw("requests").contains(&check), "{}", r.line);
    assert_eq!(r.raw("foreign"), "[]", "{}", r.line);
    assert_eq!(target.accepted(), 1);
}

/// A target that sends 16 MiB at once and closes: the page never pauses for a second, shows only
/// its bounded scrollback (32 KiB of bytes, at most 4 characters each), and counts every byte.
#[test]
fn a_chatty_target_cannot_freeze_the_console() {
    let _one = one_at_a_time();
    const MIB: usize = 16;
    let target = Target::start(|mut s| {
        let chunk = data(7, 1 << 20);
        for _ in 0..MIB {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let srv = Server::start(&["--console", "--target", &target.arg()]);
    let page = format!("http://{}/", srv.addr);
    let n = (MIB << 20).to_string();
    let r = node("console.mjs", &[&page, "--flood", &n]);
    assert!(r.ok, "flood: {}", r.line);
    let shown: usize = r.raw("flood_shown").parse().unwrap();
    assert!(shown > 0 && shown <= 4 * 32 * 1024, "{}", r.line);
    let pause: u64 = r.raw("flood_pause_ms").parse().unwrap();
    assert!(pause < 1000, "the page froze for {pause} ms: {}", r.line);
    eprintln!("flood of {MIB} MiB: {shown} characters shown, longest pause {pause} ms");
}
