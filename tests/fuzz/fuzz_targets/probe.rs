//! Fuzz target `probe`: what `wssh probe` makes of a stranger's bytes before printing them: a
//! target's first bytes (`probe::first_bytes`, `report::printable`), an answer's head read as
//! a proxy's answer to CONNECT (`ws::parse_response`, `proxy::judge`), and every such text put
//! into a `--json` line (`report::json_line`). The whole input is each of these.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wssh::probe::report::{json_line, printable, Step, Verdict};

/// The JSON string that starts at `s` (after its opening quote), decoded; None if malformed.
fn decode(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c if (c as u32) < 0x20 => return None,
            c => out.push(c),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for shown in [printable(data, 200), wssh::probe::first_bytes(data)] {
        assert!(!shown.chars().any(char::is_control), "control character shown: {shown:?}");
    }
    let text = String::from_utf8_lossy(data).into_owned();
    let mut details = vec![text.clone()];
    if let Ok(res) = wssh::ws::parse_response(data) {
        let p = wssh::proxy::ProxyUrl::parse("http://proxy:3128").unwrap();
        if let Err(e) = wssh::proxy::judge(&p, "gw:443", &res, b"") {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
            details.push(msg);
        }
    }
    for detail in details {
        let step = Step::new("target", Verdict::Fail, None, detail.clone())
            .lines(text.lines().map(String::from).collect());
        let line = json_line(&step);
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1, "{line:?}");
        assert!(!line.trim_end().chars().any(|c| (c as u32) < 0x20), "{line:?}");
        let at = line.find("\"detail\":\"").unwrap() + 10;
        assert_eq!(decode(&line[at..]).as_deref(), Some(detail.as_str()), "{line:?}");
    }
});
