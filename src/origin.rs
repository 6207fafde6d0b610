//! Pure: may a browser's `Origin` open a tunnel? Only if `--origin` lists it (or is `*`); or,
//! when the server serves its own pages (`--web`), if it is the request's own origin (scheme,
//! host and port) under a host that is surely this server's: an IP address, `localhost` or a
//! `--server-name`. Any other name could be DNS rebinding: a page on evil.example whose name
//! now points at this server would be "same origin" too. Requests without `Origin` are not
//! browsers' and are not its business.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What a request says about where it was sent and from where.
#[derive(Debug, Clone, Default)]
pub struct Seen<'a> {
    pub origin: &'a str,
    pub host: Option<&'a str>,
    /// `X-Forwarded-Host` and `X-Forwarded-Proto`: the caller passes them only when the peer
    /// is a `--trusted-proxy`.
    pub forwarded_host: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    /// The connection to us is TLS.
    pub tls: bool,
}

/// The server's side of the rule.
#[derive(Debug, Clone, Default)]
pub struct Rule<'a> {
    /// `--origin` values, lowercase, without a trailing `/`; `*` allows any.
    pub listed: &'a [String],
    /// `--web` is on: a page's own origin may pass.
    pub web: bool,
    /// `--server-name` values, lowercase.
    pub names: &'a [String],
}

/// Allowed, or why not (for the log).
pub fn allowed(seen: &Seen, rule: &Rule) -> Result<(), String> {
    let origin = seen
        .origin
        .trim()
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if rule.listed.iter().any(|a| a == "*" || *a == origin) {
        return Ok(());
    }
    let refused = format!("origin {} not allowed (see --origin)", seen.origin);
    if !rule.web {
        return Err(refused);
    }
    fn first(v: &str) -> &str {
        v.split(',').next().unwrap_or("").trim()
    }
    let https = match seen.forwarded_proto.map(|p| first(p).to_ascii_lowercase()) {
        Some(p) if p == "https" || p == "wss" => true,
        Some(p) if p == "http" || p == "ws" => false,
        _ => seen.tls,
    };
    let host = seen.forwarded_host.or(seen.host).map(first).unwrap_or("");
    let (Some(own), Some(theirs)) = (authority(host, https), parse_origin(&origin)) else {
        return Err(refused);
    };
    if own != theirs {
        return Err(refused);
    }
    if !ours(&own.0, rule.names) {
        return Err(format!(
            "origin {} is the request's own, but its host is not an IP address, localhost or \
             a --server-name",
            seen.origin
        ));
    }
    Ok(())
}

/// (host, port, https): what two origins must share.
type Authority = (String, u16, bool);

/// `host[:port]` as sent in `Host`, with the scheme's default port filled in.
fn authority(s: &str, https: bool) -> Option<Authority> {
    let s = s.to_ascii_lowercase();
    let (host, port) = match s.rfind(':') {
        // `[::1]:80`, `a:80`; a bare IPv6 literal has more colons and no brackets: refused.
        Some(i) if !s[i..].contains(']') => (&s[..i], Some(s[i + 1..].parse::<u16>().ok()?)),
        _ => (s.as_str(), None),
    };
    if host.is_empty() || host.contains([':', '/', '@']) && !host.starts_with('[') {
        return None;
    }
    let port = port.unwrap_or(if https { 443 } else { 80 });
    Some((host.trim_end_matches('.').to_string(), port, https))
}

/// `scheme://host[:port]` (lowercase already); `null` and other schemes are no origin of ours.
fn parse_origin(o: &str) -> Option<Authority> {
    let (scheme, rest) = o.split_once("://")?;
    let https = match scheme {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    authority(rest, https)
}

/// Is this host surely this server: an IP literal, `localhost`, or a `--server-name`?
fn ours(host: &str, names: &[String]) -> bool {
    let v6 = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok());
    v6 || host.parse::<Ipv4Addr>().is_ok()
        || host == "localhost"
        || names.iter().any(|n| n.trim_end_matches('.') == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seen` as `origin | host | x-forwarded-host | x-forwarded-proto | tls` (`-`: none).
    fn check(seen: &str, rule: &Rule, expected: bool) {
        let f: Vec<&str> = seen.split(" | ").collect();
        let s = Seen {
            origin: f[0],
            host: (f[1] != "-").then_some(f[1]),
            forwarded_host: (f[2] != "-").then_some(f[2]),
            forwarded_proto: (f[3] != "-").then_some(f[3]),
            tls: f[4] == "tls",
        };
        let got = allowed(&s, rule);
        assert_eq!(got.is_ok(), expected, "{seen}: {got:?}");
    }

    #[test]
    fn origins() {
        let names = vec!["vnc.example.com".to_string()];
        let listed = vec!["https://app.example".to_string()];
        let web = Rule {
            listed: &listed,
            web: true,
            names: &names,
        };
        let native = Rule {
            web: false,
            ..web.clone()
        };
        let any = vec!["*".to_string()];
        let star = Rule {
            listed: &any,
            ..Rule::default()
        };
        for (seen, with_web, without) in [
            // --origin lists it: with or without --web.
            ("https://app.example | gw | - | - | plain", true, true),
            ("HTTPS://APP.EXAMPLE/ | gw | - | - | plain", true, true),
            // The page's own origin, for IP literals, localhost and --server-name hosts.
            ("http://127.0.0.1:6080 | 127.0.0.1:6080 | - | - | plain", true, false),
            ("http://localhost:6080 | localhost:6080 | - | - | plain", true, false),
            ("http://[::1]:6080 | [::1]:6080 | - | - | plain", true, false),
            ("http://192.0.2.7 | 192.0.2.7:80 | - | - | plain", true, false),
            ("https://vnc.example.com | vnc.example.com | - | - | tls", true, false),
            ("https://vnc.example.com | VNC.example.com:443 | - | - | tls", true, false),
            ("https://vnc.example.com | vnc.example.com. | - | - | tls", true, false),
            // DNS rebinding: same origin, but a host that is not surely ours.
            ("http://evil.example:6080 | evil.example:6080 | - | - | plain", false, false),
            ("http://127.0.0.1.nip.io | 127.0.0.1.nip.io | - | - | plain", false, false),
            ("http://localhost.evil.example | localhost.evil.example | - | - | plain", false, false),
            // Another origin, another port, another scheme.
            ("http://evil.example | 127.0.0.1:6080 | - | - | plain", false, false),
            ("http://127.0.0.1:8000 | 127.0.0.1:6080 | - | - | plain", false, false),
            ("https://127.0.0.1:6080 | 127.0.0.1:6080 | - | - | plain", false, false),
            ("http://127.0.0.1:6080 | 127.0.0.1:6080 | - | - | tls", false, false),
            ("null | 127.0.0.1 | - | - | plain", false, false),
            ("file:// | 127.0.0.1 | - | - | plain", false, false),
            ("http://127.0.0.1 | - | - | - | plain", false, false),
            ("http://127.0.0.1@evil | 127.0.0.1 | - | - | plain", false, false),
            // Behind a trusted proxy: its headers give the host and the scheme.
            ("https://vnc.example.com | 127.0.0.1:6080 | vnc.example.com | https | plain", true, false),
            ("https://vnc.example.com | vnc.example.com | - | https | plain", true, false),
            ("https://vnc.example.com | vnc.example.com | - | wss | plain", true, false),
            ("https://vnc.example.com | vnc.example.com | vnc.example.com, x | HTTPS, http | plain", true, false),
            ("http://vnc.example.com | vnc.example.com | - | https | plain", false, false),
            ("https://evil.example | 127.0.0.1 | evil.example | https | plain", false, false),
        ] {
            check(seen, &web, with_web);
            check(seen, &native, without);
            check(seen, &star, true);
        }
    }
}
