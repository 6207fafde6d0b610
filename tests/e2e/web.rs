//! The web root (`--web`): nothing outside DIR is ever read or revealed (a table of escape
//! attempts, a symlink swapped while requests run, and both again under strace), content types,
//! HEAD, 304, 405, keep-alive and pipelining on a connection that stays pending, the reserved
//! `/_wssh/` prefix, the same-origin rule, listings and dotfiles, flags, and nginx in front.

use crate::reach::nginx_with;
use crate::support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The content of the one file outside the root: no body may ever contain it.
const SENTINEL: &str = "SENTINEL-outside-the-web-root-5d1c";
const INDEX: &str = "<!DOCTYPE html><title>index</title>inside\n";
/// Contents of files inside the root that must not be served either.
const HIDDEN: [&str; 3] = ["secret-git", "secret-env", "reserved-content"];

/// A web root and, beside it, a directory that must never be reached.
struct Site {
    dir: TempDir,
}

impl Site {
    fn root(&self) -> PathBuf {
        self.dir.path("root")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path("outside")
    }
    fn arg(&self) -> String {
        self.root().display().to_string()
    }
}

fn site() -> Site {
    let dir = TempDir::new("web");
    let (root, out) = (dir.path("root"), dir.path("outside"));
    for d in ["app/images", "empty", ".git", "_wssh", ".well-known"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::create_dir_all(&out).unwrap();
    let files: [(&str, &[u8]); 10] = [
        ("index.html", INDEX.as_bytes()),
        ("vnc.html", b"<html>vnc</html>\n"),
        ("app/ui.js", b"export const ui = 1;\n"),
        ("app/style.css", b"body { margin: 0 }\n"),
        (
            "app/images/icon.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
        ),
        ("app/core.wasm", b"\0asm\x01\0\0\0"),
        (".git/config", b"[core] secret-git\n"),
        (".env", b"PASSWORD=secret-env\n"),
        ("_wssh/x", b"reserved-content\n"),
        (
            ".well-known/security.txt",
            b"Contact: mailto:x@example.com\n",
        ),
    ];
    for (name, content) in files {
        std::fs::write(root.join(name), content).unwrap();
    }
    std::fs::write(out.join("sentinel"), SENTINEL).unwrap();
    symlink("../outside/sentinel", root.join("leak")).unwrap();
    symlink("../outside", root.join("leakdir")).unwrap();
    symlink(out.join("sentinel"), root.join("abs-leak")).unwrap();
    symlink("index.html", root.join("alias.html")).unwrap();
    symlink(".env", root.join("dotlink.txt")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    Site { dir }
}

/// Every way out of the root we know of, with the status each must get. 400: malformed or an
/// attempt to climb out; 404: a name that is not served.
fn escapes(site: &Site) -> Vec<(String, u16)> {
    let abs = site.outside().join("sentinel").display().to_string();
    let rows: &[(&str, u16)] = &[
        ("/../outside/sentinel", 400),
        ("/app/../../outside/sentinel", 400),
        ("/..%2foutside%2fsentinel", 400),
        ("/app%2f..%2f..%2foutside%2fsentinel", 400),
        ("/%2e%2e/outside/sentinel", 400),
        ("/%2E%2E/outside/sentinel", 400),
        ("/.%2e/outside/sentinel", 400),
        ("/app/%2e%2e/%2e%2e/outside/sentinel", 400),
        ("/%252e%252e/outside/sentinel", 400),
        ("/%252e%252e%252foutside%252fsentinel", 400),
        ("/..\\outside\\sentinel", 400),
        ("/..%5coutside%5csentinel", 400),
        ("/%c0%ae%c0%ae/outside/sentinel", 400),
        ("/..%c0%afoutside%c0%afsentinel", 400),
        ("/%e0%80%ae%e0%80%ae/outside/sentinel", 400),
        ("/%ef%bc%8e%ef%bc%8e/outside/sentinel", 404), // fullwidth dots: just a name
        ("//evil.example/", 400),
        ("//evil.example/%2f..", 400),
        ("http://evil.example/outside/sentinel", 400),
        ("/index.html%00.png", 400),
        ("/index.html\0", 400),
        ("/leak", 404),             // a symlink out of the root
        ("/leakdir/sentinel", 404), // a directory symlink out
        ("/abs-leak", 404),         // an absolute symlink out
        ("/dotlink.txt", 404),      // a symlink to a dotfile
        ("/.git/config", 404),
        ("/.env", 404),
        ("/%2eenv", 404),
        ("/empty/", 404),      // a directory without index.html
        ("/index.html/", 404), // a file asked for as a directory
        ("/fifo", 404),        // not a regular file (and it must not block)
        ("/_wssh/x", 404),     // the reserved prefix, even with a _wssh directory
        ("/%5fwssh/x", 404),
        ("/alias.html", 200), // a symlink that stays inside is followed
        ("/", 200),
    ];
    let mut rows: Vec<(String, u16)> = rows.iter().map(|(t, s)| (t.to_string(), *s)).collect();
    rows.push((format!("/{abs}"), 400)); // `//tmp/...`
    rows.push((abs, 404)); // the same path, inside the root: not there
    rows
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Read one answer and its body by `Content-Length` (none for HEAD or 304); status 0 when the
/// connection ended without one.
fn read_resp(s: &mut TcpStream, head_only: bool) -> Resp {
    let head = read_head(s);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut r = Resp {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = r.header("content-length").map_or(0, |l| l.parse().unwrap());
    if !head_only && status != 304 {
        r.body = vec![0; len];
        s.read_exact(&mut r.body).unwrap();
    }
    r
}

/// One request on a connection of its own (`Connection: close`); `extra`: header lines.
pub fn request(addr: SocketAddr, method: &str, target: &str, extra: &str) -> Resp {
    let mut s = connect(addr);
    let req =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_resp(&mut s, method == "HEAD")
}

pub fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, "")
}

/// `GET target` on a kept-alive connection.
fn again(s: &mut TcpStream, target: &str) -> Resp {
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_resp(s, false)
}

/// Nothing from outside the root, nor from the hidden files, in a body.
fn assert_clean(target: &str, r: &Resp) {
    let text = r.text();
    assert!(
        !text.contains(SENTINEL),
        "{target}: the outside file was served"
    );
    for h in HIDDEN {
        assert!(!text.contains(h), "{target}: {h} was served");
    }
}

/// Run the table against a server; `listed` (with --web-listings): `/empty/` is a listing.
fn check_escapes(srv: &Server, site: &Site, listed: bool) {
    let rows = escapes(site);
    assert!(rows.len() >= 20);
    for (target, want) in &rows {
        let want = &match target.as_str() {
            "/empty/" if listed => 200,
            _ => *want,
        };
        let r = get(srv.addr, target);
        assert_eq!(r.status, *want, "{target:?}: {}", r.head);
        assert_clean(target, &r);
    }
}

#[test]
fn path_escapes_never_leave_the_web_root() {
    let site = site();
    let srv = Server::start(&["--web", &site.arg()]);
    check_escapes(&srv, &site, false);
    // A directory without its slash: 301 to a relative address, never `//host`.
    for (target, location) in [
        ("/app", "./app/"),
        ("/app/images?x=1", "./images/?x=1"),
        ("/app/images#top", "./images/"),
    ] {
        let r = get(srv.addr, target);
        assert_eq!(r.status, 301, "{target}");
        assert_eq!(r.header("location"), Some(location), "{target}");
    }
    assert_eq!(get(srv.addr, "/app/images/").status, 404);
}

/// Flip `swap.html` between `index.html` (inside) and the sentinel (outside) until `stop`.
fn flipper(site: &Site, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    let root = site.root();
    thread::spawn(move || {
        let mut flips = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let tmp = root.join("swap.tmp");
            let _ = std::fs::remove_file(&tmp);
            let to = ["index.html", "../outside/sentinel"][(flips % 2) as usize];
            symlink(to, &tmp).unwrap();
            std::fs::rename(&tmp, root.join("swap.html")).unwrap();
            flips += 1;
        }
        flips
    })
}

/// Request `/swap.html` while it flips, at least `n` times and until both outcomes were seen:
/// the inside file (200) or nothing (404), never the outside one.
fn swap_requests(srv: &Server, site: &Site, n: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let flips = flipper(site, stop.clone());
    let (mut inside, mut refused) = (0, 0);
    let end = Instant::now() + PATIENCE;
    let mut s = connect(srv.addr);
    while (inside == 0 || refused == 0 || inside + refused < n) && Instant::now() < end {
        let r = again(&mut s, "/swap.html");
        assert_clean("/swap.html", &r);
        match r.status {
            200 => {
                assert_eq!(r.text(), INDEX);
                inside += 1;
            }
            404 => refused += 1,
            other => panic!("/swap.html: {other}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let flips = flips.join().unwrap();
    eprintln!("swapped symlink: {inside} served inside, {refused} refused, {flips} flips");
    assert!(
        inside > 0 && refused > 0,
        "the race was not exercised: {inside} served, {refused} refused"
    );
}

#[test]
fn a_symlink_swapped_during_requests_never_serves_the_outside() {
    let site = site();
    let srv = Server::start(&["--web", &site.arg()]);
    swap_requests(&srv, &site, 300);
}

#[test]
fn under_strace_no_file_outside_the_web_root_is_opened() {
    let site = site();
    let trace = site.dir.path("trace.txt");
    let mut t = Traced::server(
        &["-f", "-y", "-e", "trace=openat,open,openat2"],
        &trace,
        &["--web", &site.arg()],
    );
    check_escapes(&t.srv, &site, false);
    swap_requests(&t.srv, &site, 100);
    t.finish();

    let text = std::fs::read_to_string(&trace).unwrap();
    let outside = site.outside().display().to_string();
    let base = site.dir.0.display().to_string();
    let root = site.arg();
    let opens: Vec<&str> = text.lines().filter(|l| l.contains("open")).collect();
    // With -y, strace shows the real path of each descriptor, the opened one included.
    assert!(
        opens
            .iter()
            .any(|l| l.contains("openat2(") && l.contains("root/index.html>")),
        "no openat2 of a file in the root traced:\n{}",
        opens.join("\n")
    );
    for l in text.lines() {
        assert!(
            !l.contains(&outside),
            "the outside directory was touched: {l}"
        );
    }
    for l in &opens {
        for (i, _) in l.match_indices(&base) {
            assert!(
                l[i..].starts_with(&root),
                "an open under the test's directory, outside the root: {l}"
            );
        }
    }
    eprintln!("{} open calls traced, none outside {root}", opens.len());
}

#[test]
fn content_types_head_304_405_and_tls() {
    let site = site();
    let srv = Server::start(&["--web", &site.arg()]);
    for (path, ctype) in [
        ("/app/ui.js", "text/javascript"),
        ("/index.html", "text/html"),
        ("/app/style.css", "text/css"),
        ("/app/images/icon.svg", "image/svg+xml"),
        ("/app/core.wasm", "application/wasm"),
    ] {
        let r = get(srv.addr, path);
        assert_eq!(r.status, 200, "{path}");
        let got = r.header("content-type").unwrap();
        assert!(got.starts_with(ctype), "{path}: {got}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        let len: usize = r.header("content-length").unwrap().parse().unwrap();
        assert_eq!(len, r.body.len());
        let want = std::fs::read(site.root().join(&path[1..])).unwrap();
        assert_eq!(r.body, want, "{path}");
    }

    // HEAD: the same headers, no body (the connection ends right after the head).
    let g = get(srv.addr, "/app/ui.js");
    let mut s = connect(srv.addr);
    s.write_all(b"HEAD /app/ui.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let h = read_resp(&mut s, true);
    assert_eq!(h.status, 200);
    for name in ["content-type", "content-length", "last-modified"] {
        assert_eq!(h.header(name), g.header(name), "{name}");
    }
    assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0, "HEAD sent a body");

    // If-Modified-Since: 304 at or after the file's time, 200 before it or when unreadable.
    let lm = g.header("last-modified").unwrap().to_string();
    for (since, want) in [
        (lm.as_str(), 304),
        ("Fri, 31 Dec 2100 23:59:59 GMT", 304),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 200),
        ("yesterday", 200),
    ] {
        let r = request(
            srv.addr,
            "GET",
            "/app/ui.js",
            &format!("If-Modified-Since: {since}\r\n"),
        );
        assert_eq!(r.status, want, "{since}");
        assert_eq!(r.body.is_empty(), want == 304);
    }

    // Other methods: 405, naming the two there are; a GET with a body: 400. Both close.
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = request(
            srv.addr,
            method,
            "/index.html",
            "Content-Length: 3\r\n\r\nabc",
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /")
        .unwrap();
    assert_eq!(read_resp(&mut s, false).status, 400);
    assert_eq!(
        read_resp(&mut s, false).status,
        0,
        "the body was read as a request"
    );

    // The same pages over TLS, on the same port.
    let tls = tls_server("127.0.0.1:9", &["--web", &site.arg()]);
    let url = tls.srv.url("https", "/app/ui.js");
    let out = run(Command::new("curl").args([
        "-sS",
        "-i",
        "--max-time",
        "15",
        "--cacert",
        &tls.certs.ca,
        &url,
    ]));
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("text/javascript") && out.ends_with("export const ui = 1;\n"),
        "{out}"
    );
}

/// A server frame (unmasked): opcode and payload.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert!(h[1] < 126, "short frames only here");
    let mut p = vec![0u8; h[1] as usize];
    s.read_exact(&mut p).unwrap();
    (h[0] & 0x0f, p)
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[test]
fn keep_alive_and_pipelined_requests_then_an_upgrade_on_one_connection() {
    let site = site();
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "--web", &site.arg()]);
    let mut s = connect(srv.addr);
    for (path, want) in [
        ("/index.html", 200),
        ("/app/ui.js", 200),
        ("/nothing", 404),
        ("/app", 301),
    ] {
        let r = again(&mut s, path);
        assert_eq!(r.status, want, "{path}");
        assert_eq!(r.header("connection"), Some("keep-alive"), "{path}");
    }
    // Three requests in one write, answered in order.
    s.write_all(
        b"GET /vnc.html HTTP/1.1\r\nHost: x\r\n\r\nHEAD /app/ui.js HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /app/images/icon.svg HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_resp(&mut s, false).text(), "<html>vnc</html>\n");
    let h = read_resp(&mut s, true);
    assert_eq!((h.status, h.header("content-length")), (200, Some("21")));
    assert!(read_resp(&mut s, false).text().starts_with("<svg"));
    // A page, the upgrade and the first tunnel bytes in one write: nothing is lost.
    let mut burst = format!(
        "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /websockify HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n"
    )
    .into_bytes();
    burst.extend(frame(2, b"early bytes"));
    s.write_all(&burst).unwrap();
    assert_eq!(read_resp(&mut s, false).text(), INDEX);
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    assert_eq!(read_frame(&mut s), (2, b"early bytes".to_vec()));
    assert_eq!(target.accepted(), 1);

    // HTTP/1.0 closes after one answer unless it asks for keep-alive; so does Connection: close.
    for (req, more) in [
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            false,
        ),
    ] {
        let mut s = connect(srv.addr);
        s.write_all(req.as_bytes()).unwrap();
        let r = read_resp(&mut s, false);
        let want = if more { "keep-alive" } else { "close" };
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some(want)),
            "{req}"
        );
        s.write_all(req.as_bytes()).unwrap();
        assert_eq!(read_resp(&mut s, false).status == 200, more, "{req}");
    }
}

#[test]
fn kept_alive_connections_stay_pending_with_a_deadline_per_request() {
    let site = site();
    let srv = Server::start(&[
        "--web",
        &site.arg(),
        "--handshake-timeout",
        "2",
        "--max-pending-per-ip",
        "2",
    ]);
    // Four requests 1.2 s apart: 3.6 s in all, each within 2 s of the answer before.
    let mut a = connect(srv.addr);
    for i in 0..4 {
        if i > 0 {
            thread::sleep(Duration::from_millis(1200));
        }
        assert_eq!(again(&mut a, "/").status, 200, "request {i}");
    }
    // Idle past its deadline: the listener cuts it, as any pending connection.
    let t = Instant::now();
    assert_eq!(read_resp(&mut a, false).status, 0);
    let idle = t.elapsed();
    assert!(
        idle > Duration::from_millis(1500) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    // Kept-alive connections count against --max-pending-per-ip.
    let mut b = connect(srv.addr);
    let mut c = connect(srv.addr);
    assert_eq!(again(&mut b, "/").status, 200);
    assert_eq!(again(&mut c, "/").status, 200);
    let mut d = connect(srv.addr);
    let _ = d.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        read_resp(&mut d, false).status,
        0,
        "a third pending connection got in"
    );
    drop(b);
    eventually("a pending slot to be free again", || {
        let mut e = connect(srv.addr);
        let _ = e.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp(&mut e, false).status == 200
    });
    assert_eq!(again(&mut c, "/vnc.html").status, 200);
}

pub fn upgrade(addr: SocketAddr, path: &str, headers: &str) -> String {
    let mut s = connect(addr);
    let req = format!("GET {path} HTTP/1.1\r\n{headers}{UPGRADE}\r\n");
    s.write_all(req.as_bytes()).unwrap();
    read_head(&mut s)
}

pub fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_reserved_prefix_is_neither_the_web_root_nor_a_target() {
    let site = site();
    let target = Target::echo();
    let web = Server::start(&["--target", &target.arg(), "--web", &site.arg()]);
    let plain = Server::start(&["--target", &target.arg()]);
    for srv in [&web, &plain] {
        for path in [
            "/_wssh/x",
            "/_wssh/",
            "/_wssh",
            "/%5fwssh/x",
            "/_wssh/x?y=1",
        ] {
            let r = get(srv.addr, path);
            assert_eq!(r.status, 404, "{path}");
            assert_clean(path, &r);
            let head = upgrade(srv.addr, path, "Host: x\r\n");
            assert_eq!(status(&head), 404, "upgrade {path}");
        }
    }
    assert_eq!(target.accepted(), 0, "a reserved path reached the target");
    // Without --web, other pages keep today's answer: not a WebSocket upgrade.
    assert_eq!(get(plain.addr, "/index.html").status, 400);
    assert!(status(&upgrade(plain.addr, "/websockify", "Host: x\r\n")) == 101);
}

#[test]
fn pages_may_open_tunnels_from_their_own_origin_under_hosts_that_are_surely_ours() {
    let site = site();
    let target = Target::echo();
    let t = target.arg();
    let web = Server::start(&[
        "--target",
        &t,
        "--web",
        &site.arg(),
        "--server-name",
        "vnc.test",
    ]);
    let proxied = Server::start(&[
        "--target",
        &t,
        "--web",
        &site.arg(),
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    let native = Server::start(&["--target", &t]);
    let fwd = "X-Forwarded-Host: vnc.test\r\nX-Forwarded-Proto: https\r\n";
    // (server, Host, Origin, more headers, status); `P` is that server's port.
    let rows: &[(&Server, &str, &str, &str, u16)] = &[
        (&web, "127.0.0.1:P", "http://127.0.0.1:P", "", 101),
        (&web, "localhost:P", "http://localhost:P", "", 101),
        (&web, "vnc.test:P", "http://vnc.test:P", "", 101),
        (&web, "127.0.0.1:P", "", "", 101), // no Origin: not a browser
        // DNS rebinding: the page's own origin, under a name that is not surely ours.
        (&web, "evil.test:P", "http://evil.test:P", "", 403),
        (
            &web,
            "127.0.0.1.nip.io:P",
            "http://127.0.0.1.nip.io:P",
            "",
            403,
        ),
        // Other origins: another host, port or scheme.
        (&web, "127.0.0.1:P", "http://evil.test", "", 403),
        (&web, "127.0.0.1:P", "http://127.0.0.1:1", "", 403),
        (&web, "127.0.0.1:P", "https://127.0.0.1:P", "", 403),
        (&web, "127.0.0.1:P", "null", "", 403),
        // X-Forwarded-* count only from a --trusted-proxy.
        (&web, "127.0.0.1:P", "https://vnc.test", fwd, 403),
        (&proxied, "127.0.0.1:P", "https://vnc.test", fwd, 403), // vnc.test is not its name
        (
            &proxied,
            "127.0.0.1:P",
            "https://localhost",
            "X-Forwarded-Host: localhost\r\nX-Forwarded-Proto: https\r\n",
            101,
        ),
        (
            &proxied,
            "127.0.0.1:P",
            "https://127.0.0.1:P",
            "X-Forwarded-Proto: https\r\n",
            101,
        ),
        (
            &proxied,
            "127.0.0.1:P",
            "http://127.0.0.1:P",
            "X-Forwarded-Proto: https\r\n",
            403,
        ),
        // Without --web, only --origin lets a browser in.
        (&native, "127.0.0.1:P", "http://127.0.0.1:P", "", 403),
        (&native, "localhost:P", "http://localhost:P", "", 403),
    ];
    for (srv, host, origin, more, want) in rows {
        let p = srv.addr.port().to_string();
        let (host, origin) = (host.replace('P', &p), origin.replace('P', &p));
        let origin = match origin.as_str() {
            "" => String::new(),
            o => format!("Origin: {o}\r\n"),
        };
        let head = upgrade(
            srv.addr,
            "/websockify",
            &format!("Host: {host}\r\n{origin}{more}"),
        );
        assert_eq!(
            status(&head),
            *want,
            "Host {host}, {origin:?} {more:?}: {head}"
        );
    }

    // Over TLS the page's scheme is https.
    let tls = tls_server(&t, &["--web", &site.arg()]);
    let url = tls.srv.url("wss", "/websockify");
    let origin = |scheme: &str| format!("Origin: {scheme}://{}", tls.srv.addr);
    let (code, out, err) = run_client(
        &["--ca", &tls.certs.ca, "-H", &origin("https"), &url],
        b"tls page",
    );
    assert_eq!(
        (code.and_then(|c| c.code()), &out[..]),
        (Some(0), &b"tls page"[..]),
        "{err}"
    );
    let (code, _, err) = run_client(&["--ca", &tls.certs.ca, "-H", &origin("http"), &url], b"x");
    assert_eq!(code.and_then(|c| c.code()), Some(1));
    assert!(err.contains("403"), "{err}");
}

#[test]
fn listings_and_dotfiles_only_when_asked_for() {
    let site = site();
    let root = site.root();
    std::fs::write(root.join("empty/<b>&\"x.txt"), "x").unwrap();
    std::fs::write(root.join("empty/.hidden"), "x").unwrap();
    std::fs::create_dir(root.join("empty/sub")).unwrap();
    let plain = Server::start(&["--web", &site.arg()]);
    assert_eq!(get(plain.addr, "/empty/").status, 404);
    assert_eq!(get(plain.addr, "/.well-known/security.txt").status, 404);

    let listing = Server::start(&["--web", &site.arg(), "--web-listings"]);
    let r = get(listing.addr, "/empty/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(
        html.contains("<a href=\"./%3Cb%3E%26%22x.txt\">&lt;b&gt;&amp;&quot;x.txt</a>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"./sub/\">sub/</a>"), "{html}");
    assert!(!html.contains("<b>") && !html.contains(".hidden"), "{html}");
    // Listings change nothing else: the escapes are refused the same way.
    check_escapes(&listing, &site, true);

    let dot = Server::start(&["--web", &site.arg(), "--web-dotfiles"]);
    assert_eq!(get(dot.addr, "/.well-known/security.txt").status, 200);
    assert_eq!(get(dot.addr, "/.env").text(), "PASSWORD=secret-env\n");
    for (path, want) in [
        ("/leak", 404),
        ("/abs-leak", 404),
        ("/../outside/sentinel", 400),
    ] {
        let r = get(dot.addr, path);
        assert_eq!(r.status, want, "{path}");
        assert!(!r.text().contains(SENTINEL));
    }
}

#[test]
fn web_flags_are_checked_at_start() {
    let site = site();
    let file = site.root().join("index.html");
    let file = file.to_str().unwrap();
    let root = site.arg();
    for (args, msg) in [
        (
            vec!["--web", "/nonexistent-wssh-web"],
            "--web /nonexistent-wssh-web: No such file",
        ),
        (vec!["--web", file], "not a directory"),
        (vec!["--web-listings"], "need --web DIR"),
        (
            vec!["--server-name", "vnc.test"],
            "needs --web DIR or --console",
        ),
        (
            vec!["--web", &root, "--server-name", "a b"],
            "not a host name",
        ),
        (
            vec!["--web", &root, "--server-name", "127.0.0.1"],
            "an address needs no --server-name",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("server")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn nginx_in_front_serves_the_page_and_its_tunnel_from_one_origin() {
    let site = site();
    let target = Target::echo();
    let dir = TempDir::new("web-nginx");
    let c = certs(&dir);
    for trusted in [true, false] {
        let mut args = vec![
            "--target".to_string(),
            target.arg(),
            "--web".into(),
            site.arg(),
        ];
        if trusted {
            args.extend(["--trusted-proxy".into(), "127.0.0.1".into()]);
        }
        let srv = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let nginx = nginx_with(srv.addr, Some(&c), "60s", "wssh-web-location.conf");
        let page = format!("https://127.0.0.1:{}", nginx.port);
        let out = run(Command::new("curl").args([
            "-sS",
            "-i",
            "--max-time",
            "15",
            "--cacert",
            &c.ca,
            &format!("{page}/vnc.html"),
        ]));
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("<html>vnc</html>\n"),
            "{out}"
        );
        // The page's WebSocket: Host and X-Forwarded-Proto from nginx make it same-origin.
        let ws = format!("wss://127.0.0.1:{}/websockify", nginx.port);
        let origin = format!("Origin: {page}");
        let (code, out, err) = run_client(&["--ca", &c.ca, "-H", &origin, &ws], b"through nginx");
        if trusted {
            assert_eq!(
                (code.and_then(|c| c.code()), &out[..]),
                (Some(0), &b"through nginx"[..]),
                "{err}"
            );
        } else {
            // Not believed from an untrusted peer: the scheme is the plain hop's, http.
            assert_eq!(code.and_then(|c| c.code()), Some(1), "{err}");
            assert!(err.contains("403"), "{err}");
        }
    }
}
