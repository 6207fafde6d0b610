//! Test support: the real `wssh` binary on loopback port 0, temp dirs, certificates, TCP targets,
//! reproducible data, and bounded waits. Every child is killed by PID on drop; nothing hangs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test: `WSSH_BIN` when set (scripts/test points the core tunnel tests at the
/// static musl build), else the one cargo built beside these tests. `BIN` stands for that path
/// wherever a `&str`, a path or a command's program is wanted (`&BIN` as a `&str`).
pub const BIN: Bin = Bin;
pub struct Bin;

impl std::ops::Deref for Bin {
    type Target = str;
    fn deref(&self) -> &str {
        static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        PATH.get_or_init(|| {
            std::env::var("WSSH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wssh").to_string())
        })
    }
}

impl AsRef<std::ffi::OsStr> for Bin {
    fn as_ref(&self) -> &std::ffi::OsStr {
        (**self).as_ref()
    }
}

impl AsRef<Path> for Bin {
    fn as_ref(&self) -> &Path {
        Path::new(&**self)
    }
}

impl std::fmt::Display for Bin {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// Upper bound for anything that should take a moment: a hang fails the test, not CI.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("wssh-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (by its PID) when dropped.
pub struct Proc {
    pub child: Child,
    /// Everything it wrote to stderr so far, a line each.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Wait for exit, at most `limit`; None if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the stderr reader catch the last lines.
                thread::sleep(Duration::from_millis(50));
                return Some(s);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
        assert!(ok.unwrap().success(), "kill -{sig} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collect a child's stderr into lines; `tx` gets each line too.
fn read_stderr(child: &mut Child, tx: Option<mpsc::Sender<String>>) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = child.stderr.take().unwrap();
    let l = lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(tx) = &tx {
                let _ = tx.send(line.clone());
            }
            l.lock().unwrap().push(line);
        }
    });
    lines
}

/// A running `wssh server` (or `connect`, `forward`) and its address.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Server {
    /// Start `wssh server --listen 127.0.0.1:0 ARGS` and wait for `listening on`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", args)
    }

    pub fn start_on(listen: &str, args: &[&str]) -> Server {
        Server::mode("server", listen, args)
    }

    /// Start any listening mode (`server`, `connect`, `forward`) and wait for `listening on`.
    pub fn mode(mode: &str, listen: &str, args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args([mode, "--listen", listen]).args(args);
        Server::spawn(cmd)
    }

    /// Start a prepared command that runs a listening mode; wait for `listening on`.
    pub fn spawn(cmd: Command) -> Server {
        let (proc, line) = spawn_until(cmd, "listening on ");
        let addr = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Server { proc, addr }
    }

    /// Start a prepared command that listens on a Unix socket; wait for `listening on unix:`.
    pub fn spawn_unix(cmd: Command) -> Proc {
        spawn_until(cmd, "listening on unix:").0
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        self.proc.stderr_text()
    }
}

/// `wssh server --listen 127.0.0.1:0 ARGS` run under `strace STRACE_ARGS -o TRACE`; the traced
/// wssh is killed on drop (killing strace would leave it).
pub struct Traced {
    pub srv: Server,
    pub wssh: u32,
}

impl Traced {
    pub fn server(strace_args: &[&str], trace: &Path, args: &[&str]) -> Traced {
        let mut cmd = Command::new("strace");
        cmd.args(strace_args).arg("-o").arg(trace).args([
            &*BIN,
            "server",
            "--listen",
            "127.0.0.1:0",
        ]);
        cmd.args(args);
        let srv = Server::spawn(cmd);
        let children = format!("/proc/{0}/task/{0}/children", srv.proc.pid());
        let wssh = std::fs::read_to_string(children)
            .unwrap()
            .split_whitespace()
            .next()
            .expect("strace runs wssh")
            .parse()
            .unwrap();
        Traced { srv, wssh }
    }

    /// Stop wssh; strace ends with it, its trace complete.
    pub fn finish(&mut self) {
        run(Command::new("kill").args(["-TERM", &self.wssh.to_string()]));
        self.srv.proc.wait_for(PATIENCE).expect("strace to end");
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.wssh.to_string()])
            .status();
    }
}

/// Start a command (stdin and stdout closed) and wait, at most PATIENCE, for a stderr line
/// containing `marker`; returns the process and that line.
pub fn spawn_until(mut cmd: Command, marker: &str) -> (Proc, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let (tx, rx) = mpsc::channel();
    let stderr = read_stderr(&mut child, Some(tx));
    let proc = Proc { child, stderr };
    let end = Instant::now() + PATIENCE;
    loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(marker) => return (proc, line),
            Ok(_) => continue,
            Err(_) => panic!("{cmd:?} did not say {marker:?}: {}", proc.stderr_text()),
        }
    }
}

/// Start `wssh client ARGS` with piped stdin and stdout.
pub fn client(args: &[&str]) -> Proc {
    spawn_client(client_cmd(args))
}

/// The `wssh client ARGS` command, for a test to add environment to.
pub fn client_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("client").args(args);
    cmd
}

/// Start a prepared client command with piped stdin and stdout.
pub fn spawn_client(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = read_stderr(&mut child, None);
    Proc { child, stderr }
}

/// What a client run to its end gave: exit status, stdout, stderr.
pub type Run = (Option<ExitStatus>, Vec<u8>, String);

/// Run a client to the end: feed `input` (then EOF), collect stdout. Bounded by PATIENCE.
pub fn run_client(args: &[&str], input: &[u8]) -> Run {
    run_client_cmd(client_cmd(args), input)
}

/// The same for a prepared command.
pub fn run_client_cmd(cmd: Command, input: &[u8]) -> Run {
    let mut c = spawn_client(cmd);
    let mut stdin = c.child.stdin.take().unwrap();
    let input = input.to_vec();
    let w = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = read_all_bounded(c.child.stdout.take().unwrap());
    let status = c.wait_for(PATIENCE);
    w.join().unwrap();
    (status, out, c.stderr_text())
}

/// Read a pipe to EOF on a helper thread, giving up after PATIENCE.
pub fn read_all_bounded(mut r: impl Read + Send + 'static) -> Vec<u8> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        let _ = tx.send(v);
    });
    rx.recv_timeout(PATIENCE)
        .expect("output did not end in time")
}

/// A TCP target on 127.0.0.1:0 running `handle` for each connection; counts connections.
pub struct Target {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Target {
    pub fn start<F>(handle: F) -> Target
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (acc, handle) = (accepted.clone(), Arc::new(handle));
        thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                acc.fetch_add(1, Ordering::SeqCst);
                let h = handle.clone();
                thread::spawn(move || {
                    s.set_read_timeout(Some(PATIENCE)).unwrap();
                    h(s)
                });
            }
        });
        Target { addr, accepted }
    }

    /// Echo everything back; close after the peer's EOF.
    pub fn echo() -> Target {
        Target::start(|mut s| {
            let mut r = s.try_clone().unwrap();
            let _ = std::io::copy(&mut r, &mut s);
        })
    }

    /// Read everything and hold the connection until the peer's EOF; send nothing.
    pub fn sink() -> Target {
        Target::start(|s| {
            let _ = (&s).read_to_end(&mut Vec::new());
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Wait (bounded) until the server has dialled this target once: the tunnel is open.
    pub fn wait_for_tunnel(&self) {
        eventually("the tunnel to open", || self.accepted() == 1);
    }

    pub fn arg(&self) -> String {
        self.addr.to_string()
    }
}

/// curl's body for `http://WEB/` fetched through the CONNECT proxy listening at `proxy`.
pub fn curl_through(proxy: SocketAddr, web: SocketAddr) -> String {
    run(Command::new("curl").args([
        "-sS",
        "--max-time",
        "15",
        "-p",
        "-x",
        &format!("http://{proxy}"),
        &format!("http://{web}/"),
    ]))
}

/// An HTTP server of one page: reads a request head, answers `body`, closes.
pub fn http_target(body: &'static str) -> Target {
    Target::start(move |mut s| {
        let _ = read_head(&mut s);
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    })
}

/// Reproducible pseudo-random bytes (xorshift64*), so both ends can agree without sharing.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// FNV-1a over 8-byte words: a checksum for comparing streams.
pub fn checksum(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ b.len() as u64;
    for c in b.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Run a command to its end, bounded, with `input` on its stdin (none: /dev/null): its exit
/// status, stdout and stderr. A command that exits before reading its input is fine.
pub fn outcome(cmd: &mut Command, input: Option<&[u8]>) -> (ExitStatus, String, String) {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        let _ = pipe.write_all(input);
    }
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let err = std::thread::spawn(move || read_all_bounded(err));
    let out = read_all_bounded(out);
    let mut p = Proc {
        child,
        stderr: Default::default(),
    };
    let status = p.wait_for(PATIENCE * 3).expect("command hung");
    let err = err.join().unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (status, text(out), text(err))
}

/// Run a command, bounded: whether it succeeded, its stdout and its stderr.
pub fn try_run(cmd: &mut Command) -> (bool, String, String) {
    let (status, out, err) = outcome(cmd, None);
    (status.success(), out, err)
}

/// Run a command, bounded; panic with its stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let (ok, out, err) = try_run(cmd);
    assert!(ok, "{cmd:?} failed: {err}");
    out
}

/// CA and server certificate for 127.0.0.1 and localhost, made with the openssl CLI.
pub struct Certs {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A self-signed certificate for `cn`, valid 2 days, with `extra` arguments to `openssl req`:
/// `DIR/NAME.pem` and its key `DIR/NAME.key`, returned as (certificate, key).
pub fn self_signed(dir: &TempDir, name: &str, cn: &str, extra: &[&str]) -> (String, String) {
    let p = |n: String| dir.path(&n).to_str().unwrap().to_string();
    let (pem, key) = (p(format!("{name}.pem")), p(format!("{name}.key")));
    let subj = format!("/CN={cn}");
    let args = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
    ];
    let args = [&args[..], &["-days", "2", "-subj", &subj], extra].concat();
    run(Command::new("openssl").args(args));
    (pem, key)
}

pub fn certs(dir: &TempDir) -> Certs {
    let p = |n: &str| dir.path(n).to_str().unwrap().to_string();
    let run = |args: &[&str]| run(Command::new("openssl").args(args));
    let ext = p("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n").unwrap();
    self_signed(dir, "ca", "wssh test CA", &[]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p("key.pem"),
        "-out",
        &p("srv.csr"),
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p("srv.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("cert.pem"),
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    Certs {
        ca: p("ca.pem"),
        cert: p("cert.pem"),
        key: p("key.pem"),
    }
}

/// A server with fresh test certificates (ws and wss on one port), and the certificates.
pub struct TlsServer {
    pub srv: Server,
    pub certs: Certs,
    /// Holds the certificate files: keep it bound (`dir: _dir`) while they are used.
    pub dir: TempDir,
}

/// Start `wssh server --target TARGET --cert .. --key .. EXTRA`.
pub fn tls_server(target: &str, extra: &[&str]) -> TlsServer {
    let dir = TempDir::new("certs");
    let certs = certs(&dir);
    let mut args = vec![
        "--target",
        target,
        "--cert",
        &certs.cert,
        "--key",
        &certs.key,
    ];
    args.extend_from_slice(extra);
    let srv = Server::start(&args);
    TlsServer { srv, certs, dir }
}

/// A frame's payload length, from its second byte and the extended length that may follow.
pub fn payload_len(s: &mut impl Read, second: u8) -> usize {
    match second & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    }
}

/// A raw WebSocket client for feeding the server malformed frames: returns the socket after 101.
pub fn raw_ws(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "expected 101, got {head}");
    s
}

/// Read byte by byte up to the end of an HTTP head.
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A masked client frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let mask = [1u8, 2, 3, 4];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Read server frames until a Close; return its code (None if the socket ended first).
pub fn close_code(s: &mut TcpStream) -> Option<u16> {
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).ok()?;
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).ok()?;
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                s.read_exact(&mut l).ok()?;
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).ok()?;
        if h[0] & 0x0f == 8 {
            return p.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        }
    }
}

/// User and system CPU ticks of a process so far (Linux /proc).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Must `cond` become true within PATIENCE?
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + PATIENCE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Context switches of all threads of a process so far (Linux /proc): each wake-up counts one.
pub fn wakeups(pid: u32) -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map_while(Result::ok)
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines().filter(|l| l.contains("ctxt_switches")) {
            n += line
                .split_whitespace()
                .last()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    n
}
