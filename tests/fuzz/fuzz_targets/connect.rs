//! Fuzz target `connect`: `forward::parse_connect`, the check of the head a local application
//! sends to `wssh connect`, and where the host and port it yields go next: into the URL
//! template, then (on the server) back out of the path through `Policy::route`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use wssh::forward::parse_connect;
use wssh::policy::{Denied, Policy, Target};
use wssh::url::{expand, join_host_port, split_host_port};

fuzz_target!(|data: &[u8]| {
    let (host, port) = match parse_connect(data) {
        Ok(x) => x,
        Err(r) => {
            // The refusal is written into an HTTP answer: it must not break its lines.
            assert!(matches!(r.code, 400 | 405), "status {}", r.code);
            let one_line = |s: &str| !s.contains(['\r', '\n']);
            assert!(one_line(r.reason) && one_line(&r.body), "{r:?}");
            return;
        }
    };
    assert!(port != 0 && !host.is_empty());
    let req = wssh::ws::parse_request(data).expect("a CONNECT that parse_request refuses");
    assert_eq!(req.method, "CONNECT");
    let authority = join_host_port(&host, port);
    assert_eq!(split_host_port(&authority, 0), Ok((host.clone(), port)));

    // The server's view of the path, before its rules: no rule, so only "not allowed".
    let policy = Policy {
        fixed: Target::parse("127.0.0.1:22", 22).unwrap(),
        rules: vec![],
    };
    // Whatever the application asks for, the tunnel goes to the gateway in the template.
    for (template, gw_port) in [
        ("wss://gw.example:8443/ssh/{host}:{port}", 8443),
        ("wss://gw.example/ssh/", 443),
    ] {
        let url = expand(template, &host, port);
        let u = wssh::url::parse(&url).unwrap_or_else(|e| panic!("{url:?}: {e}"));
        assert_eq!(
            (u.host.as_str(), u.port, &u.userinfo),
            ("gw.example", gw_port, &None)
        );
        assert!(u.path.starts_with("/ssh/"), "{url}");
        // And the server reads the same target back out of the path.
        // Addresses come back in canonical form (127.1 is 127.0.0.1), and a host that is
        // neither a name nor an address is refused: compare names only.
        if !matches!(wssh::policy::classify(&host), Ok(wssh::policy::Host::Name(_))) {
            return;
        }
        let read = match policy.route(&u.path, &HashMap::new()) {
            Ok(r) => r.target().to_string(),
            Err(Denied::NotAllowed(t)) => t,
            Err(Denied::BadPath(e)) => format!("bad path: {e}"),
        };
        assert_eq!(
            read, authority,
            "CONNECT {authority} became path {}",
            u.path
        );
    }
});
