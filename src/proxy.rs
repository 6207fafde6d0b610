//! Outgoing TCP: dialling an address directly (targets, servers), or reaching the server through
//! a corporate HTTP proxy: which proxy a URL uses (`--proxy`, the `*_proxy` variables and
//! `no_proxy`, pure) and the CONNECT that opens the tunnel through it. TLS to the server then
//! runs inside that tunnel. It does not read the environment (`cli` does).

use crate::error::Error;
use crate::redact;
use crate::url::{base64, join_host_port, percent_decode, split_host_port, WsUrl};
use crate::ws::{self, HeadError};
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

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

/// Connect to `host:port`, trying every address it resolves to, each with `timeout`.
pub fn dial(addr: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let dial_err = |source| Error::Dial {
        addr: addr.to_string(),
        source,
    };
    let addrs = addr.to_socket_addrs().map_err(dial_err)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "name resolved to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_nodelay(true).map_err(dial_err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(dial_err(last))
}

/// Open a TCP tunnel to `authority` (host:port) through `proxy` with CONNECT.
pub fn connect(proxy: &ProxyUrl, authority: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let mut s = dial(&proxy.authority(), timeout)?;
    let io = |e| Error::io(format!("proxy {}", proxy.authority()), e);
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(a) = &proxy.auth {
        req += &format!("Proxy-Authorization: Basic {}\r\n", base64(a.as_bytes()));
    }
    req += "\r\n";
    log::debug!("proxy {}: {}", proxy.authority(), redact::head(&req));
    s.write_all(req.as_bytes()).map_err(io)?;
    let (head, rest) = match ws::read_head(&mut s) {
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
    match res.code {
        200..=299 if rest.is_empty() => Ok(s),
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
        };
        let url = |s: &str| crate::url::parse(s).unwrap();
        assert_eq!(set.for_url(&url("wss://gw/")).map(|p| p.port), Some(1));
        assert_eq!(set.for_url(&url("ws://gw/")).map(|p| p.port), Some(2));
        assert_eq!(set.for_url(&url("wss://a.internal/")), None);
        let set = Proxies {
            explicit: p("x:3"),
            ..set
        };
        assert_eq!(set.for_url(&url("ws://gw/")).map(|p| p.port), Some(3));
    }
}
