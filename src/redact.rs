//! What a log line or an error message may show of a URL or an HTTP head. Passwords, query
//! values and the values of all but a few harmless headers become `[redacted]`; the scheme, user,
//! host, port and path stay, so a message still says where it is about. Pure: strings in and out.

/// What stands in for a hidden value.
pub const REDACTED: &str = "[redacted]";

/// Headers whose values debug dumps show (lowercase). Any other value may carry a secret (a
/// token in `X-Auth-*`, `Sec-WebSocket-Protocol`, `Authorization`, `Cookie`...) and is hidden.
const SHOWN: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-version",
    "sec-websocket-key",
    "sec-websocket-accept",
    "sec-websocket-extensions",
    "user-agent",
    "origin",
    "content-length",
    "content-type",
    "server",
    "via",
    "date",
    "location",
    "x-forwarded-for",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Where the credentials of a URL end: the index of their `@` in `rest`, the URL after
/// `scheme://`. The last `@` before the query counts, so that a password holding a `/` that was
/// not percent-encoded is still taken whole; text before it with a `/` but no `:` is a path.
pub fn credentials_end(rest: &str) -> Option<usize> {
    let before_query = rest.split(['?', '#']).next().unwrap_or(rest);
    let at = before_query.rfind('@')?;
    let candidate = &rest[..at];
    (candidate.contains(':') || !candidate.contains('/')).then_some(at)
}

/// A URL (ws, wss, an http proxy, with or without its scheme) or a request target, fit to
/// show: `wss://me:[redacted]@gw/ssh/db1?token=[redacted]`.
pub fn url(s: &str) -> String {
    let (scheme, rest) = match s.find("://") {
        Some(i) => s.split_at(i + 3),
        None => ("", s),
    };
    let mut out = scheme.to_string();
    // An origin-form request target (`/path?query`) has no credentials.
    let origin_form = scheme.is_empty() && rest.starts_with('/');
    let rest = match credentials_end(rest).filter(|_| !origin_form) {
        Some(at) => {
            match rest[..at].split_once(':') {
                Some((user, _)) => out += &format!("{user}:{REDACTED}@"),
                None => out += &rest[..=at],
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    match rest.split_once('?') {
        Some((before, q)) => out += &format!("{before}?{}", query(q)),
        None => out += rest,
    }
    if let Some(f) = fragment {
        out += if f.is_empty() { "#" } else { "#[redacted]" };
    }
    out
}

/// A query string with every value hidden (`a=[redacted]&b=`); a bare word may be a token too.
fn query(q: &str) -> String {
    q.split('&')
        .map(|p| match p.split_once('=') {
            Some((k, "")) => format!("{k}="),
            Some((k, _)) => format!("{k}={REDACTED}"),
            None if p.is_empty() => String::new(),
            None => REDACTED.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// An HTTP head on one line for debug logs (` | ` between lines): the request target's query
/// hidden, and the value of every header not in a short list of harmless ones.
pub fn head(head: &str) -> String {
    head_hiding(head, &[])
}

/// `head`, with the values of the headers named in `also` hidden too (lowercase names): the
/// `Host` header is a secret when it carries the token (`--host-token`).
pub fn head_hiding(head: &str, also: &[&str]) -> String {
    head.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| match (i, l.split_once(':')) {
            (0, _) if l.starts_with("HTTP/") => l.to_string(),
            (0, _) => match l.splitn(3, ' ').collect::<Vec<_>>()[..] {
                [method, target, version] => format!("{method} {} {version}", url(target)),
                _ => REDACTED.to_string(),
            },
            (_, Some((name, _))) if also.contains(&name.trim().to_ascii_lowercase().as_str()) => {
                format!("{name}: {REDACTED}")
            }
            (_, Some((name, value))) => header(name, value.trim()),
            (_, None) => REDACTED.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The values `head` hides (query values, header values), for `scrub`.
pub fn hidden(head: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = head.lines().filter(|l| !l.is_empty());
    if let Some(first) = lines.next().filter(|l| !l.starts_with("HTTP/")) {
        let target = first.split(' ').nth(1).unwrap_or("");
        if let Some((_, q)) = target.split_once('?') {
            let values = q
                .split('&')
                .map(|p| p.split_once('=').map_or(p, |(_, v)| v));
            out.extend(values.map(String::from));
        }
    }
    for l in lines {
        match l.split_once(':') {
            Some((n, v)) if !SHOWN.contains(&n.trim().to_ascii_lowercase().as_str()) => {
                out.push(v.trim().to_string())
            }
            Some(_) => {}
            None => out.push(l.to_string()),
        }
    }
    out
}

/// `text` from a peer (an answer, a body) with every secret of ours in it replaced: a peer may
/// echo the request back. Values under 4 characters are left: they are no secret, and would
/// garble the message.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 4).collect();
    // Longest first, so that a secret inside another does not leave the rest of it.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), REDACTED))
}

/// One header line fit to show.
fn header(name: &str, value: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "location" => format!("{name}: {}", url(value)),
        n if SHOWN.contains(&n) => format!("{name}: {value}"),
        _ => format!("{name}: {REDACTED}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_hidden_when_it_is_the_token() {
        let h = "GET / HTTP/1.1\r\nHost: vm9.example:6080\r\nOrigin: http://vm9.example:6080\r\n";
        assert_eq!(
            head_hiding(h, &["host", "origin"]),
            "GET / HTTP/1.1 | Host: [redacted] | Origin: [redacted]"
        );
        assert!(head(h).contains("vm9.example"));
    }

    fn check(redact: impl Fn(&str) -> String, input: &str, expected: &str) {
        assert_eq!(redact(input), expected, "{input}");
    }

    #[test]
    fn urls() {
        check(
            url,
            "wss://gw.example.com/ssh/db1",
            "wss://gw.example.com/ssh/db1",
        );
        check(url, "wss://me:secret@gw/", "wss://me:[redacted]@gw/");
        check(url, "wss://me@gw/", "wss://me@gw/");
        check(url, "ws://me:@gw", "ws://me:[redacted]@gw");
        check(
            url,
            "ws://me:p@ss:w@rd@gw:80/x",
            "ws://me:[redacted]@gw:80/x",
        );
        check(
            url,
            "ws://me:se/cr:et@gw/ssh/",
            "ws://me:[redacted]@gw/ssh/",
        );
        check(url, "ws://gw/ssh/a@b", "ws://gw/ssh/a@b");
        check(url, "ws://gw/?token=abc", "ws://gw/?token=[redacted]");
        check(
            url,
            "ws://gw?token=abc&x=&y",
            "ws://gw?token=[redacted]&x=&[redacted]",
        );
        check(url, "ws://gw/?mail=a@b:c", "ws://gw/?mail=[redacted]");
        check(url, "ws://gw/#frag", "ws://gw/#[redacted]");
        check(
            url,
            "http://u%40x:p%3A@proxy:3128",
            "http://u%40x:[redacted]@proxy:3128",
        );
        check(url, "u:secret@proxy:3128", "u:[redacted]@proxy:3128");
        check(url, "proxy:3128", "proxy:3128");
        check(url, "/ssh/db1?token=abc", "/ssh/db1?token=[redacted]");
        check(url, "/ssh/a:b@c", "/ssh/a:b@c");
        check(url, "", "");
    }

    #[test]
    fn heads() {
        check(
            head,
            "GET /ssh/x?token=t1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Basic eDp5\r\n\
             Cookie: a=b\r\nsec-websocket-protocol: binary, tok\r\nX-Auth-Token: t2\r\n\
             Upgrade: websocket\r\nUser-Agent: wssh/1\r\n\r\n",
            "GET /ssh/x?token=[redacted] HTTP/1.1 | Host: gw | Authorization: [redacted] | \
             Cookie: [redacted] | sec-websocket-protocol: [redacted] | X-Auth-Token: [redacted] | \
             Upgrade: websocket | User-Agent: wssh/1",
        );
        check(
            head,
            "CONNECT gw:443 HTTP/1.1\r\nHost: gw:443\r\nProxy-Authorization: Basic eDp5\r\n",
            "CONNECT gw:443 HTTP/1.1 | Host: gw:443 | Proxy-Authorization: [redacted]",
        );
        check(
            head,
            "HTTP/1.1 302 Found\r\nLocation: https://sso/login?ticket=t3\r\nSet-Cookie: s=1\r\n",
            "HTTP/1.1 302 Found | Location: https://sso/login?ticket=[redacted] | \
             Set-Cookie: [redacted]",
        );
        check(head, "GET /\r\nfolded line\r\n", "[redacted] | [redacted]");
    }

    #[test]
    fn echoes() {
        let request = "GET /x?token=t0ken&v=1 HTTP/1.1\r\nHost: gw\r\n\
                       Authorization: Basic eDp5eno=\r\nX-Key: k3y-1\r\n\r\n";
        let secrets = hidden(request);
        let echo = |s: &str| scrub(s, &secrets);
        check(
            echo,
            request,
            "GET /x?token=[redacted]&v=1 HTTP/1.1\r\nHost: gw\r\n\
             Authorization: [redacted]\r\nX-Key: [redacted]\r\n\r\n",
        );
        check(echo, "v=1 and gw stay", "v=1 and gw stay");
        check(echo, "", "");
    }
}
