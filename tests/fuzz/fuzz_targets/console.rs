//! Fuzz target `console`: what `--console` makes of a request target. Line 1 of the input is a
//! request target for `console::wants` and `console::ask` (the check's query through
//! `check_path`); line 2 a reason for `console::verdict`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wssh::console::{ask, check_path, verdict, wants, Ask, MAX_PATH};
use wssh::web::Body;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(2, '\n');
    let target = lines.next().unwrap_or("");
    let reason = lines.next().unwrap_or("");

    // Everything under /_wssh/ is the console's, with or without --web.
    if wssh::web::reserved(target) {
        assert!(wants(target, true) && wants(target, false));
    }
    if let Ask::Check(path) = ask(target) {
        // A path the check accepts is a request path, bounded, never the server's own.
        assert!(path.starts_with('/') && path.len() <= MAX_PATH, "{path:?}");
        assert!(!path.chars().any(char::is_control), "{path:?}");
        assert!(!wssh::web::reserved(&path), "{path:?}");
        // Written out again as URLSearchParams would, it reads back as itself.
        let enc: String = path
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        assert_eq!(check_path(Some(&format!("path={enc}"))), Ok(path));
    }
    // The verdict is one line of JSON, whatever the reason holds.
    let Body::Text(json) = verdict(&Err((403, reason.to_string()))).body else {
        panic!("not text");
    };
    let body = json.strip_suffix('\n').expect("ends with a newline");
    assert!(!body.chars().any(|c| (c as u32) < 0x20), "{body:?}");
    assert!(body.starts_with("{\"allowed\":false,") && body.ends_with("\"}"));
});
