//! Build script: hands `wssh --version` the target triple and the git commit it was built from
//! (WSSH_COMMIT from the environment wins, for builds outside a git checkout; else "unknown").
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!(
        "cargo:rustc-env=WSSH_TARGET={}",
        std::env::var("TARGET").unwrap()
    );
    println!("cargo:rerun-if-env-changed=WSSH_COMMIT");
    let commit = match std::env::var("WSSH_COMMIT") {
        Ok(c) => c,
        Err(_) => git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=WSSH_COMMIT={commit}");
    // Run again when HEAD moves: a new commit, a checkout, packed refs (a path that does not
    // exist would make cargo run this every time, so only existing ones are named).
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for file in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        match git(&["rev-parse", "--git-path", file]) {
            Some(path) if std::path::Path::new(&path).exists() => {
                println!("cargo:rerun-if-changed={path}")
            }
            _ => {}
        }
    }
}
