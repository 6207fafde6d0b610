//! Browsers, for real: noVNC (Debian's `novnc`, unchanged) in headless Chromium reaching a VNC
//! desktop (Xvfb with x11vnc) through `wssh server --web`, through noVNC's own launcher with wssh
//! installed as `websockify`, and behind nginx; a page moving 1 MiB through an echo target,
//! compared by hash; and that page refused from another origin and under an unlisted host name.
//!
//! The browser side is `tests/browser/*.mjs` (playwright-core driving /usr/bin/chromium; `npm ci`
//! in `scripts/test`), each printing one JSON line. The desktop shows a pattern drawn with
//! `xsetroot` in colours chosen per run, and `xev` logs the keys that reach the X server.
//! One browser test runs at a time (two cores are shared).
//!
//! `WSSH_BROWSER_SERVER=websockify` runs the same tests against Python's websockify 0.13
//! (`python3 -m websockify`; the refusals asked of it with its ExpectOrigin plugin): a check of
//! this harness, and of parity.

use crate::reach::nginx_with;
use crate::ssh::free_port;
use crate::support::*;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const NOVNC: &str = "/usr/share/novnc";
const NOVNC_PROXY: &str = "/usr/share/novnc/utils/novnc_proxy";
/// The desktop's size: small, so that a full framebuffer update is quick.
const W: u32 = 320;
const H: u32 = 240;
/// What the tests type into noVNC; lower-case letters, whose keysym names are themselves.
const TYPED: &str = "wssh";

/// One browser test at a time (`auth` has some too).
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn pages() -> PathBuf {
    Path::new(REPO).join("tests/browser/pages")
}

// ---------------------------------------------------------------------------------------------
// The desktop: Xvfb, a pattern on its root window, xev logging keys, x11vnc serving it.

/// A VNC desktop on loopback: Xvfb on a display it chose itself (`-displayfd`), x11vnc on a
/// port from the OS, the test pattern on the root window, and xev's log of the keys it got.
struct Desktop {
    /// x11vnc's address, `127.0.0.1:PORT`.
    vnc: String,
    /// xev's output: every key event that reached the X server.
    keylog: PathBuf,
    /// Sample points and the colour each must show: `X,Y=RRGGBB ...`, for novnc.mjs.
    pixels: String,
    samples: usize,
    // Dropped in this order: the clients, then the X server, then their directory.
    _xev: Proc,
    _vnc: Proc,
    _xvfb: Proc,
    dir: TempDir,
}

/// Start `cmd` with stdout piped and stderr to `log`; wait, at most PATIENCE, for a stdout line
/// that `want` accepts, and return it. Later output is read and dropped.
fn spawn_until_stdout(mut cmd: Command, log: &Path, want: impl Fn(&str) -> bool) -> (Proc, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let proc = Proc {
        child,
        stderr: Default::default(),
    };
    let end = Instant::now() + PATIENCE;
    loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(line) if want(&line) => return (proc, line),
            Ok(_) => continue,
            Err(_) => panic!(
                "{cmd:?} did not say what was expected: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

/// Is the pattern's foreground at (x, y)? A checkerboard of 16-pixel squares with a solid
/// 48x32 block in the top left corner, so that a shifted or mirrored picture does not match.
fn foreground(x: u32, y: u32) -> bool {
    (x < 48 && y < 32) || (x / 16 + y / 16) % 2 == 1
}

/// The pattern as an X bitmap the size of the screen (xsetroot tiles it: once).
fn xbm() -> String {
    let mut bytes = Vec::new();
    for y in 0..H {
        for bx in 0..W.div_ceil(8) {
            let bits = (0..8)
                .filter(|i| bx * 8 + i < W && foreground(bx * 8 + i, y))
                .fold(0u8, |b, i| b | (1 << i));
            bytes.push(format!("0x{bits:02x}"));
        }
    }
    format!(
        "#define p_width {W}\n#define p_height {H}\nstatic unsigned char p_bits[] = {{\n{}}};\n",
        bytes.join(",")
    )
}

/// Foreground and background colours, new each run: each channel of one is dark and of the
/// other light, so they differ by at least 0x40 everywhere.
fn colours() -> (u32, u32) {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut x = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    let (mut fg, mut bg) = (0u32, 0u32);
    for _ in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (dark, light) = (0x10 + (x % 0x50) as u32, 0xa0 + ((x >> 8) % 0x50) as u32);
        let (f, b) = if x & (1 << 20) == 0 {
            (dark, light)
        } else {
            (light, dark)
        };
        fg = fg << 8 | f;
        bg = bg << 8 | b;
    }
    (fg, bg)
}

impl Desktop {
    fn start() -> Desktop {
        let dir = TempDir::new("desktop");
        let xvfb_cmd = {
            let mut c = Command::new("Xvfb");
            let screen = format!("{W}x{H}x24");
            c.args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &screen,
                "-nolisten",
                "tcp",
            ]);
            // No reset when the last client leaves (xsetroot, at once): it would undo the pattern.
            c.arg("-noreset");
            c
        };
        let (xvfb, n) = spawn_until_stdout(xvfb_cmd, &dir.path("xvfb.log"), |l| {
            l.trim().parse::<u32>().is_ok()
        });
        let display = format!(":{}", n.trim());

        // The pattern, on the root window.
        let (fg, bg) = colours();
        std::fs::write(dir.path("pattern.xbm"), xbm()).unwrap();
        run(Command::new("xsetroot")
            .args(["-display", &display, "-bitmap"])
            .arg(dir.path("pattern.xbm"))
            .args(["-fg", &format!("#{fg:06x}"), "-bg", &format!("#{bg:06x}")]));
        let mut pixels = Vec::new();
        for (x, y) in (0..H / 16)
            .step_by(2)
            .flat_map(|cy| {
                (0..W / 16)
                    .step_by(3)
                    .map(move |cx| (cx * 16 + 8, cy * 16 + 8))
            })
            .chain([(24, 8), (8, 24), (40, 24), (24, 40)])
        {
            let c = if foreground(x, y) { fg } else { bg };
            pixels.push(format!("{x},{y}={c:06x}"));
        }

        // xev before x11vnc, so that it listens long before anyone types.
        let keylog = dir.path("keys.log");
        let xev = Command::new("xev")
            .args(["-display", &display, "-root", "-event", "keyboard"])
            .stdin(Stdio::null())
            .stdout(File::create(&keylog).unwrap())
            .stderr(File::create(dir.path("xev.log")).unwrap())
            .spawn()
            .expect("xev (x11-utils) must be installed");
        let xev = Proc {
            child: xev,
            stderr: Default::default(),
        };

        // x11vnc probes upwards from a port the OS just gave out, and says which it took.
        let mut vnc_cmd = Command::new("x11vnc");
        vnc_cmd
            .args(["-display", &display, "-autoport", &free_port().to_string()])
            .args(["-localhost", "-noipv6", "-nopw", "-forever", "-shared"])
            .args(["-norc", "-noxdamage"]);
        let (vnc, line) =
            spawn_until_stdout(vnc_cmd, &dir.path("x11vnc.log"), |l| l.starts_with("PORT="));
        let port: u16 = line["PORT=".len()..].trim().parse().unwrap();
        Desktop {
            vnc: format!("127.0.0.1:{port}"),
            keylog,
            samples: pixels.len(),
            pixels: pixels.join(" "),
            _xev: xev,
            _vnc: vnc,
            _xvfb: xvfb,
            dir,
        }
    }

    /// The keysym names of the key presses that reached the X server, in order.
    fn keys(&self) -> String {
        let text = std::fs::read_to_string(&self.keylog).unwrap_or_default();
        let mut keys = String::new();
        let mut press = false;
        for line in text.lines() {
            if !line.starts_with(' ') {
                press = line.starts_with("KeyPress event");
            } else if let Some(rest) = line.split("(keysym 0x").nth(1).filter(|_| press) {
                keys += rest.split([',', ')']).nth(1).unwrap_or("").trim();
                press = false;
            }
        }
        keys
    }

    /// Run novnc.mjs on `url` against this desktop and check everything it reports: Connected,
    /// every sample pixel right in the canvas and in a screenshot of it, the typed keys at the X
    /// server, a clean disconnect, and no request to another origin.
    fn check_novnc(&self, url: &str) -> Json {
        let r = node(
            "novnc.mjs",
            &[
                url,
                "--pixels",
                &self.pixels,
                "--type",
                TYPED,
                "--keylog",
                self.keylog.to_str().unwrap(),
            ],
        );
        let logs = || {
            ["x11vnc.log", "xvfb.log"]
                .map(|f| std::fs::read_to_string(self.dir.path(f)).unwrap_or_default())
                .join("\n")
        };
        assert!(r.ok, "noVNC in Chromium failed: {}\n{}", r.line, logs());
        assert!(r.str("status").starts_with("Connected"), "{}", r.line);
        assert_eq!(r.raw("canvas"), format!("[{W},{H}]"), "{}", r.line);
        assert_eq!(r.raw("pixels_checked"), self.samples.to_string());
        assert_eq!(r.raw("mismatches"), "[]", "canvas pixels: {}", r.line);
        assert_eq!(r.raw("screenshot"), format!("[{W},{H}]"), "{}", r.line);
        assert_eq!(
            r.raw("screenshot_mismatches"),
            "[]",
            "screenshot: {}",
            r.line
        );
        assert!(
            self.keys().contains(TYPED),
            "typed {TYPED:?} in the page, the X server got {:?}",
            self.keys()
        );
        assert_eq!(r.str("disconnect_status"), "Disconnected", "{}", r.line);
        assert_eq!(r.raw("clean"), "true", "{}", r.line);
        assert_eq!(r.raw("foreign"), "[]", "requests to another origin");
        assert!(r.raw("websockets").contains("ws://"), "{}", r.line);
        r
    }
}

// ---------------------------------------------------------------------------------------------
// The browser scripts and their one JSON line.

/// A script's result line, and whether it exited 0.
pub struct Json {
    pub line: String,
    pub ok: bool,
}

impl Json {
    /// The raw JSON text of a top-level field ("" when absent).
    pub fn raw(&self, key: &str) -> String {
        let s = &self.line;
        let want = format!("\"{key}\":");
        let (mut depth, mut in_str, mut esc) = (0, false, false);
        for (i, c) in s.char_indices() {
            if in_str {
                match (esc, c) {
                    (true, _) => esc = false,
                    (false, '\\') => esc = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' if depth == 1 && s[i..].starts_with(&want) => {
                    return value_at(&s[i + want.len()..]).to_string();
                }
                '"' => in_str = true,
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ => {}
            }
        }
        String::new()
    }

    /// A string field, unquoted (escapes other than \" and \\ are left alone).
    pub fn str(&self, key: &str) -> String {
        let v = self.raw(key);
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        v.unwrap_or("").replace("\\\"", "\"").replace("\\\\", "\\")
    }
}

/// The JSON value at the start of `s`, up to the `,` or `}` that ends it.
fn value_at(s: &str) -> &str {
    let (mut depth, mut in_str, mut esc) = (0, false, false);
    for (i, c) in s.char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => return &s[..i],
            _ => {}
        }
    }
    s
}

/// Run `node tests/browser/SCRIPT ARGS` (bounded) and take its last stdout line.
pub fn node(script: &str, args: &[&str]) -> Json {
    let path = Path::new(REPO).join("tests/browser").join(script);
    let (ok, out, err) = try_run(Command::new("node").arg(path).args(args));
    let line = out.lines().last().unwrap_or("").to_string();
    assert!(
        line.starts_with('{'),
        "{script} printed no result (scripts/test installs Chromium and runs npm ci in \
         tests/browser): {err}"
    );
    Json { line, ok }
}

// ---------------------------------------------------------------------------------------------
// The server under test: wssh, or (WSSH_BROWSER_SERVER=websockify) Python's websockify.

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Wssh,
    Websockify,
}

fn kind() -> Kind {
    match std::env::var("WSSH_BROWSER_SERVER").as_deref() {
        Err(_) | Ok("") | Ok("wssh") => Kind::Wssh,
        Ok("websockify") => Kind::Websockify,
        Ok(other) => panic!("WSSH_BROWSER_SERVER={other}: want wssh or websockify"),
    }
}

struct Under {
    port: u16,
    proc: Proc,
}

impl Under {
    /// `wssh server --listen 127.0.0.1:0 --web WEB --target TARGET WSSH_ARGS`. Under websockify:
    /// `python3 -m websockify -v --web WEB 127.0.0.1:PORT TARGET`, and, when `expect_host` is
    /// given, its ExpectOrigin plugin allowing only `http://EXPECT_HOST:PORT` (what wssh's own
    /// origin rule does for these tests).
    fn start(web: &Path, target: &str, wssh_args: &[&str], expect_host: Option<&str>) -> Under {
        let web = web.to_str().unwrap();
        match kind() {
            Kind::Wssh => {
                let mut args = vec!["--web", web, "--target", target];
                args.extend_from_slice(wssh_args);
                let srv = Server::start(&args);
                Under {
                    port: srv.addr.port(),
                    proc: srv.proc,
                }
            }
            Kind::Websockify => {
                let port = free_port();
                let mut cmd = Command::new("python3");
                cmd.args(["-m", "websockify", "-v", "--web", web]);
                if let Some(h) = expect_host {
                    cmd.args(["--auth-plugin", "ExpectOrigin", "--auth-source"]);
                    cmd.arg(format!("http://{h}:{port}"));
                }
                cmd.arg(format!("127.0.0.1:{port}")).arg(target);
                let (proc, _) = spawn_until(cmd, "proxying from");
                Under { port, proc }
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's own word that a tunnel ended with the browser's Close.
    fn wait_clean_end(&self) {
        let mark = match kind() {
            Kind::Wssh => " end=peer closed",
            Kind::Websockify => "Client closed connection",
        };
        eventually("the tunnel's clean end in the server log", || {
            self.proc.stderr_text().contains(mark)
        });
    }

    /// The status line the server answers an upgrade of /echo with these Host and Origin.
    fn upgrade_status(&self, host: &str, origin: &str) -> String {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let req = format!(
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        read_head(&mut s).lines().next().unwrap_or("").to_string()
    }
}

/// noVNC's launcher `utils/novnc_proxy`, unchanged, finding `websockify` first on PATH in a
/// directory of the test's. Stopped as a user would (SIGTERM: it kills its websockify); the
/// websockify it started is then killed by its PID too if it is still there.
struct Launcher {
    proc: Proc,
    /// The websockify the launcher started.
    child: u32,
    out: PathBuf,
}

impl Launcher {
    fn start(dir: &TempDir, port: u16, vnc: &str) -> Launcher {
        let bin = dir.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let websockify = bin.join("websockify");
        match kind() {
            Kind::Wssh => std::os::unix::fs::symlink(BIN, &websockify).unwrap(),
            Kind::Websockify => {
                std::fs::write(
                    &websockify,
                    "#!/bin/sh\nexec python3 -m websockify \"$@\"\n",
                )
                .unwrap();
                run(Command::new("chmod").arg("+x").arg(&websockify));
            }
        }
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = dir.path("novnc_proxy.log");
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(NOVNC_PROXY)
            .args(["--vnc", vnc, "--listen", &listen])
            .current_dir(&dir.0)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(dir.path("novnc_proxy.err")).unwrap())
            .spawn()
            .expect("novnc must be installed");
        let mut proc = Proc {
            child,
            stderr: Default::default(),
        };
        let pid = proc.pid();
        let log = || {
            ["novnc_proxy.log", "novnc_proxy.err"]
                .map(|f| std::fs::read_to_string(dir.path(f)).unwrap_or_default())
                .join("\n")
        };
        let mut child = 0;
        let end = Instant::now() + PATIENCE;
        while Instant::now() < end && TcpStream::connect(&listen).is_err() {
            if proc.child.try_wait().unwrap().is_some() {
                break; // "Failed to start WebSockets proxy"
            }
            thread::sleep(Duration::from_millis(50));
        }
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
        if let Some(c) = children.unwrap_or_default().split_whitespace().next() {
            child = c.parse().unwrap();
        }
        assert!(
            child != 0 && TcpStream::connect(&listen).is_ok(),
            "novnc_proxy did not start websockify: {}",
            log()
        );
        Launcher { proc, child, out }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.proc.pid().to_string()])
            .status();
        let _ = self.proc.wait_for(Duration::from_secs(5));
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.child)).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("websockify") {
            let _ = Command::new("kill")
                .args(["-KILL", &self.child.to_string()])
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// Needs `--web` (branch web).
#[test]
fn novnc_in_chromium_through_wssh_web() {
    let _one = one_at_a_time();
    let desk = Desktop::start();
    let srv = Under::start(Path::new(NOVNC), &desk.vnc, &[], None);
    desk.check_novnc(&format!("{}/vnc.html?autoconnect=1", srv.origin()));
    srv.wait_clean_end();
}

/// Needs `--web` and websockify's command line under the name `websockify` (branches web, wsfy).
#[test]
fn novnc_proxy_launcher_runs_wssh_as_websockify() {
    let _one = one_at_a_time();
    let desk = Desktop::start();
    let dir = TempDir::new("novnc-proxy");
    let port = free_port();
    let launcher = Launcher::start(&dir, port, &desk.vnc);
    let said = std::fs::read_to_string(&launcher.out).unwrap();
    let ours = format!(
        "Using installed websockify at {}",
        dir.path("bin/websockify").display()
    );
    assert!(said.contains(&ours), "novnc_proxy said: {said}");
    if kind() == Kind::Wssh {
        let exe = std::fs::read_link(format!("/proc/{}/exe", launcher.child)).unwrap();
        assert_eq!(exe, Path::new(&*BIN).canonicalize().unwrap(), "not wssh");
    }
    desk.check_novnc(&format!("http://127.0.0.1:{port}/vnc.html?autoconnect=1"));
}

/// Needs `--web`, and the shipped websockify-style nginx snippet `nginx/wssh-web-location.conf`
/// (branch web). nginx passes the page and /websockify to one server, with `Host $http_host` and
/// X-Forwarded-Host/Proto believed from a `--trusted-proxy`: the page's own origin is allowed
/// without `--origin`.
#[test]
fn novnc_in_chromium_behind_nginx() {
    let _one = one_at_a_time();
    let desk = Desktop::start();
    let srv = Under::start(
        Path::new(NOVNC),
        &desk.vnc,
        &["--trusted-proxy", "127.0.0.1"],
        None,
    );
    let nginx = nginx_with(srv.addr(), None, "60s", "wssh-web-location.conf");
    let page = format!("http://127.0.0.1:{}/vnc.html?autoconnect=1", nginx.port);
    desk.check_novnc(&page);
    srv.wait_clean_end();
}

/// Needs `--web` (branch web).
#[test]
fn echo_page_moves_1_mib_by_hash() {
    let _one = one_at_a_time();
    let target = Target::echo();
    let srv = Under::start(&pages(), &target.arg(), &[], None);
    let r = node(
        "echo.mjs",
        &[&format!("{}/echo.html?path=/echo", srv.origin())],
    );
    assert!(r.ok, "echo page: {}", r.line);
    assert_eq!(r.raw("match"), "true", "{}", r.line);
    assert_eq!(r.raw("received"), (1 << 20).to_string(), "{}", r.line);
    assert_eq!(r.raw("sha256_sent").len(), 66, "{}", r.line);
    assert_eq!(r.raw("sha256_sent"), r.raw("sha256_back"));
    assert_eq!(target.accepted(), 1);
    srv.wait_clean_end();
}

/// Needs `--web` (branch web): the server serves pages, and a page from elsewhere still gets 403.
#[test]
fn page_from_another_origin_is_refused() {
    let _one = one_at_a_time();
    let target = Target::echo();
    let srv = Under::start(&pages(), &target.arg(), &[], Some("127.0.0.1"));
    let url = format!("{}/echo.html?path=/echo", srv.origin());
    let r = node("echo.mjs", &[&url, "--other-origin", "--expect", "refused"]);
    assert!(r.ok, "page from another origin: {}", r.line);
    assert_eq!(r.raw("opened"), "false", "{}", r.line);
    assert!(r.str("handshake").contains("403"), "{}", r.line);
    // The browser hides the status from the page; ask again with the Origin it sent.
    let page = r.str("url");
    let other = &page[..page[7..].find('/').unwrap() + 7];
    assert_ne!(other, srv.origin());
    let host = format!("127.0.0.1:{}", srv.port);
    let status = srv.upgrade_status(&host, other);
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert_eq!(target.accepted(), 0, "a refused page reached the target");
}

/// Needs `--web` and `--server-name` (branch web). A page under a name that resolves to this
/// server (in the browser: Chromium's host resolver maps evil.test to 127.0.0.1, as DNS
/// rebinding would) has an Origin equal to its Host, and is still refused; with
/// `--server-name evil.test` the same page gets its echo, so the name was the reason.
#[test]
fn unlisted_host_name_is_refused_even_when_origin_matches() {
    let _one = one_at_a_time();
    let target = Target::echo();
    let srv = Under::start(&pages(), &target.arg(), &[], Some("127.0.0.1"));
    let host = format!("evil.test:{}", srv.port);
    let url = format!("http://{host}/echo.html?path=/echo");
    let r = node(
        "echo.mjs",
        &[&url, "--resolve", "evil.test", "--expect", "refused"],
    );
    assert!(r.ok, "page under an unlisted name: {}", r.line);
    assert_eq!(r.raw("opened"), "false", "{}", r.line);
    assert!(r.str("handshake").contains("403"), "{}", r.line);
    let status = srv.upgrade_status(&host, &format!("http://{host}"));
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert_eq!(target.accepted(), 0);
    drop(srv);

    let named = Under::start(
        &pages(),
        &target.arg(),
        &["--server-name", "evil.test"],
        Some("evil.test"),
    );
    let url = format!("http://evil.test:{}/echo.html?path=/echo", named.port);
    let r = node("echo.mjs", &[&url, "--resolve", "evil.test"]);
    assert!(r.ok, "page under a --server-name: {}", r.line);
    assert_eq!(r.raw("match"), "true", "{}", r.line);
}
