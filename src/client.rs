//! `wssh client URL`: stdin and stdout to a WebSocket, for SSH's ProxyCommand; and the opening
//! of a tunnel (TCP, optional HTTP proxy, TLS, handshake) that `connect` and `forward` share.
//! A dedicated thread reads stdin; the main thread writes stdout and exits the process when the
//! WebSocket ends, whether or not stdin is still open. Nothing but tunnel bytes goes to stdout.

use crate::cli::{ClientConfig, Dialer};
use crate::error::Error;
use crate::pump::{Incoming, Shared, CHUNK};
use crate::tls::Stream;
use crate::url::WsUrl;
use crate::ws;
use std::io::{self, Read, Write};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Error as WsError;

/// Connect, run the tunnel until the server closes it, and exit with how it ended.
pub fn run(cfg: ClientConfig) -> Result<(), Error> {
    let tunnel = open_tunnel(&cfg.url, &cfg.dialer)?;
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn_scoped(s, || stdin_to_ws(&tunnel))
            .map_err(|e| Error::io("start the stdin thread", e))?;
        let end = ws_to_stdout(&tunnel);
        // The stdin thread may be blocked in read(2) forever: leave without joining it.
        std::process::exit(match end {
            Ok(()) => 0,
            Err(e) => crate::report(&e),
        })
    })
}

/// Open a tunnel to `url`: TCP (through a proxy if one applies), TLS for wss, the handshake.
pub fn open_tunnel(url: &WsUrl, d: &Dialer) -> Result<Shared, Error> {
    if d.insecure {
        log::warn!("--insecure: the server's certificate is NOT verified; anyone on the path can read and change this tunnel");
    }
    let tcp = match d.proxies.for_url(url) {
        Some(p) => {
            log::debug!("through proxy {}", p.authority());
            crate::proxy::connect(p, &url.authority(), d.connect_timeout)?
        }
        None => crate::proxy::dial(&url.authority(), d.connect_timeout)?,
    };
    let setup = |e| Error::io("socket set-up", e);
    tcp.set_read_timeout(Some(d.connect_timeout))
        .map_err(setup)?;
    tcp.set_write_timeout(Some(d.connect_timeout))
        .map_err(setup)?;
    let stream = match &d.tls {
        Some(c) => crate::tls::connect(c, &url.host, tcp)?,
        None => Stream::Plain(tcp),
    };
    // A password given apart from the URL joins its user (cli checked there is one).
    let userinfo = match (&d.password, &url.userinfo) {
        (Some(p), Some(user)) => Some(format!("{user}:{p}")),
        _ => url.userinfo.clone(),
    };
    let with_password = WsUrl {
        userinfo,
        ..url.clone()
    };
    let ws = ws::client_handshake(stream, &with_password, &d.headers)
        .map_err(|e| client_cert_refused(e, url))?;
    log::info!("connected to {}", url.authority());
    Shared::new(ws, d.ping, crate::pump::Encoding::Binary).map_err(setup)
}

/// A TLS 1.3 server refuses a client certificate (or its absence) after the client's side of
/// the TLS handshake: the alert arrives on the first read of the HTTP answer. Say what it means.
fn client_cert_refused(e: Error, url: &WsUrl) -> Error {
    let said = match &e {
        Error::Io { source, .. } if url.tls => {
            crate::tls::client_cert_alert(&url.authority(), &source.to_string())
        }
        _ => None,
    };
    said.map_or(e, Error::Tls)
}

/// Copy stdin into the tunnel, one message per read; at EOF send the empty end-of-data message.
fn stdin_to_ws(tunnel: &Shared) {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("stdin: {e}; treating it as end of data");
                0
            }
        };
        if let Err(e) = tunnel.send_data(&buf[..n]) {
            log::debug!("send: {e}");
            return;
        }
        if n == 0 {
            log::debug!("stdin at EOF: sent end of data");
            return;
        }
    }
}

/// Copy the tunnel to stdout until the server closes; Ok only after a normal close.
fn ws_to_stdout(tunnel: &Shared) -> Result<(), Error> {
    let mut out = stdout();
    loop {
        let msg = match tunnel.recv() {
            Ok(m) => m,
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(Error::io("server", e));
            }
            Err(e) => return Err(e.into()),
        };
        match msg {
            Incoming::Data(b) if b.is_empty() => log::debug!("server sent end of data"),
            Incoming::Data(b) => match out.write_all(&b) {
                Ok(()) => {}
                // Whoever read our stdout is gone (`| head`): that ends the tunnel, normally.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    tunnel.close(CloseCode::Normal, "client output closed");
                    return Ok(());
                }
                Err(e) => return Err(Error::io("write stdout", e)),
            },
            Incoming::Wrong(code, why) => {
                tunnel.close(code, &why);
                return Err(Error::Handshake(format!(
                    "unexpected message from the server: {why}"
                )));
            }
            Incoming::Close(frame) => {
                tunnel.flush_close();
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (f.code.into(), f.reason.to_string())
                });
                log::debug!("server closed with {code} {reason}");
                return match code {
                    1000 | 1005 => Ok(()),
                    _ => Err(Error::Closed { code, reason }),
                };
            }
            Incoming::Ended => return Ok(()),
            Incoming::Flood => {
                tunnel.close(CloseCode::Policy, "too many control frames");
                return Err(Error::Handshake(
                    "server flooded control frames (closed 1008)".into(),
                ));
            }
        }
    }
}

/// stdout with no buffer of its own, so each message is one write(2) and nothing is held back.
#[cfg(unix)]
fn stdout() -> impl Write {
    use std::os::unix::io::FromRawFd;
    struct RawStdout(std::mem::ManuallyDrop<std::fs::File>);
    impl Write for RawStdout {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    // SAFETY: fd 1 is open for the life of the process; ManuallyDrop never closes it.
    RawStdout(std::mem::ManuallyDrop::new(unsafe {
        std::fs::File::from_raw_fd(1)
    }))
}

/// Windows and others: std's stdout, flushed after every message.
#[cfg(not(unix))]
fn stdout() -> impl Write {
    struct Flushing(io::Stdout);
    impl Write for Flushing {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = self.0.write(b)?;
            self.0.flush()?;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }
    Flushing(io::stdout())
}
