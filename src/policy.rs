//! Pure target policy: which `host:port` a request path may reach. Touches no socket and no file;
//! the server loads the hosts file and hands its text here. With no rule, the path cannot choose.

use crate::url::{join_host_port, split_host_port};
use std::collections::HashMap;
use std::net::IpAddr;

/// Where a tunnel goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&join_host_port(&self.host, self.port))
    }
}

impl Target {
    pub fn parse(s: &str, default_port: u16) -> Result<Target, String> {
        split_host_port(s, default_port).map(|(host, port)| Target { host, port })
    }
}

/// One `--allow` rule: a host glob or a CIDR range, with a port range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    hosts: HostPattern,
    ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Glob(String),
    Cidr(IpAddr, u8),
}

impl Rule {
    /// `GLOB[:PORTS]`, `CIDR[:PORTS]`, `[V6CIDR][:PORTS]`; PORTS is `N`, `N-M` or `*`, default 22.
    pub fn parse(s: &str) -> Result<Rule, String> {
        let (host, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("unclosed [ in {s:?}"))?;
            (h, after.strip_prefix(':').unwrap_or(after))
        } else if s.matches(':').count() > 1 {
            (s, "") // bare IPv6 address or range
        } else {
            s.split_once(':').unwrap_or((s, ""))
        };
        let bad = || format!("bad port range in allow rule {s:?}");
        let ports = match ports {
            "" => (22, 22),
            "*" => (1, 65535),
            p => match p.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let n = p.parse().map_err(|_| bad())?;
                    (n, n)
                }
            },
        };
        if host.is_empty() || ports.0 > ports.1 {
            return Err(format!("bad allow rule {s:?}"));
        }
        let hosts = if let Some((ip, bits)) = host.split_once('/') {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("bad CIDR address in {s:?}"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            match bits.parse::<u8>() {
                Ok(b) if b <= max => HostPattern::Cidr(ip, b),
                _ => return Err(format!("bad CIDR prefix length in {s:?}")),
            }
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 })
        } else {
            HostPattern::Glob(host.to_ascii_lowercase())
        };
        Ok(Rule { hosts, ports })
    }

    /// Is this an address or CIDR rule (not a name glob)?
    pub fn is_cidr(&self) -> bool {
        matches!(self.hosts, HostPattern::Cidr(..))
    }

    fn contains_ip(&self, ip: IpAddr) -> bool {
        matches!(&self.hosts, HostPattern::Cidr(net, bits) if in_cidr(ip, *net, *bits))
    }

    /// Name globs match names as written; CIDR rules match IP literals only, never a name.
    fn allows(&self, t: &Target) -> bool {
        if t.port < self.ports.0 || t.port > self.ports.1 {
            return false;
        }
        match &self.hosts {
            HostPattern::Glob(g) => is_name(&t.host) && glob(g, &t.host.to_ascii_lowercase()),
            HostPattern::Cidr(net, bits) => match t.host.parse::<IpAddr>() {
                Ok(ip) => in_cidr(ip, *net, *bits),
                Err(_) => false,
            },
        }
    }
}

/// Is `host` a name, not an address in any form the resolver reads as one: IPv6 (with or
/// without a zone, `::1%1`) or IPv4 in inet_aton's forms too (`127.1`, `0x7f000001`,
/// `2130706433`): dot-separated numbers, decimal, octal or hex.
fn is_name(host: &str) -> bool {
    let number = |p: &str| match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
    };
    !host.contains([':', '%']) && !host.split('.').all(number)
}

/// `*` matches any run of characters, `?` one; everything else is literal.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let to_u128 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let (ip, ip_len) = to_u128(ip.to_canonical());
    let (net, net_len) = to_u128(net);
    if ip_len != net_len {
        return false;
    }
    let shift = net_len - bits as u32;
    shift >= net_len || ip >> shift == net >> shift
}

/// The real client behind trusted proxies: the right-most address in `X-Forwarded-For` that is
/// not itself a trusted proxy, else `X-Real-IP`. `None` when `peer` is not trusted (the headers
/// are then anyone's words) or they name no address.
pub fn real_client(
    peer: IpAddr,
    xff: Option<&str>,
    real_ip: Option<&str>,
    trusted: &[Rule],
) -> Option<IpAddr> {
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|r| r.contains_ip(ip.to_canonical()));
    if !trusted_ip(peer) {
        return None;
    }
    let parse = |s: &str| {
        let s = s.trim();
        s.parse::<IpAddr>()
            .ok()
            .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    };
    let from_xff = xff.and_then(|v| v.rsplit(',').filter_map(parse).find(|ip| !trusted_ip(*ip)));
    from_xff.or_else(|| real_ip.and_then(parse))
}

/// Parse a hosts file: `NAME HOST:PORT` a line, `#` comments, blank lines ignored.
pub fn parse_hosts(text: &str) -> Result<HashMap<String, Target>, String> {
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(target), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("line {}: expected `NAME HOST:PORT`", n + 1));
        };
        let target = Target::parse(target, 22).map_err(|e| format!("line {}: {e}", n + 1))?;
        map.insert(name.to_string(), target);
    }
    Ok(map)
}

/// Why a path was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// The path named a target no rule allows (HTTP 403).
    NotAllowed(String),
    /// The path names a target but cannot be read (HTTP 400).
    BadPath(String),
}

/// The operator's rules, compiled once at start-up.
#[derive(Debug, Clone)]
pub struct Policy {
    pub fixed: Target,
    pub rules: Vec<Rule>,
}

/// Prefix of paths that name their target, as the original wssh did.
pub const SSH_PREFIX: &str = "/ssh/";

impl Policy {
    /// Route a request path. `/ssh/NAME` names a target; every other path goes to the fixed one.
    /// NAME is looked up in `hosts` first, then must be the fixed target or match an `--allow` rule.
    pub fn route(&self, path: &str, hosts: &HashMap<String, Target>) -> Result<Target, Denied> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let Some(name) = path.strip_prefix(SSH_PREFIX).filter(|n| !n.is_empty()) else {
            return Ok(self.fixed.clone());
        };
        let name = crate::url::percent_decode(name).map_err(Denied::BadPath)?;
        if let Some(t) = hosts.get(&name) {
            return Ok(t.clone());
        }
        let t = Target::parse(&name, 22).map_err(Denied::BadPath)?;
        if t == self.fixed || self.rules.iter().any(|r| r.allows(&t)) {
            Ok(t)
        } else {
            Err(Denied::NotAllowed(t.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rules: &[&str], path: &str, expected: Result<&str, &str>) {
        let policy = Policy {
            fixed: Target::parse("127.0.0.1:22", 22).unwrap(),
            rules: rules.iter().map(|r| Rule::parse(r).unwrap()).collect(),
        };
        let hosts = parse_hosts("db  10.9.9.9:5432\nbox [::1]:2222 # comment\n").unwrap();
        let got = policy.route(path, &hosts).map(|t| t.to_string());
        let got = got.as_ref().map(String::as_str).map_err(|e| match e {
            Denied::NotAllowed(_) => "403",
            Denied::BadPath(_) => "400",
        });
        assert_eq!(got, expected, "rules {rules:?} path {path}");
    }

    #[test]
    fn routes() {
        check(&[], "/", Ok("127.0.0.1:22"));
        check(&[], "/anything?x", Ok("127.0.0.1:22"));
        check(&[], "/ssh/", Ok("127.0.0.1:22"));
        check(&[], "/ssh/127.0.0.1", Ok("127.0.0.1:22"));
        check(&[], "/ssh/127.0.0.1:22", Ok("127.0.0.1:22"));
        check(&[], "/ssh/127.0.0.1:25", Err("403"));
        check(&[], "/ssh/evil.example:22", Err("403"));
        check(&[], "/ssh/db", Ok("10.9.9.9:5432"));
        check(&[], "/ssh/box", Ok("[::1]:2222"));
        check(&["*.corp"], "/ssh/a.corp", Ok("a.corp:22"));
        check(&["*.corp"], "/ssh/A.CORP:22", Ok("A.CORP:22"));
        check(&["*.corp"], "/ssh/a.corp:23", Err("403"));
        check(&["*.corp:*"], "/ssh/a.corp:23", Ok("a.corp:23"));
        check(&["*.corp"], "/ssh/a.corp.evil", Err("403"));
        check(&["*"], "/ssh/10.0.0.1", Err("403")); // globs never match IP literals

        // Found by the fuzz target `route`: "101" passed the glob "*", and the resolver dials
        // it as 0.0.0.101. Nor may any other form it reads as an address pass a glob.
        check(&["*"], "/ssh/101", Err("403"));
        check(&["*"], "/ssh/127.1", Err("403"));
        check(&["*"], "/ssh/0x7f.1", Err("403"));
        check(&["*"], "/ssh/0X7F000001", Err("403"));
        check(&["*"], "/ssh/2130706433", Err("403"));
        check(&["*"], "/ssh/0177.0.0.1", Err("403"));
        check(&["*:*"], "/ssh/[::1%251]:80", Err("403")); // [::1%1]:80, a zone index
        check(&["*"], "/ssh/host1", Ok("host1:22"));
        check(
            &["*"],
            "/ssh/0xbeefcafe.example",
            Ok("0xbeefcafe.example:22"),
        );
        check(&["*"], "/ssh/1.2.3.4.example", Ok("1.2.3.4.example:22"));
        check(
            &["10.0.0.0/8:22-2222"],
            "/ssh/10.1.2.3:2222",
            Ok("10.1.2.3:2222"),
        );
        check(&["10.0.0.0/8"], "/ssh/11.0.0.1", Err("403"));
        check(&["10.0.0.0/8"], "/ssh/ten.example", Err("403")); // CIDR never matches a name
        check(&["[::1]:*"], "/ssh/[::1]:80", Ok("[::1]:80"));
        check(
            &["[fd00::/8]:22"],
            "/ssh/%5Bfd12::5%5D:22",
            Ok("[fd12::5]:22"),
        );
        check(
            &["0.0.0.0/0:*"],
            "/ssh/[::ffff:1.2.3.4]:9",
            Ok("[::ffff:1.2.3.4]:9"),
        );
        check(&[], "/ssh/a b", Err("400"));
        check(&[], "/ssh/h:x", Err("400"));
    }

    #[test]
    fn bad_rules() {
        for r in ["", ":22", "h:0-x", "h:5-4", "1.2.3.4/33", "x/8", "[::1"] {
            assert!(Rule::parse(r).is_err(), "{r} should be refused");
        }
    }

    #[test]
    fn real_client_only_from_trusted_proxies() {
        let trusted = [
            Rule::parse("127.0.0.1:*").unwrap(),
            Rule::parse("10.0.0.0/8:*").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let rc =
            |peer: &str, xff, xri| real_client(ip(peer), xff, xri, &trusted).map(|a| a.to_string());
        assert_eq!(
            rc("127.0.0.1", Some("203.0.113.9"), None).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            rc("127.0.0.1", Some("1.1.1.1, 203.0.113.9, 10.0.0.2"), None).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            rc("127.0.0.1", None, Some("198.51.100.7")).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(rc("127.0.0.1", Some("garbage"), None), None);
        assert_eq!(
            rc("192.0.2.1", Some("203.0.113.9"), None),
            None,
            "untrusted peer's header ignored"
        );
    }

    /// Inputs a client controls (paths, header values, rules) never make the parsers panic.
    #[test]
    fn random_input_never_panics() {
        let alphabet: Vec<char> = "ab1:/[]%.*?-,5é\u{1F600} \r\n".chars().collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let policy = Policy {
            fixed: Target::parse("h", 22).unwrap(),
            rules: vec![],
        };
        let hosts = HashMap::new();
        let trusted = [Rule::parse("127.0.0.1:*").unwrap()];
        for _ in 0..20_000 {
            let len = (x % 24) as usize;
            let s: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = policy.route(&format!("/ssh/{s}"), &hosts);
            let _ = Rule::parse(&s);
            let _ = parse_hosts(&s);
            let _ = real_client("127.0.0.1".parse().unwrap(), Some(&s), Some(&s), &trusted);
            let _ = crate::url::parse(&format!("ws://{s}"));
            let _ =
                crate::ws::parse_request(format!("GET /{s} HTTP/1.1\r\nA: {s}\r\n\r\n").as_bytes());
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*.x.*", "a.x.b"));
        assert!(!glob("*.x", "a.y"));
    }

    #[test]
    fn hosts_file_errors_name_the_line() {
        assert_eq!(
            parse_hosts("a 1.2.3.4:22\nb\n").unwrap_err(),
            "line 2: expected `NAME HOST:PORT`"
        );
        assert!(parse_hosts("a b:x").unwrap_err().starts_with("line 1"));
    }
}
