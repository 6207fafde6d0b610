//! Pure target policy: which `host:port` a request path may reach. Touches no socket and no file;
//! the server loads the hosts file and hands its text here. With no rule, the path cannot choose.
//! Host strings are read as the system's resolver reads them (`classify`), so that a name rule
//! never lets an address through.

use crate::url::{join_host_port, split_host_port};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

/// A host string as the system reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address, by value (a scope id is dropped).
    Addr(IpAddr),
    /// A DNS name, in lower case, without its trailing dot.
    Name(String),
}

/// Tell an address from a name the way the system does, so that no name rule can let an address
/// through. An address is anything glibc's `inet_aton` takes (1 to 4 parts, each decimal, octal
/// with a leading 0 or hex with 0x; the last part fills the remaining bytes: `127.1`,
/// `2130706433`, `0x7f.1`, `0`), IPv6 as `inet_pton` takes it with an optional `%scope`
/// (`::1%1`, `fe80::1%lo`), and each of those with one trailing dot (`127.0.0.1.`). A name is
/// dot-separated labels of letters, digits, `-` and `_`, with one optional trailing dot. What is
/// neither is refused, including a name whose last label is a number (`1.2.3.08`, `0x`),
/// as the WHATWG URL standard does.
pub fn classify(host: &str) -> Result<Host, String> {
    let bare = host.strip_suffix('.').unwrap_or(host);
    if let Some(v4) = inet_aton(bare) {
        return Ok(Host::Addr(IpAddr::V4(v4)));
    }
    if bare.contains(':') {
        let v6 = bare.split_once('%').map_or(bare, |(a, _scope)| a);
        return match v6.parse::<Ipv6Addr>() {
            Ok(a) => Ok(Host::Addr(IpAddr::V6(a))),
            Err(_) => Err(format!("bad address {host:?}")),
        };
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let last = bare.rsplit('.').next().unwrap_or(bare);
    let hex = |l: &str| {
        l.strip_prefix("0x")
            .or_else(|| l.strip_prefix("0X"))
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let number = last.chars().all(|c| c.is_ascii_digit()) || hex(last);
    if !bare.split('.').all(label_ok) || number {
        return Err(format!("{host:?} is neither a host name nor an address"));
    }
    Ok(Host::Name(bare.to_ascii_lowercase()))
}

/// glibc's `inet_aton` (without its tolerance for trailing white space): 1 to 4 parts separated
/// by dots; every part but the last is a byte, the last fills the bytes that are left.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts = s.split('.').map(aton_part).collect::<Option<Vec<u32>>>()?;
    let (&last, bytes) = parts.split_last()?;
    if bytes.len() > 3 || bytes.iter().any(|&b| b > 0xff) {
        return None;
    }
    let last_bits = 32 - 8 * bytes.len() as u32;
    if last_bits < 32 && last >> last_bits != 0 {
        return None;
    }
    let high = bytes
        .iter()
        .enumerate()
        .fold(0u32, |v, (i, &b)| v | b << (24 - 8 * i));
    Some(Ipv4Addr::from(high | last))
}

/// One part of an `inet_aton` address, as C's `strtoul(s, _, 0)` reads a whole string: `0x` then
/// hex digits, `0` then octal digits, or decimal; at most 32 bits.
fn aton_part(s: &str) -> Option<u32> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None if s.len() > 1 && s.starts_with('0') => (&s[1..], 8),
        None => (s, 10),
    };
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0u32, |v, c| {
        v.checked_mul(radix)?.checked_add(c.to_digit(radix)?)
    })
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
        } else if let Ok(Host::Addr(ip)) = classify(host) {
            HostPattern::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 })
        } else {
            let g = host.strip_suffix('.').unwrap_or(host);
            HostPattern::Glob(g.to_ascii_lowercase())
        };
        Ok(Rule { hosts, ports })
    }

    /// An address or CIDR range with every port, as `--trusted-proxy` takes it: `10.0.0.1`,
    /// `10.0.0.0/8`, and IPv6 bare or in brackets (`::1`, `[::1]`, `fd00::/8`, `[fd00::/8]`).
    pub fn parse_range(s: &str) -> Result<Rule, String> {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        match Rule::parse(&format!("[{bare}]:*")) {
            Ok(r) if r.is_cidr() => Ok(r),
            _ => Err(format!("{s:?}: expected an IP address or CIDR range")),
        }
    }

    /// Is this an address or CIDR rule (not a name glob)?
    pub fn is_cidr(&self) -> bool {
        matches!(self.hosts, HostPattern::Cidr(..))
    }

    /// Does this CIDR rule contain `ip` (never true for a name glob)?
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        matches!(&self.hosts, HostPattern::Cidr(net, bits) if in_cidr(ip, *net, *bits))
    }

    /// Name globs match names only; CIDR rules match addresses only, by value.
    fn allows(&self, host: &Host, port: u16) -> bool {
        if port < self.ports.0 || port > self.ports.1 {
            return false;
        }
        match (&self.hosts, host) {
            (HostPattern::Glob(g), Host::Name(n)) => glob(g, n),
            (HostPattern::Cidr(net, bits), Host::Addr(ip)) => in_cidr(*ip, *net, *bits),
            _ => false,
        }
    }
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
        let target = Target::parse(target, 22)
            .and_then(|t| classify(&t.host).map(|_| t))
            .map_err(|e| format!("line {}: {e}", n + 1))?;
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

/// Where a routed request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The operator's own choice, dialled as written: the fixed target, a hosts-file entry
    /// written as an address, or an address a CIDR rule allows.
    Direct(Target),
    /// A name a glob or the hosts file allows: it is resolved, and only the addresses
    /// `Policy::screen` passes may be dialled.
    Screened(Target),
}

impl Route {
    pub fn target(&self) -> &Target {
        match self {
            Route::Direct(t) | Route::Screened(t) => t,
        }
    }
}

impl Policy {
    /// Route a request path. `/ssh/NAME` names a target; every other path goes to the fixed one.
    /// NAME is looked up in `hosts` first, then must be the fixed target or match an `--allow` rule.
    pub fn route(&self, path: &str, hosts: &HashMap<String, Target>) -> Result<Route, Denied> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let Some(name) = path.strip_prefix(SSH_PREFIX).filter(|n| !n.is_empty()) else {
            return Ok(Route::Direct(canonical(&self.fixed)));
        };
        let name = crate::url::percent_decode(name).map_err(Denied::BadPath)?;
        if let Some(t) = hosts.get(&name) {
            return Ok(match classify(&t.host) {
                Ok(Host::Addr(_)) => Route::Direct(canonical(t)),
                _ => Route::Screened(t.clone()),
            });
        }
        let t = Target::parse(&name, 22).map_err(Denied::BadPath)?;
        let host = classify(&t.host).map_err(Denied::BadPath)?;
        let fixed = classify(&self.fixed.host).ok();
        if fixed.as_ref() == Some(&host) && t.port == self.fixed.port {
            return Ok(Route::Direct(canonical(&self.fixed)));
        }
        if !self.rules.iter().any(|r| r.allows(&host, t.port)) {
            return Err(Denied::NotAllowed(t.to_string()));
        }
        Ok(match host {
            Host::Addr(_) => Route::Direct(canonical(&t)),
            Host::Name(_) => Route::Screened(t),
        })
    }

    /// Of the addresses a screened name resolved to, those it may reach: every address except
    /// the special ones (`special`), which pass only when a CIDR rule allows that address and
    /// port, or when they are the fixed target's own address and port. `Err`: one line saying
    /// why none may be reached.
    pub fn screen(
        &self,
        target: &Target,
        addrs: &[SocketAddr],
        own: &[IpAddr],
    ) -> Result<Vec<SocketAddr>, String> {
        let fixed = match classify(&self.fixed.host) {
            Ok(Host::Addr(ip)) => Some((ip.to_canonical(), self.fixed.port)),
            _ => None,
        };
        let mut passed = Vec::new();
        let mut refused: Vec<(IpAddr, &str)> = Vec::new();
        for &a in addrs {
            let ip = a.ip().to_canonical();
            let Some(why) = special(ip, own) else {
                passed.push(a);
                continue;
            };
            let by_rule = self
                .rules
                .iter()
                .any(|r| r.allows(&Host::Addr(ip), a.port()));
            if by_rule || fixed == Some((ip, a.port())) {
                passed.push(a);
            } else if !refused.iter().any(|(r, _)| *r == ip) {
                refused.push((ip, why));
            }
        }
        if !passed.is_empty() {
            return Ok(passed);
        }
        Err(match refused.as_slice() {
            [] => format!("target {target} resolves to no address"),
            [(ip, why)] => format!(
                "target {target} resolves to {ip}, which is not allowed ({why}); \
                 allow it with a CIDR rule"
            ),
            many => {
                let mut list: Vec<String> = many
                    .iter()
                    .take(4)
                    .map(|(ip, why)| format!("{ip} ({why})"))
                    .collect();
                if many.len() > 4 {
                    list.push(format!("{} more", many.len() - 4));
                }
                format!(
                    "target {target} resolves to {}, which are not allowed; \
                     allow them with a CIDR rule",
                    list.join(", ")
                )
            }
        })
    }
}

/// Why a name may not lead to this address unless a CIDR rule allows it: the machine itself
/// (loopback, unspecified, one of `own`, its interface addresses), the link (link-local: cloud
/// metadata at 169.254.169.254), or no single host (multicast, broadcast). `None`: an ordinary
/// address. IPv4-mapped IPv6 addresses count as their IPv4 address.
pub fn special(ip: IpAddr, own: &[IpAddr]) -> Option<&'static str> {
    let ip = ip.to_canonical();
    let why = match ip {
        IpAddr::V4(a) if a.is_loopback() => "loopback",
        IpAddr::V4(a) if a.octets()[0] == 0 => "unspecified",
        IpAddr::V4(a) if a.is_link_local() => "link-local",
        IpAddr::V4(a) if a.is_multicast() => "multicast",
        IpAddr::V4(a) if a.is_broadcast() => "broadcast",
        IpAddr::V6(a) if a.is_loopback() => "loopback",
        IpAddr::V6(a) if a.is_unspecified() => "unspecified",
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => "link-local",
        IpAddr::V6(a) if a.is_multicast() => "multicast",
        _ if own.iter().any(|o| o.to_canonical() == ip) => "an address of this server",
        _ => return None,
    };
    Some(why)
}

/// An address target as its canonical address (`127.1` is dialled as 127.0.0.1, `::1%1` as ::1);
/// a name target as written.
fn canonical(t: &Target) -> Target {
    match classify(&t.host) {
        Ok(Host::Addr(ip)) => Target {
            host: ip.to_string(),
            port: t.port,
        },
        _ => t.clone(),
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
        let hosts = parse_hosts(
            "db  10.9.9.9:5432\nbox [::1]:2222 # c\nshort 127.1:2200\nlocal localhost:80\n",
        )
        .unwrap();
        let got = policy.route(path, &hosts).map(|r| match r {
            Route::Direct(t) => t.to_string(),
            Route::Screened(t) => format!("{t}, screened"),
        });
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
        check(&[], "/ssh/short", Ok("127.0.0.1:2200"));
        check(&[], "/ssh/local", Ok("localhost:80, screened"));
        check(&["*.corp"], "/ssh/a.corp", Ok("a.corp:22, screened"));
        check(&["*.corp"], "/ssh/A.CORP:22", Ok("A.CORP:22, screened"));
        check(&["*.corp"], "/ssh/a.corp:23", Err("403"));
        check(&["*.corp:*"], "/ssh/a.corp:23", Ok("a.corp:23, screened"));
        check(&["*.corp"], "/ssh/a.corp.evil", Err("403"));
        check(&["*"], "/ssh/10.0.0.1", Err("403")); // globs never match IP literals

        // Found by the fuzz target `route`: "101" passed the glob "*", and the resolver dials
        // it as 0.0.0.101. Nor may any other form it reads as an address pass a glob.
        check(&["*"], "/ssh/101", Err("403"));
        check(&["*:*"], "/ssh/127.1:80", Err("403"));
        check(&["*:*"], "/ssh/0x7f.1:80", Err("403"));
        check(&["*:*"], "/ssh/0X7F000001:80", Err("403"));
        check(&["*:*"], "/ssh/2130706433:80", Err("403"));
        check(&["*:*"], "/ssh/0177.0.0.1:80", Err("403"));
        check(&["*:*"], "/ssh/[::1%251]:80", Err("403")); // [::1%1]:80, a zone index
        check(&["*"], "/ssh/host1", Ok("host1:22, screened"));
        check(
            &["*"],
            "/ssh/0xbeefcafe.example",
            Ok("0xbeefcafe.example:22, screened"),
        );
        check(
            &["*"],
            "/ssh/1.2.3.4.example",
            Ok("1.2.3.4.example:22, screened"),
        );
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

    /// Whatever the system's numeric parser reads as an address is one: a name glob never
    /// matches it, a CIDR rule matches its value, and it is dialled as that value.
    #[test]
    fn address_forms_are_addresses_not_names() {
        let forms = [
            "127.1",
            "2130706433",
            "0x7f.1",
            "0X7F.0.1",
            "017700000001",
            "0177.1",
            "127.0.0.1.",
            "127.1.",
            "%5B::1%251%5D",
            "%5Bfe80::1%25lo%5D",
            "%5B::ffff:127.0.0.1%5D",
        ];
        for f in forms {
            check(&["*:*"], &format!("/ssh/{f}:80"), Err("403"));
            check(
                &["*.*:*", "*1*:*", "*:*"],
                &format!("/ssh/{f}:23"),
                Err("403"),
            );
        }
        for f in &forms[..8] {
            check(
                &["127.0.0.0/8:*"],
                &format!("/ssh/{f}:80"),
                Ok("127.0.0.1:80"),
            );
        }
        check(&["[::1]:*"], "/ssh/%5B::1%251%5D:80", Ok("[::1]:80"));
        check(
            &["[fe80::/10]:*"],
            "/ssh/%5Bfe80::1%25lo%5D:80",
            Ok("[fe80::1]:80"),
        );
        check(&["*:*"], "/ssh/0:80", Err("403"));
        check(&["0.0.0.0/8:*"], "/ssh/0:80", Ok("0.0.0.0:80"));
        // The fixed target by another spelling is still the fixed target, dialled as written.
        check(&[], "/ssh/127.1", Ok("127.0.0.1:22"));
        check(&[], "/ssh/0x7f000001.:22", Ok("127.0.0.1:22"));
        // An address rule may be written in a short form too; it is an address, not a glob.
        check(&["127.1:80"], "/ssh/127.0.0.1:80", Ok("127.0.0.1:80"));
        // Neither a name nor an address: refused as a bad path, never looked up.
        for bad in [
            "1.2.3.08",
            "0x",
            "1.2.3.0x",
            "256.1.1.1.1",
            "a..b",
            "a%25b",
            "::1.",
        ] {
            check(&["*:*"], &format!("/ssh/{bad}"), Err("400"));
        }
        // Names stay names, matched without case or trailing dot.
        check(
            &["*.corp:*"],
            "/ssh/Db1.Corp.:80",
            Ok("Db1.Corp.:80, screened"),
        );
        check(
            &["*:*"],
            "/ssh/1password.com",
            Ok("1password.com:22, screened"),
        );
        check(
            &["*:*"],
            "/ssh/0x7f.example",
            Ok("0x7f.example:22, screened"),
        );
        check(&["*:*"], "/ssh/localhost:80", Ok("localhost:80, screened"));
    }

    fn class(s: &str, expected: Result<&str, ()>) {
        let got = match classify(s) {
            Ok(Host::Addr(ip)) => Ok(format!("addr {ip}")),
            Ok(Host::Name(n)) => Ok(format!("name {n}")),
            Err(_) => Err(()),
        };
        assert_eq!(got.as_deref().map_err(|_| ()), expected, "{s:?}");
    }

    #[test]
    fn classify_table() {
        class("127.0.0.1", Ok("addr 127.0.0.1"));
        class("127.1", Ok("addr 127.0.0.1"));
        class("127.0.1", Ok("addr 127.0.0.1"));
        class("10.65535", Ok("addr 10.0.255.255"));
        class("10.65536", Ok("addr 10.1.0.0"));
        class("10.0.65535", Ok("addr 10.0.255.255"));
        class("10.0.65536", Err(()));
        class("10.16777215", Ok("addr 10.255.255.255"));
        class("10.16777216", Err(()));
        class("2130706433", Ok("addr 127.0.0.1"));
        class("4294967295", Ok("addr 255.255.255.255"));
        class("4294967296", Err(()));
        class("0", Ok("addr 0.0.0.0"));
        class("00", Ok("addr 0.0.0.0"));
        class("0x7f.1", Ok("addr 127.0.0.1"));
        class("0X7f.0x0.0.0X1", Ok("addr 127.0.0.1"));
        class("0xffffffff", Ok("addr 255.255.255.255"));
        class("0x100000000", Err(()));
        class("0x000000000000007f.1", Ok("addr 127.0.0.1"));
        class("017700000001", Ok("addr 127.0.0.1"));
        class("0177.0.0.01", Ok("addr 127.0.0.1"));
        class("08", Err(()));
        class("0x", Err(()));
        class("0xg", Ok("name 0xg"));
        class("256.0.0.1", Err(()));
        class("1.2.3.4.5", Err(()));
        class("1.2.3.256", Err(()));
        class("127.0.0.1.", Ok("addr 127.0.0.1"));
        class("127.1.", Ok("addr 127.0.0.1"));
        class("127.0.0.1..", Err(()));
        class(".127.0.0.1", Err(()));
        class("+1", Err(()));
        class("::1", Ok("addr ::1"));
        class("::1%1", Ok("addr ::1"));
        class("fe80::1%lo", Ok("addr fe80::1"));
        class("fe80::1%eth0", Ok("addr fe80::1"));
        class("::ffff:127.0.0.1", Ok("addr ::ffff:127.0.0.1"));
        class("::1.", Ok("addr ::1"));
        class("::g", Err(()));
        class("localhost", Ok("name localhost"));
        class("LocalHost.", Ok("name localhost"));
        class("db_1.corp-net", Ok("name db_1.corp-net"));
        class("1password.com", Ok("name 1password.com"));
        class("a.0x7f", Err(()));
        class("a.123", Err(()));
        class("a..b", Err(()));
        class("a%b", Err(()));
        class("", Err(()));
        class(".", Err(()));
    }

    /// What a screened name may be dialled at, given what it resolved to: `addrs` are
    /// `ip:port`, `expected` the addresses that pass or the refusal's text.
    fn screened(rules: &[&str], addrs: &[&str], expected: Result<&str, &str>) {
        let policy = Policy {
            fixed: Target::parse("127.0.0.1:2200", 22).unwrap(),
            rules: rules.iter().map(|r| Rule::parse(r).unwrap()).collect(),
        };
        let own: [IpAddr; 2] = ["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        let t = Target::parse("db1:22", 22).unwrap();
        let addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        let got = policy.screen(&t, &addrs, &own).map(|ok| {
            ok.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        });
        let got = got.as_ref().map(String::as_str).map_err(String::as_str);
        assert_eq!(got, expected, "rules {rules:?} addresses {addrs:?}");
    }

    #[test]
    fn resolved_addresses_are_screened() {
        let why = |ip: &str, why: &str| {
            format!(
                "target db1:22 resolves to {ip}, which is not allowed ({why}); \
                 allow it with a CIDR rule"
            )
        };
        screened(&["*"], &["10.0.0.5:22"], Ok("10.0.0.5:22"));
        screened(&["*"], &["203.0.113.9:22"], Ok("203.0.113.9:22"));
        screened(&["*"], &["[fd00::5]:22"], Ok("[fd00::5]:22"));
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.9.9.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("192.0.2.7", "an address of this server"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::7", "an address of this server"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
        ] {
            let v4 = ip.parse::<std::net::Ipv4Addr>().is_ok();
            let addr = if v4 {
                format!("{ip}:22")
            } else {
                format!("[{ip}]:22")
            };
            let shown = ip.parse::<IpAddr>().unwrap().to_canonical().to_string();
            screened(&["*"], &[&addr], Err(&why(&shown, kind)));
        }
        // A CIDR rule for that address and port lets it through; for another port it does not.
        screened(
            &["*", "127.0.0.0/8:22"],
            &["127.0.0.1:22"],
            Ok("127.0.0.1:22"),
        );
        screened(
            &["*", "127.0.0.0/8:23"],
            &["127.0.0.1:22"],
            Err(&why("127.0.0.1", "loopback")),
        );
        screened(&["*", "[::1]:*"], &["[::1]:22"], Ok("[::1]:22"));
        screened(
            &["*", "127.0.0.0/8:*"],
            &["[::ffff:127.0.0.1]:22"],
            Ok("[::ffff:127.0.0.1]:22"),
        );
        screened(
            &["*", "169.254.0.0/16:22"],
            &["169.254.169.254:22"],
            Ok("169.254.169.254:22"),
        );
        // The fixed target's own address and port pass; its address on another port does not.
        screened(&["*"], &["127.0.0.1:2200"], Ok("127.0.0.1:2200"));
        screened(
            &["*"],
            &["127.0.0.1:2201"],
            Err(&why("127.0.0.1", "loopback")),
        );
        // Special addresses are dropped, the others dialled.
        screened(
            &["*"],
            &["127.0.0.1:22", "[::1]:22", "10.0.0.5:22", "10.0.0.6:22"],
            Ok("10.0.0.5:22 10.0.0.6:22"),
        );
        screened(
            &["*"],
            &["[::1]:2200", "127.0.0.1:2200"],
            Ok("127.0.0.1:2200"),
        );
        // When none passes, the reason names each address once, and what it is.
        screened(
            &["*"],
            &["[::1]:22", "169.254.1.1:22", "[::1]:22"],
            Err(
                "target db1:22 resolves to ::1 (loopback), 169.254.1.1 (link-local), which are \
                 not allowed; allow them with a CIDR rule",
            ),
        );
        screened(&["*"], &[], Err("target db1:22 resolves to no address"));
    }

    /// Every string glibc's `inet_aton`, or `getaddrinfo` with `AI_NUMERICHOST`, reads as an
    /// address is classified as that address; and an address without a scope id or a trailing
    /// dot is classified as one only if the system reads it so. Deterministic and bounded.
    #[cfg(unix)]
    #[test]
    fn classify_agrees_with_the_system_parser() {
        use std::ffi::CString;
        extern "C" {
            fn inet_aton(cp: *const libc::c_char, inp: *mut libc::in_addr) -> libc::c_int;
        }
        fn system(s: &str) -> Option<IpAddr> {
            let c = CString::new(s).ok()?;
            let mut a = libc::in_addr { s_addr: 0 };
            // SAFETY: a NUL-terminated string and one in_addr to write.
            if unsafe { inet_aton(c.as_ptr(), &mut a) } == 1 {
                return Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.s_addr))));
            }
            // SAFETY: zeroed addrinfo hints are valid; the result list is freed below.
            let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
            hints.ai_flags = libc::AI_NUMERICHOST;
            hints.ai_socktype = libc::SOCK_STREAM;
            let mut res: *mut libc::addrinfo = std::ptr::null_mut();
            // SAFETY: valid strings and hints; res is written on success only.
            if unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) } != 0 {
                return None;
            }
            // SAFETY: getaddrinfo succeeded: res is a valid list with a valid first address.
            let ip = unsafe {
                let sa = (*res).ai_addr;
                match (*sa).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                }
            };
            // SAFETY: res came from getaddrinfo and is freed once.
            unsafe { libc::freeaddrinfo(res) };
            ip
        }

        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let alphabet: Vec<char> = "0123456789.xXabcdefABCDEF:%[]lgoz-".chars().collect();
        let (mut seen, mut addrs) = (0, 0);
        for round in 0..60_000 {
            let mut s = String::new();
            match round % 3 {
                // Anything over the alphabet.
                0 => (0..rand(16)).for_each(|_| s.push(alphabet[rand(alphabet.len())])),
                // Near-IPv4: 1 to 5 parts, each decimal, octal or hex, of any size.
                1 => {
                    for i in 0..1 + rand(5) {
                        if i > 0 {
                            s.push('.');
                        }
                        let v = [rand(10), rand(256), rand(70_000), rand(1 << 30) * 8][rand(4)];
                        s += &match rand(4) {
                            0 => format!("0{v:o}"),
                            1 => format!("0x{v:x}"),
                            2 => format!("0X{v:X}"),
                            _ => format!("{v}"),
                        };
                    }
                }
                // Near-IPv6: up to 8 groups, maybe compressed, maybe an IPv4 tail or a scope.
                _ => {
                    let groups = rand(9);
                    let gap = rand(groups + 2);
                    for i in 0..groups {
                        if i == gap {
                            s += "::";
                        } else if i > 0 {
                            s.push(':');
                        }
                        let g = [rand(16), rand(0x10000), 0xfe80][rand(3)];
                        s += &format!("{g:x}");
                    }
                    if gap >= groups {
                        s += "::";
                    }
                    match rand(5) {
                        0 => {
                            s +=
                                &format!(":{}.{}.{}.{}", rand(256), rand(256), rand(256), rand(300))
                        }
                        1 => s += ["%1", "%lo", "%eth0", "%", "%99999999999", "%x"][rand(6)],
                        _ => {}
                    }
                }
            }
            // Then, often, one character changed, added or removed.
            if rand(2) == 0 && !s.is_empty() {
                let mut c: Vec<char> = s.chars().collect();
                let i = rand(c.len());
                match rand(3) {
                    0 => c[i] = alphabet[rand(alphabet.len())],
                    1 => c.insert(i, alphabet[rand(alphabet.len())]),
                    _ => {
                        c.remove(i);
                    }
                }
                s = c.into_iter().collect();
            }
            if rand(8) == 0 {
                s.push('.');
            }
            let sys = system(&s).or_else(|| s.strip_suffix('.').and_then(system));
            let ours = classify(&s);
            seen += 1;
            if let Some(ip) = sys {
                addrs += 1;
                assert_eq!(ours, Ok(Host::Addr(ip)), "{s:?}: the system reads {ip}");
            } else if let Ok(Host::Addr(ip)) = ours {
                let loose = s.contains('%') || s.ends_with('.');
                assert!(
                    loose,
                    "{s:?} is classified as {ip}, the system reads no address"
                );
            }
        }
        assert!(addrs > seen / 10, "only {addrs} of {seen} were addresses");
    }

    #[test]
    fn bad_rules() {
        for r in ["", ":22", "h:0-x", "h:5-4", "1.2.3.4/33", "x/8", "[::1"] {
            assert!(Rule::parse(r).is_err(), "{r} should be refused");
        }
    }

    #[test]
    fn address_ranges_with_every_port() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (range, inside, outside) in [
            ("127.0.0.1", "127.0.0.1", "127.0.0.2"),
            ("10.0.0.0/8", "10.9.9.9", "11.0.0.1"),
            ("::1", "::1", "::2"),
            ("[::1]", "::1", "::2"),
            ("fd00::/8", "fd12::5", "fe80::1"),
            ("[fd00::/8]", "fd12::5", "fe80::1"),
        ] {
            let r = Rule::parse_range(range).unwrap();
            assert!(r.contains_ip(ip(inside)), "{range} holds {inside}");
            assert!(
                !r.contains_ip(ip(outside)),
                "{range} does not hold {outside}"
            );
            assert_eq!(r.ports, (1, 65535), "{range}: every port");
        }
        for bad in [
            "",
            "db1",
            "*",
            "::1:*",
            "[::1]:22",
            "1.2.3.4/33",
            "[::1",
            "fd00::/129",
        ] {
            assert!(Rule::parse_range(bad).is_err(), "{bad} should be refused");
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
            let _ = classify(&s);
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
        assert!(parse_hosts("a 1.2.3.08:22")
            .unwrap_err()
            .starts_with("line 1"));
    }
}
