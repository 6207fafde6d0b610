//! Outgoing TCP: dialling an address directly (targets, servers), or reaching the server through
//! a corporate HTTP proxy: which proxy a URL uses (`--proxy`, the `*_proxy` variables and
//! `no_proxy`, pure) and the CONNECT that opens the tunnel through it. TLS to the server then
//! runs inside that tunnel. It does not read the environment (`cli` does).

use crate::error::Error;
use crate::redact;
use crate::url::{base64, join_host_port, percent_decode, split_host_port, WsUrl};
use crate::ws::{self, HeadError};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An HTTP proxy: `http://[user:pass@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    /// `user:pass`, percent-decoded.
    pub auth: Option<String>,
}

impl ProxyUrl {
    /// Parse a proxy URL; messages show it only redacted.
    pub fn parse(s: &str) -> Result<ProxyUrl, String> {
        let shown = || format!("proxy {:?}", redact::url(s));
        let rest = s.strip_prefix("http://").unwrap_or(s);
        if rest.contains("://") {
            return Err(format!("{}: only http:// proxies are supported", shown()));
        }
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => {
                let a =
                    percent_decode(a).map_err(|e| format!("{}: user or password: {e}", shown()))?;
                (Some(a), h)
            }
            None => (None, rest),
        };
        let (host, port) =
            split_host_port(hostport, 8080).map_err(|e| format!("{}: {e}", shown()))?;
        Ok(ProxyUrl { host, port, auth })
    }

    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }
}

/// The proxy settings in force, gathered by `cli` from flags and environment.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    /// `--proxy`: used for every URL (unless `no_proxy` names its host).
    pub explicit: Option<ProxyUrl>,
    /// `https_proxy`/`HTTPS_PROXY`, for wss:// URLs.
    pub https: Option<ProxyUrl>,
    /// `http_proxy`, for ws:// URLs.
    pub http: Option<ProxyUrl>,
    /// `no_proxy`/`NO_PROXY` entries.
    pub no_proxy: Vec<String>,
    /// The variables `https` and `http` came from (`HTTPS_PROXY`...), for `why`.
    pub https_var: &'static str,
    pub http_var: &'static str,
}

impl Proxies {
    /// The proxy to use for this URL, if any.
    pub fn for_url(&self, url: &WsUrl) -> Option<&ProxyUrl> {
        if bypass(&self.no_proxy, &url.host) {
            return None;
        }
        let from_env = if url.tls { &self.https } else { &self.http };
        self.explicit.as_ref().or(from_env.as_ref())
    }
}

impl Proxies {
    /// Which proxy this URL uses and why, in words (the proxy's credentials left out).
    pub fn why(&self, url: &WsUrl) -> String {
        let (from_env, var) = match url.tls {
            true => (&self.https, self.https_var),
            false => (&self.http, self.http_var),
        };
        let (chosen, source) = match (&self.explicit, from_env) {
            (Some(p), _) => (p, "--proxy"),
            (None, Some(p)) => (p, var),
            (None, None) => return "direct: no proxy is set".into(),
        };
        match bypass(&self.no_proxy, &url.host) {
            true => format!(
                "direct: no_proxy covers {} (else {source} would give {})",
                url.host,
                chosen.authority()
            ),
            false => format!("through proxy {} (from {source})", chosen.authority()),
        }
    }
}

/// Does a `no_proxy` list cover `host`? `*` covers all; `example.com` and `.example.com` cover
/// the domain and every name under it; addresses match exactly; `:port` suffixes are ignored.
pub fn bypass(list: &[String], host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.iter().any(|entry| {
        let e = entry.trim().to_ascii_lowercase();
        let e = match split_host_port(&e, 0) {
            Ok((h, _)) => h,
            Err(_) => e,
        };
        let e = e.trim_start_matches("*.").trim_start_matches('.');
        e == "*" || (!e.is_empty() && (host == e || host.ends_with(&format!(".{e}"))))
    })
}

/// Connect to `host:port` within `timeout`: one deadline for the name lookup and every address
/// it gives (see `resolve` and `connect_any`).
pub fn dial(addr: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let deadline = Instant::now() + timeout;
    let dial_err = |source| Error::Dial {
        addr: addr.to_string(),
        source,
    };
    let (host, port) = split_host_port(addr, 0)
        .map_err(|e| dial_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let addrs = resolve(&host, port, deadline).map_err(dial_err)?;
    connect_any(addr, &addrs, deadline)
}

/// Name lookups may hang far beyond any deadline (an unanswered DNS server): at most this many
/// helper threads run at once, abandoned ones included; past it a lookup is refused at once.
const MAX_LOOKUPS: usize = 64;
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// The addresses of `host` (a name, or an address as `IpAddr` writes it) with `port`, by
/// `deadline`. An address needs no lookup. A name is looked up by the system's resolver on a
/// short-lived helper thread, which is abandoned at the deadline (`timed out resolving NAME`)
/// and ends on its own when the resolver gives up.
pub fn resolve(host: &str, port: u16, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = host.to_string();
    lookup(host, deadline, move || {
        (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    })
}

/// Run `find` on a helper thread; wait for its answer until `deadline`.
fn lookup<F>(host: &str, deadline: Instant, find: F) -> io::Result<Vec<SocketAddr>>
where
    F: FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
{
    /// Gives the helper's place back however it ends.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            LOOKUPS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    if LOOKUPS.fetch_add(1, Ordering::SeqCst) >= MAX_LOOKUPS {
        drop(Running);
        let msg = format!("{MAX_LOOKUPS} name lookups already running: {host} not looked up");
        return Err(io::Error::other(msg));
    }
    let running = Running;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let _running = running;
            let _ = tx.send(find());
        })?;
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) if addrs.is_empty() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )),
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out resolving {host}"),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(io::Error::other(format!("looking up {host} failed")))
        }
    }
}

/// Connect to the first of `addrs` that answers, in order, with TCP_NODELAY; each attempt gets
/// what is left until `deadline`. `name` (`host:port`) is what the error names.
pub fn connect_any(
    name: &str,
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<TcpStream, Error> {
    let dial_err = |source| Error::Dial {
        addr: name.to_string(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = io::Error::new(io::ErrorKind::TimedOut, "timed out connecting");
            break;
        }
        match TcpStream::connect_timeout(a, left) {
            Ok(s) => {
                s.set_nodelay(true).map_err(dial_err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(dial_err(last))
}

/// This machine's interface addresses, for `Policy::screen`: read once at start-up, so an
/// address added later is not among them (loopback and link-local ranges are refused anyway).
#[cfg(unix)]
pub fn local_addresses() -> io::Result<Vec<IpAddr>> {
    let mut list = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head that is freed below, once.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned; ifa_addr is null or points to a
        // sockaddr of the family it names.
        unsafe {
            let sa = (*p).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let a = &*(sa as *const libc::sockaddr_in);
                        list.push(IpAddr::from(a.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let a = &*(sa as *const libc::sockaddr_in6);
                        list.push(IpAddr::from(a.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
    }
    // SAFETY: head came from getifaddrs and is not used after this.
    unsafe { libc::freeifaddrs(head) };
    list.sort();
    list.dedup();
    Ok(list)
}

/// Elsewhere the interface addresses are not read: a name that resolves to one of this
/// machine's own non-loopback addresses is not refused for that reason.
#[cfg(not(unix))]
pub fn local_addresses() -> io::Result<Vec<IpAddr>> {
    Ok(Vec::new())
}

/// Open a TCP tunnel to `authority` (host:port) through `proxy` with CONNECT.
pub fn connect(proxy: &ProxyUrl, authority: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let mut s = dial(&proxy.authority(), timeout)?;
    let io = |e| Error::io(format!("proxy {}", proxy.authority()), e);
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let (res, rest) = ask(&mut s, proxy, authority)?;
    judge(proxy, authority, &res, &rest)?;
    Ok(s)
}

/// Send CONNECT `authority` (with the proxy's credentials) on a connected socket and read
/// the proxy's answer, whatever its status: the parsed head and the bytes after it.
pub fn ask(
    s: &mut TcpStream,
    proxy: &ProxyUrl,
    authority: &str,
) -> Result<(ws::Response, Vec<u8>), Error> {
    let io = |e| Error::io(format!("proxy {}", proxy.authority()), e);
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(a) = &proxy.auth {
        req += &format!("Proxy-Authorization: Basic {}\r\n", base64(a.as_bytes()));
    }
    req += "\r\n";
    log::debug!("proxy {}: {}", proxy.authority(), redact::head(&req));
    s.write_all(req.as_bytes()).map_err(io)?;
    let (head, rest) = match ws::read_head(s) {
        Ok(x) => x,
        Err(HeadError::TooLarge) => {
            return Err(Error::Handshake(format!(
                "proxy {}: answer too large",
                proxy.authority()
            )))
        }
        Err(HeadError::Empty) => {
            return Err(Error::Handshake(format!(
                "proxy {} closed without an answer",
                proxy.authority()
            )))
        }
        Err(HeadError::Io(e)) => return Err(io(e)),
    };
    let res = ws::parse_response(&head)
        .map_err(|e| Error::Handshake(format!("proxy {}: {e}", proxy.authority())))?;
    Ok((res, rest))
}

/// Did the proxy open the tunnel? If not, why, in words that say what to do.
pub fn judge(
    proxy: &ProxyUrl,
    authority: &str,
    res: &ws::Response,
    rest: &[u8],
) -> Result<(), Error> {
    match res.code {
        200..=299 if rest.is_empty() => Ok(()),
        200..=299 => Err(Error::Handshake(format!(
            "proxy {} sent data before the tunnel was used",
            proxy.authority()
        ))),
        // 407 is the standard answer; some proxies (tinyproxy) answer CONNECT with 401.
        code @ (401 | 407) => {
            let what = if proxy.auth.is_some() {
                "rejected the credentials"
            } else {
                "needs credentials"
            };
            let p = proxy.authority();
            let msg = format!(
                "proxy {p} {what} ({code} {}): give them as --proxy http://USER:PASS@{p}",
                res.reason
            );
            Err(Error::Refused { code: 407, msg })
        }
        code => Err(Error::Refused {
            code,
            msg: format!(
                "proxy {} answered {code} {} to CONNECT {authority}",
                proxy.authority(),
                res.reason
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(no_proxy: &str, host: &str, expected: bool) {
        let list: Vec<String> = no_proxy.split(',').map(String::from).collect();
        assert_eq!(
            bypass(&list, host),
            expected,
            "no_proxy={no_proxy} host={host}"
        );
    }

    #[test]
    fn no_proxy_rules() {
        check("*", "anything", true);
        check("example.com", "example.com", true);
        check("example.com", "gw.example.com", true);
        check(".example.com", "gw.example.com", true);
        check("*.example.com", "gw.example.com", true);
        check("example.com", "badexample.com", false);
        check("localhost,127.0.0.1", "127.0.0.1", true);
        check("127.0.0.1:4567", "127.0.0.1", true);
        check("::1,[::2]", "::2", true);
        check("", "gw", false);
        check("10.0.0.1", "10.0.0.10", false);
    }

    /// A lookup that hangs is abandoned at the deadline, and hung ones are bounded in number.
    /// (One test: both use the process-wide count of running lookups.)
    #[test]
    fn lookups_end_at_the_deadline_and_are_bounded() {
        let t = Instant::now();
        let deadline = t + Duration::from_millis(300);
        let (answer, wait) = mpsc::channel::<()>();
        let slow = move || {
            let _ = wait.recv_timeout(Duration::from_secs(5));
            Ok(vec![])
        };
        let e = lookup("slow.example", deadline, slow).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(e.to_string(), "timed out resolving slow.example");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        drop(answer);

        let (release, held) = mpsc::channel::<()>();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        let mut refused = None;
        for _ in 0..=MAX_LOOKUPS {
            let held = held.clone();
            let hang = move || {
                let _ = held.lock().map(|h| h.recv());
                Ok(vec![])
            };
            if let Err(e) = lookup("hung.example", Instant::now(), hang) {
                if e.kind() != io::ErrorKind::TimedOut {
                    refused = Some(e.to_string());
                    break;
                }
            }
        }
        assert_eq!(
            refused.as_deref(),
            Some("64 name lookups already running: hung.example not looked up")
        );
        drop(release);
        let end = Instant::now() + Duration::from_secs(10);
        while LOOKUPS.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let ok = || Ok(vec![SocketAddr::from(([127, 0, 0, 1], 1))]);
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(lookup("x", deadline, ok).unwrap().len(), 1);
    }

    /// `--connect-timeout` is one deadline for every address a name gives, not one each.
    #[cfg(target_os = "linux")]
    #[test]
    fn all_addresses_share_one_deadline() {
        use std::os::fd::AsRawFd;
        // A listener whose accept queue is full drops new SYNs: a connect there just waits.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: listen(2) on a socket this test owns.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let a = l.local_addr().unwrap();
        let _filler = TcpStream::connect(a).unwrap();
        let t = Instant::now();
        let deadline = t + Duration::from_millis(500);
        let e = connect_any("stuck:1", &[a, a, a, a], deadline).unwrap_err();
        let took = t.elapsed();
        assert!(e.to_string().starts_with("connect stuck:1: "), "{e}");
        assert!(took < Duration::from_millis(1200), "took {took:?}");
        let t = Instant::now();
        assert!(dial(&a.to_string(), Duration::from_millis(500)).is_err());
        assert!(t.elapsed() < Duration::from_millis(1200));
        let e = dial(&a.to_string(), Duration::ZERO).unwrap_err();
        assert!(e.to_string().ends_with("timed out connecting"), "{e}");
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyUrl::parse("http://u%40x:p@proxy:3128/").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.auth.as_deref()),
            ("proxy", 3128, Some("u@x:p"))
        );
        assert_eq!(ProxyUrl::parse("proxy").unwrap().port, 8080);
        assert!(ProxyUrl::parse("socks5://proxy:1080").is_err());
        for bad in [
            "socks5://me:s3cret@proxy:1080",
            "http://me:s3cret@proxy:x",
            "http://me:s3cret%@proxy:1",
        ] {
            let e = ProxyUrl::parse(bad).unwrap_err();
            assert!(!e.contains("s3cret") && e.contains("proxy"), "{bad}: {e}");
        }
    }

    #[test]
    fn choice_by_scheme_and_bypass() {
        let p = |s: &str| Some(ProxyUrl::parse(s).unwrap());
        let set = Proxies {
            explicit: None,
            https: p("s:1"),
            http: p("h:2"),
            no_proxy: vec!["internal".into()],
            https_var: "HTTPS_PROXY",
            http_var: "http_proxy",
        };
        let url = |s: &str| crate::url::parse(s).unwrap();
        assert_eq!(set.for_url(&url("wss://gw/")).map(|p| p.port), Some(1));
        assert_eq!(set.for_url(&url("ws://gw/")).map(|p| p.port), Some(2));
        assert_eq!(set.for_url(&url("wss://a.internal/")), None);
        assert_eq!(
            set.why(&url("wss://gw/")),
            "through proxy s:1 (from HTTPS_PROXY)"
        );
        assert_eq!(
            set.why(&url("ws://a.internal/")),
            "direct: no_proxy covers a.internal (else http_proxy would give h:2)"
        );
        assert_eq!(
            Proxies::default().why(&url("ws://gw/")),
            "direct: no proxy is set"
        );
        let set = Proxies {
            explicit: p("x:3"),
            ..set
        };
        assert_eq!(set.for_url(&url("ws://gw/")).map(|p| p.port), Some(3));
        assert_eq!(
            set.why(&url("ws://gw/")),
            "through proxy x:3 (from --proxy)"
        );
    }
}
