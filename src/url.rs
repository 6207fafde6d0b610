//! Pure parsing of `ws://` and `wss://` URLs, Basic credentials and the base64 they are sent in
//! (and that the `base64` subprotocol carries).
//! No sockets and no DNS here: a `WsUrl` only says where to connect and what to ask for.
//! Messages quote a URL only through `redact::url`.

use crate::redact;

/// A parsed WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    pub tls: bool,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub path: String,
    /// `user:pass` from the URL, percent-decoded, for Basic auth.
    pub userinfo: Option<String>,
}

impl WsUrl {
    /// `host:port` as it is dialled and logged (IPv6 in brackets).
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The `Host` header value: the port is left out when it is the scheme's default.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        match (self.port == default, self.host.contains(':')) {
            (true, true) => format!("[{}]", self.host),
            (true, false) => self.host.clone(),
            (false, _) => self.authority(),
        }
    }
}

/// `host:port`, with brackets around an IPv6 host.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Split `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address is taken whole.
pub fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad_port = |p: &str| format!("bad port {p:?} in {s:?}");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {s:?}"))?;
        let port = match after {
            "" => default_port,
            _ => {
                let p = after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("junk after ] in {s:?}"))?;
                p.parse().map_err(|_| bad_port(p))?
            }
        };
        return check_host(host, s).map(|h| (h, port));
    }
    match s.matches(':').count() {
        0 => check_host(s, s).map(|h| (h, default_port)),
        1 => {
            let (host, p) = s.split_once(':').unwrap_or((s, ""));
            let port = p.parse().map_err(|_| bad_port(p))?;
            check_host(host, s).map(|h| (h, port))
        }
        _ => match s.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok((s.to_string(), default_port)),
            Err(_) => Err(format!("bad address {s:?} (write IPv6 as [addr]:port)")),
        },
    }
}

fn check_host(host: &str, whole: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-._:%".contains(c);
    if host.is_empty() || !host.chars().all(ok) {
        return Err(format!("bad host in {whole:?}"));
    }
    Ok(host.to_string())
}

/// Parse `ws://[user:pass@]host[:port][/path]` or the same with `wss://`.
pub fn parse(s: &str) -> Result<WsUrl, String> {
    // Messages quote the URL only redacted, and only when it has a scheme: a bare word here may
    // be a secret that slipped out of its option (`-H X-Token: SECRET` without quotes).
    let shown = || format!("{:?}", redact::url(s));
    let (tls, rest) = if let Some(r) = s.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("ws://") {
        (false, r)
    } else if s.contains("://") {
        return Err(format!("{} is not a ws:// or wss:// URL", shown()));
    } else {
        return Err("the URL must start with ws:// or wss://".into());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    // An @ after the host is a password holding a / or a path holding an @: ambiguous either
    // way (and read differently once a port is written out), so refused.
    if path.split(['?', '#']).next().unwrap_or("").contains('@') {
        return Err(format!(
            "{}: an @ after the host; write / as %2F in a password, @ as %40 in a path",
            shown()
        ));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => {
            let u = percent_decode(u).map_err(|e| format!("{}: user or password: {e}", shown()))?;
            (Some(u), h)
        }
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport, if tls { 443 } else { 80 })
        .map_err(|e| format!("{}: {e}", shown()))?;
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "{}: spaces or control characters in the path",
            shown()
        ));
    }
    Ok(WsUrl {
        tls,
        host,
        port,
        path,
        userinfo,
    })
}

/// Fill a connect URL template for one request. A `%` in the host (an IPv6 zone) goes in
/// as `%25`: the server percent-decodes the path.
pub fn expand(template: &str, host: &str, port: u16) -> String {
    let host = host.replace('%', "%25");
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    if template.contains("{host}") || template.contains("{port}") {
        template
            .replace("{host}", &host)
            .replace("{port}", &port.to_string())
    } else if template.ends_with("/ssh/") {
        format!("{template}{host}:{port}")
    } else {
        template.to_string()
    }
}

/// Decode `%XX` escapes (credentials in URLs, names in paths). Errors do not quote the input,
/// which may be a password: the caller says what it was.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let bad = || "bad % escape".to_string();
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once % escapes are decoded".to_string())
}

/// Standard base64 with padding (RFC 4648), for Basic auth.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decode standard base64 (RFC 4648, section 4), strictly: the 64-letter alphabet with `+` and
/// `/`, padded with `=` to a multiple of 4 letters, `=` only as the last one or two letters,
/// and the bits left over after the last byte all zero (the one spelling an encoder makes).
/// No white space or line breaks, no URL-safe alphabet. Errors say what is wrong, never quote
/// the input.
pub fn base64_decode(s: &[u8]) -> Result<Vec<u8>, &'static str> {
    if s.len() % 4 != 0 {
        return Err("length is not a multiple of 4");
    }
    let pad = match s {
        [.., b'=', b'='] => 2,
        [.., b'='] => 1,
        _ => 0,
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, quad) in s.chunks_exact(4).enumerate() {
        let last = (i + 1) * 4 == s.len();
        let letters = if last { 4 - pad } else { 4 };
        let mut n = 0u32;
        for (j, &c) in quad.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if j >= letters => 0,
                b'=' => return Err("padding before the end"),
                _ => return Err("a character outside the base64 alphabet"),
            };
            n = n << 6 | v as u32;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = letters * 6 / 8;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return Err("bits set after the last byte");
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(bool, &str, u16, &str, Option<&str>), ()>) {
        let got = parse(input).map(|u| {
            (
                u.tls,
                u.host.clone(),
                u.port,
                u.path.clone(),
                u.userinfo.clone(),
            )
        });
        match expected {
            Ok((tls, host, port, path, user)) => assert_eq!(
                got,
                Ok((tls, host.into(), port, path.into(), user.map(String::from))),
                "{input}"
            ),
            Err(()) => assert!(got.is_err(), "{input} should fail, got {got:?}"),
        }
    }

    #[test]
    fn urls() {
        check("ws://gw", Ok((false, "gw", 80, "/", None)));
        check(
            "wss://gw.example.com/ssh/h:22",
            Ok((true, "gw.example.com", 443, "/ssh/h:22", None)),
        );
        check(
            "ws://127.0.0.1:4567/x?y=1",
            Ok((false, "127.0.0.1", 4567, "/x?y=1", None)),
        );
        check("ws://[::1]:9/", Ok((false, "::1", 9, "/", None)));
        check("wss://[::1]", Ok((true, "::1", 443, "/", None)));
        check(
            "ws://a%40b:p%3Aw@gw:1/",
            Ok((false, "gw", 1, "/", Some("a@b:p:w"))),
        );
        check("ws://gw?t=1", Ok((false, "gw", 80, "/?t=1", None)));
        check("http://gw/", Err(()));
        check("ws://gw:99999/", Err(()));
        check("ws:///", Err(()));
        check("ws://g w/", Err(()));
        check("ws://gw/a b", Err(()));
        check("ws://[::1/", Err(()));
        check("ws://me:se/cret@gw/", Err(()));
        check("ws://gw:1/ssh/a@b", Err(()));
        // Found by the fuzz target `url`: accepted here, it read differently once the port was
        // written out (ws://gw:80/ssh/a@b). Every @ after the host is refused alike.
        check("ws://gw/ssh/a@b", Err(()));
    }

    #[test]
    fn errors_show_no_password_nor_query() {
        for bad in [
            "http://me:s3cret@gw/?token=t0ken",
            "ws://me:s3cret@gw:x/?token=t0ken",
            "ws://me:s3cret%zz@gw/",
            "ws://me:s3cret@gw/a b?token=t0ken",
            "ws://me:s3/cret@gw/",
            "me:s3cret@gw",
            "s3cret",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("s3") && !e.contains("t0ken"), "{bad}: {e}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("h", 22), Ok(("h".into(), 22)));
        assert_eq!(split_host_port("h:2222", 22), Ok(("h".into(), 2222)));
        assert_eq!(split_host_port("::1", 22), Ok(("::1".into(), 22)));
        assert_eq!(split_host_port("[::1]:80", 22), Ok(("::1".into(), 80)));
        assert!(split_host_port("h:x", 22).is_err());
        assert!(split_host_port("a:b:c", 22).is_err());
        assert_eq!(join_host_port("::1", 22), "[::1]:22");
    }

    #[test]
    fn connect_templates() {
        assert_eq!(
            expand("wss://gw/ssh/{host}:{port}", "db1", 22),
            "wss://gw/ssh/db1:22"
        );
        assert_eq!(
            expand("wss://gw/ssh/", "db1", 2222),
            "wss://gw/ssh/db1:2222"
        );
        assert_eq!(expand("wss://gw/ssh/", "::1", 22), "wss://gw/ssh/[::1]:22");
        assert_eq!(expand("wss://gw/fixed", "db1", 22), "wss://gw/fixed");
        // Found by the fuzz target `connect`: `CONNECT %b1:22` went out as /ssh/%b1:22, which
        // the server decodes to something else (here: not UTF-8, 400).
        assert_eq!(expand("wss://gw/ssh/", "%b1", 22), "wss://gw/ssh/%25b1:22");
        assert_eq!(
            expand("wss://gw/ssh/{host}:{port}", "fe80::1%2", 22),
            "wss://gw/ssh/[fe80::1%252]:22"
        );
        assert_eq!(
            percent_decode("[fe80::1%252]:22").unwrap(),
            "[fe80::1%2]:22"
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
            assert_eq!(base64_decode(o.as_bytes()).unwrap(), i.as_bytes());
        }
    }

    fn check_decode(input: &str, expected: Result<&[u8], &str>) {
        let got = base64_decode(input.as_bytes());
        assert_eq!(got.as_deref().map_err(|e| *e), expected, "{input:?}");
    }

    #[test]
    fn base64_decoding_is_strict() {
        check_decode("", Ok(b""));
        check_decode("AA==", Ok(&[0]));
        check_decode("/w==", Ok(&[0xff]));
        check_decode("+/+/", Ok(&[0xfb, 0xff, 0xbf]));
        check_decode("AAECA/79/w==", Ok(&[0, 1, 2, 3, 0xfe, 0xfd, 0xff]));
        // Length and padding.
        check_decode("Zg", Err("length is not a multiple of 4"));
        check_decode("Zm9vY", Err("length is not a multiple of 4"));
        check_decode("Z===", Err("padding before the end"));
        check_decode("====", Err("padding before the end"));
        check_decode("Zg==Zg==", Err("padding before the end"));
        check_decode("Zm=v", Err("padding before the end"));
        // Only the spelling an encoder makes: no bits after the last byte.
        check_decode("Zh==", Err("bits set after the last byte"));
        check_decode("Zm9=", Err("bits set after the last byte"));
        // No white space, line breaks, URL-safe letters or anything else.
        check_decode("Zm9v\r\nYmFy", Err("length is not a multiple of 4"));
        check_decode("Zm9v YmE", Err("a character outside the base64 alphabet"));
        check_decode("Zm9vYmF\n", Err("a character outside the base64 alphabet"));
        check_decode("-_-_", Err("a character outside the base64 alphabet"));
        check_decode("Zm9\0", Err("a character outside the base64 alphabet"));
        check_decode("Zm9é", Err("length is not a multiple of 4"));
        // Every byte value, every length remainder, both ways.
        let all: Vec<u8> = (0..=255).collect();
        for n in 0..all.len() {
            assert_eq!(
                base64_decode(base64(&all[..n]).as_bytes()).unwrap(),
                &all[..n]
            );
        }
    }

    #[test]
    fn host_header_drops_default_port() {
        assert_eq!(parse("wss://gw/").unwrap().host_header(), "gw");
        assert_eq!(parse("ws://gw:8080/").unwrap().host_header(), "gw:8080");
        assert_eq!(parse("ws://[::1]/").unwrap().host_header(), "[::1]");
    }
}
