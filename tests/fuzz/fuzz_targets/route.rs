//! Fuzz target `route`: the server's choice of target. Lines of the input are a request path
//! for `Policy::route` (line 1), `X-Forwarded-For` and `X-Real-IP` values for
//! `policy::real_client` (lines 2 and 3), and `--allow` rules for `Rule::parse` (the rest).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use wssh::policy::{real_client, Denied, Policy, Rule, Target};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("");
    let xff = lines.next();
    let real_ip = lines.next();
    let rules: Vec<Rule> = lines.take(8).filter_map(|r| Rule::parse(r).ok()).collect();

    let fixed = Target::parse("127.0.0.1:22", 22).unwrap();
    let hosts = HashMap::from([
        (
            "db".to_string(),
            Target::parse("10.9.9.9:5432", 22).unwrap(),
        ),
        ("box".to_string(), Target::parse("[::1]:2222", 22).unwrap()),
    ]);
    let policy = |rules: Vec<Rule>| Policy {
        fixed: fixed.clone(),
        rules,
    };
    let bare = policy(vec![]).route(path, &hosts);
    let got = policy(rules.clone()).route(path, &hosts);

    // Rules only ever turn "not allowed" into "allowed", for that same target.
    match (&bare, &got) {
        (Ok(_) | Err(Denied::BadPath(_)), got) => assert_eq!(&bare, got, "rules changed it"),
        (Err(Denied::NotAllowed(a)), Ok(r)) => {
            // The refusal names the target as written; the route, its canonical form.
            let (a, t) = (Target::parse(a, 22).unwrap(), r.target());
            let same = |h: &str| wssh::policy::classify(h).ok();
            assert_eq!((same(&a.host), a.port), (same(&t.host), t.port));
        }
        (Err(Denied::NotAllowed(_)), got) => assert_eq!(&bare, got),
    }
    // The target dialled and logged reads back as itself.
    if let Ok(r) = &got {
        let t = r.target();
        assert_eq!(Target::parse(&t.to_string(), 22).as_ref(), Ok(t), "{t}");
    }
    // Name globs never let an address through, CIDR rules never a name: "an address" being
    // what the dial will take as one (the system resolver, numeric forms only).
    if let Err(Denied::NotAllowed(_)) = bare {
        for r in &rules {
            if let Ok(route) = policy(vec![r.clone()]).route(path, &hosts) {
                let t = route.target();
                assert_eq!(r.is_cidr(), numeric(&t.host), "{r:?} let {t} through");
            }
        }
    }

    // The real client is named only by trusted peers, and only as an address they wrote.
    let parse = |s: &str| {
        let s = s.trim();
        s.parse::<IpAddr>()
            .ok()
            .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
    };
    for peer in [
        "127.0.0.1",
        "10.1.2.3",
        "::1",
        "::ffff:10.0.0.1",
        "192.0.2.1",
    ] {
        let peer: IpAddr = peer.parse().unwrap();
        assert_eq!(
            real_client(peer, xff, real_ip, &[]),
            None,
            "no trusted proxies"
        );
        if let Some(ip) = real_client(peer, xff, real_ip, &rules) {
            let mut named = xff.into_iter().flat_map(|v| v.split(',')).chain(real_ip);
            assert!(named.any(|s| parse(s) == Some(ip)), "{ip} named by nobody");
        }
    }
});

/// Does getaddrinfo take `host` as an address literal (`AI_NUMERICHOST`: no lookup is made)?
fn numeric(host: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(host) else {
        return false;
    };
    // SAFETY: a zeroed addrinfo is a valid hints value; the result list is freed once, below.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_NUMERICHOST;
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut res = std::ptr::null_mut();
        let rc = libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res);
        if rc == 0 {
            libc::freeaddrinfo(res);
        }
        rc == 0
    }
}
