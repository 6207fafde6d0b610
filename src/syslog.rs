//! `--syslog SERVER`: every log line also goes to a syslog daemon, in websockify's format:
//! RFC 5424 (`<PRI>1 2026-11-30T19:48:25Z HOST APP PID - - MESSAGE`) or, with `--legacy-syslog`,
//! the older `<PRI>APP[PID]: MESSAGE`. SERVER is a local socket path (`/dev/log`: a datagram
//! socket, or a stream one with a newline after each line) or UDP `host:port`. The facility is
//! `user`, or `daemon` with `-D`; APP is `wssh` (`websockify` when started as websockify).
//! Sending waits at most `SEND_WAIT`: a stuck syslog daemon loses lines, not the server's time.

use std::io;
#[cfg(unix)]
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

const SEND_WAIT: Duration = Duration::from_millis(200);
/// What websockify (after Python's handler) keeps of the host name and the app name.
const MAX_HOST: usize = 255;
const MAX_APP: usize = 24;

/// Where and how to send: parsed from the command line, opened by `install`.
#[derive(Debug, Clone)]
pub struct Syslog {
    to: Dest,
    legacy: bool,
    /// `daemon` (3) with -D, else `user` (1).
    facility: u8,
    /// The app name; the websockify entry point sets `websockify`.
    pub app: &'static str,
}

#[derive(Debug, Clone)]
enum Dest {
    #[cfg_attr(not(unix), allow(dead_code))]
    Path(PathBuf),
    Udp(SocketAddr),
}

impl Syslog {
    /// SERVER as websockify reads it: with a `:`, a UDP `host:port` (resolved now); otherwise
    /// a socket path (made absolute now, as a daemon changes directory).
    pub fn new(server: &str, legacy: bool, daemon: bool) -> Result<Syslog, String> {
        let to = match server.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("{server}: error parsing syslog port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let addr = (host, port)
                    .to_socket_addrs()
                    .map_err(|e| format!("{server}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{server}: no address"))?;
                Dest::Udp(addr)
            }
            None => Dest::Path(std::path::absolute(server).map_err(|e| format!("{server}: {e}"))?),
        };
        Ok(Syslog {
            to,
            legacy,
            facility: if daemon { 3 } else { 1 },
            app: "wssh",
        })
    }
}

/// The socket lines are sent on.
enum Sink {
    Udp(UdpSocket, SocketAddr),
    #[cfg(unix)]
    Datagram(UnixDatagram),
    #[cfg(unix)]
    Stream(UnixStream),
    /// Not connected (the daemon was away): tried again at the next line.
    None,
}

impl Sink {
    fn open(to: &Dest) -> io::Result<Sink> {
        match to {
            Dest::Udp(addr) => {
                let any: SocketAddr = match addr {
                    SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
                    SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let s = UdpSocket::bind(any)?;
                s.set_write_timeout(Some(SEND_WAIT))?;
                Ok(Sink::Udp(s, *addr))
            }
            #[cfg(unix)]
            Dest::Path(p) => {
                let d = UnixDatagram::unbound()?;
                match d.connect(p) {
                    Ok(()) => {
                        d.set_write_timeout(Some(SEND_WAIT))?;
                        Ok(Sink::Datagram(d))
                    }
                    // A stream socket there (some syslog-ng set-ups).
                    Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        let s = UnixStream::connect(p)?;
                        s.set_write_timeout(Some(SEND_WAIT))?;
                        Ok(Sink::Stream(s))
                    }
                    Err(e) => Err(e),
                }
            }
            #[cfg(not(unix))]
            Dest::Path(_) => Err(io::Error::other("no local syslog socket on this system")),
        }
    }

    fn send(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Udp(s, to) => s.send_to(line, *to).map(drop),
            #[cfg(unix)]
            Sink::Datagram(d) => d.send(line).map(drop),
            #[cfg(unix)]
            Sink::Stream(s) => s.write_all(&[line, b"\n"].concat()),
            Sink::None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// The logger: the stderr logger as before, and the syslog line.
struct Logger {
    stderr: simple_logger::SimpleLogger,
    cfg: Syslog,
    host: String,
    sink: Mutex<Sink>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        self.stderr.enabled(m)
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        self.stderr.log(r);
        let text = r.args().to_string();
        let line = format_line(
            &self.cfg,
            r.level(),
            &self.host,
            std::process::id(),
            SystemTime::now(),
            &text,
        );
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // One reconnection per line: the syslog daemon may have restarted.
        if sink.send(&line).is_err() {
            *sink = Sink::open(&self.cfg.to).unwrap_or(Sink::None);
            let _ = sink.send(&line);
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

/// Log to stderr through `stderr` and to syslog as `cfg` says; fails when SERVER cannot be
/// reached now (a path with no socket, a UDP address that cannot be sent to).
pub fn install(stderr: simple_logger::SimpleLogger, cfg: &Syslog) -> Result<(), String> {
    let sink = Sink::open(&cfg.to).map_err(|e| format!("--syslog: {e}"))?;
    let level = stderr.max_level();
    let logger = Logger {
        stderr,
        cfg: cfg.clone(),
        host: hostname(),
        sink: Mutex::new(sink),
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())?;
    log::set_max_level(level);
    Ok(())
}

/// One syslog line, as websockify's handler writes it: newlines become spaces, and a message
/// that is not ASCII is UTF-8 after a byte order mark (RFC 5424's rule).
fn format_line(
    cfg: &Syslog,
    level: log::Level,
    host: &str,
    pid: u32,
    now: SystemTime,
    text: &str,
) -> Vec<u8> {
    let severity = match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    };
    let pri = cfg.facility * 8 + severity;
    let app: String = cfg.app.chars().take(MAX_APP).collect();
    let head = match cfg.legacy {
        true => format!("<{pri}>{app}[{pid}]: "),
        false => {
            let host: String = host.chars().take(MAX_HOST).collect();
            format!("<{pri}>1 {} {host} {app} {pid} - - ", timestamp(now))
        }
    };
    let text = text.replace('\n', " ");
    let mut line = head.into_bytes();
    if !text.is_ascii() {
        line.extend_from_slice("\u{feff}".as_bytes());
    }
    line.extend_from_slice(text.as_bytes());
    line
}

/// UTC, to the second: `2026-11-30T19:48:25Z`.
fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// This machine's name, or `-` (RFC 5424's nil value) when it has none.
fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most the length given into the buffer.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !name.is_empty() {
                return name;
            }
        }
    }
    "-".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(legacy: bool, daemon: bool) -> Syslog {
        Syslog::new("/dev/log", legacy, daemon).unwrap()
    }

    #[test]
    fn timestamps() {
        let at = |s| timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_067_305), "2026-11-30T19:35:05Z");
    }

    #[test]
    fn lines() {
        let t = SystemTime::UNIX_EPOCH;
        let line = |c, l, text| String::from_utf8(format_line(&c, l, "gw", 42, t, text)).unwrap();
        assert_eq!(
            line(cfg(false, false), log::Level::Info, "listening\non x"),
            "<14>1 1970-01-01T00:00:00Z gw wssh 42 - - listening on x"
        );
        assert_eq!(
            line(cfg(false, true), log::Level::Warn, "w"),
            "<28>1 1970-01-01T00:00:00Z gw wssh 42 - - w"
        );
        assert_eq!(
            line(cfg(true, false), log::Level::Error, "e"),
            "<11>wssh[42]: e"
        );
        assert_eq!(
            line(cfg(true, false), log::Level::Debug, "é"),
            "<15>wssh[42]: \u{feff}é"
        );
    }

    #[test]
    fn servers() {
        assert!(matches!(
            Syslog::new("127.0.0.1:514", false, false).unwrap().to,
            Dest::Udp(_)
        ));
        assert!(Syslog::new("127.0.0.1:x", false, false).is_err());
        assert!(
            matches!(Syslog::new("log", false, false).unwrap().to, Dest::Path(p) if p.is_absolute())
        );
    }
}
