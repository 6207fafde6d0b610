//! Fuzz target `url`: `url::parse`, `url::expand`, `url::split_host_port`,
//! `url::percent_decode`, `proxy::ProxyUrl::parse` and `proxy::bypass`. Every line of the input
//! goes through each parser; the first line is also the connect template, and all lines
//! together are the `no_proxy` list.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use wssh::proxy::{bypass, ProxyUrl};
use wssh::url::{self, expand, percent_decode, split_host_port};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').take(6).collect();
    let no_proxy: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut hosts = vec![("db1".to_string(), 22)];

    for line in &lines {
        if let Ok((host, port)) = split_host_port(line, 22) {
            assert!(!host.is_empty());
            let again = split_host_port(&url::join_host_port(&host, port), 0);
            assert_eq!(again, Ok((host.clone(), port)), "{line:?}");
            hosts.push((host, port));
        }
        if let Ok(u) = url::parse(line) {
            // The address dialled and the Host header read back as the URL's host and port.
            let default = if u.tls { 443 } else { 80 };
            let hp = (u.host.clone(), u.port);
            assert_eq!(split_host_port(&u.authority(), 0).as_ref(), Ok(&hp));
            assert_eq!(split_host_port(&u.host_header(), default).as_ref(), Ok(&hp));
            // The path goes into a request line: nothing in it may end or split that line.
            assert!(u.path.starts_with('/'), "{:?}", u.path);
            assert!(
                !u.path.bytes().any(|b| b <= b' ' || b == 0x7f),
                "{:?}",
                u.path
            );
            // Written out again (without credentials), it parses to the same URL.
            let scheme = if u.tls { "wss" } else { "ws" };
            let again = url::parse(&format!("{scheme}://{}{}", u.authority(), u.path));
            let plain = url::WsUrl {
                userinfo: None,
                ..u.clone()
            };
            assert_eq!(again, Ok(plain), "{line:?}");
            hosts.push(hp);
        }
        if let Ok(p) = ProxyUrl::parse(line) {
            let hp = (p.host.clone(), p.port);
            assert_eq!(split_host_port(&p.authority(), 0).as_ref(), Ok(&hp));
            let again = ProxyUrl::parse(&p.authority());
            assert_eq!(
                again,
                Ok(ProxyUrl {
                    auth: None,
                    ..p.clone()
                }),
                "{line:?}"
            );
            hosts.push(hp);
        }
        if let Ok(d) = percent_decode(line) {
            assert!(d.len() <= line.len());
            if !line.contains('%') {
                assert_eq!(d, *line);
            }
            let encoded: String = d.bytes().map(|b| format!("%{b:02X}")).collect();
            assert_eq!(percent_decode(&encoded).as_ref(), Ok(&d));
        }
    }

    let template = lines[0];
    for (host, port) in hosts.iter().take(6) {
        let filled = expand(template, host, *port);
        if template.contains("{host}") {
            assert!(
                !filled.contains("{host}"),
                "{template:?} with {host}: {filled:?}"
            );
        } else if !template.contains("{port}") && !template.ends_with("/ssh/") {
            assert_eq!(
                filled, template,
                "a template without placeholders is used as it is"
            );
        }

        // no_proxy: case-insensitive, only ever widened by more entries, `*` covers all.
        let bypassed = bypass(&no_proxy, host);
        assert_eq!(
            bypass(&no_proxy, &host.to_ascii_uppercase()),
            bypassed,
            "{host}"
        );
        let mut more = no_proxy.clone();
        more.push("example.org".into());
        assert!(!bypassed || bypass(&more, host));
        more.push("*".into());
        assert!(bypass(&more, host));
        // A name or an address is covered by itself.
        let name = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && host.chars().any(|c| c.is_ascii_alphanumeric());
        if name || host.parse::<IpAddr>().is_ok() {
            assert!(
                bypass(&[host.clone()], host),
                "no_proxy={host} does not cover {host}"
            );
        }
    }
});
