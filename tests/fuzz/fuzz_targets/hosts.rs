//! Fuzz target `hosts`: `policy::parse_hosts`, the `--hosts` file (`NAME HOST:PORT` a line).
//! The file is the operator's, but it is re-read while the server runs, and its names are
//! what a request path looks up.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wssh::policy::{parse_hosts, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(map) = parse_hosts(text) else {
        return;
    };
    assert!(map.len() <= text.lines().count());
    let mut again = String::new();
    for (name, target) in &map {
        assert!(!name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('#'));
        // Every target reads back as itself.
        assert_eq!(Target::parse(&target.to_string(), 22).as_ref(), Ok(target));
        again += &format!("{name} {target}\n");
    }
    // Written out again, the map parses to the same map.
    assert_eq!(parse_hosts(&again), Ok(map), "{again:?}");
});
