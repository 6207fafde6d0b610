//! Fuzz target `tokens`: the token a stranger's request carries (`tokens::from_request`, from
//! the request target's query or the Host header) and the name check that keeps it inside its
//! directory (`tokens::plain_name`); and the token file parser (`tokens::parse`, the operator's
//! websockify-format files, as the hosts file is fuzzed too).
//!
//! Input: the first line is the request target, the second the Host header; the whole input is
//! also parsed as a token file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wssh::tokens;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let (target, host) = (lines.next().unwrap_or(""), lines.next());
    for host_token in [false, true] {
        if let Some(t) = tokens::from_request(target, host, host_token) {
            // A token that may name a file can never climb out of its directory.
            if tokens::plain_name(&t) {
                assert!(!t.contains('/') && t != "." && t != ".." && !t.contains('\0'));
                let p = std::path::Path::new("/d").join(&t);
                assert_eq!(p.parent(), Some(std::path::Path::new("/d")), "{t:?}");
            }
        }
    }
    if let Ok(entries) = tokens::parse(&text, 1) {
        // Every entry comes from a line of its own.
        assert!(entries.len() <= text.lines().count());
    }
});
