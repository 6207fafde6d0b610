//! The systemd units in scripts/systemd pass `systemd-analyze verify` without a warning, with
//! the binary path pointed at the one under test.

use crate::support::*;
use std::process::Command;

#[test]
fn the_systemd_units_verify_cleanly() {
    let dir = TempDir::new("units");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/systemd");
    let mut units = Vec::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("/usr/local/bin/wssh") || p.extension().unwrap() == "socket");
        let dest = dir.path(p.file_name().unwrap().to_str().unwrap());
        std::fs::write(&dest, text.replace("/usr/local/bin/wssh", &BIN)).unwrap();
        units.push(dest);
    }
    assert_eq!(units.len(), 3, "{units:?}");
    let (ok, out, err) = try_run(Command::new("systemd-analyze").arg("verify").args(&units));
    assert!(ok, "{out}{err}");
    assert_eq!(err.trim(), "", "warnings from systemd-analyze verify");
}
