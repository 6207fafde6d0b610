//! Who may open a tunnel: HTTP Basic credentials (`--auth-file`, `--auth-basic`) and the subject
//! CN of a verified client certificate (`--client-cn`). Pure: the credentials format, the
//! `Authorization` header, constant-time verification (PBKDF2-HMAC-SHA256 through OpenSSL where
//! the server links it) and the verdict. Thin I/O around it: reading the file at start-up (its
//! mode checked) and `wssh hash-password`. The server writes the answers; `tls` verifies the
//! certificate itself.

use crate::error::Error;

/// The realm of the `WWW-Authenticate` challenge.
pub const REALM: &str = "wssh";
/// The scheme word that starts a hashed password.
const PBKDF2: &str = "pbkdf2-sha256";
/// Iterations `wssh hash-password` uses unless told (OWASP's figure for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Below this a hash is too cheap to guess at; above, one check takes seconds (a typo).
const ITERATIONS: std::ops::RangeInclusive<u32> = 1_000..=10_000_000;
/// The salt `wssh hash-password` draws, and the hash length it stores (SHA-256's).
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Does this build have PBKDF2 (the server's OpenSSL)?
const HASHES: bool = cfg!(all(unix, not(target_vendor = "apple")));

/// A stored password. Its `Debug` shows no password nor hash.
enum Secret {
    Plain(Vec<u8>),
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl Secret {
    /// Does `given` match? Constant time in what is stored.
    fn verify(&self, given: &[u8]) -> bool {
        match self {
            Secret::Plain(p) => ct_eq(p, given),
            // HMAC pads its key with zeros, so "pw" and "pw\0" hash alike: no NUL passes.
            Secret::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => ct_eq(hash, &pbkdf2(given, salt, *iterations, hash.len())) & !given.contains(&0),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("Plain([redacted])"),
            Secret::Pbkdf2 { iterations, .. } => write!(f, "Pbkdf2({iterations}, [redacted])"),
        }
    }
}

/// One user and their password.
#[derive(Debug)]
pub struct Entry {
    user: Vec<u8>,
    secret: Secret,
}

/// The users that may pass: never empty, no user twice.
#[derive(Debug)]
pub struct Credentials {
    entries: Vec<Entry>,
}

impl Credentials {
    pub fn new(entries: Vec<Entry>) -> Result<Credentials, String> {
        if entries.is_empty() {
            return Err("no USER:PASSWORD line".into());
        }
        for (i, e) in entries.iter().enumerate() {
            if entries[..i].iter().any(|d| d.user == e.user) {
                return Err(format!("user {} is given twice", shown(&e.user)));
            }
        }
        Ok(Credentials { entries })
    }

    /// Check a user and password. Every entry's name is compared, and a password is always
    /// verified (against the first entry's, for an unknown user), so the time taken does not
    /// say whether the user exists. The error is the log line.
    fn verify(&self, user: &[u8], password: &[u8]) -> Result<(), String> {
        let (mut found, mut at) = (0usize, 0usize);
        for (i, e) in self.entries.iter().enumerate() {
            let hit = usize::from(ct_eq(&e.user, user));
            found |= hit;
            at |= i * hit; // no user twice: at most one hit
        }
        let ok = self.entries[at].secret.verify(password);
        match (found == 1, ok) {
            (true, true) => Ok(()),
            (true, false) => Err(format!("wrong password for user {}", shown(user))),
            (false, _) => Err(format!("unknown user {}", shown(user))),
        }
    }
}

/// Are these equal? The time taken depends on the length of `given` only: not on what is
/// stored, nor on where the two differ. Nothing stored is empty.
fn ct_eq(stored: &[u8], given: &[u8]) -> bool {
    if stored.is_empty() {
        return false;
    }
    let mut diff = u8::from(stored.len() != given.len());
    for (i, g) in given.iter().enumerate() {
        diff |= stored[i % stored.len()] ^ g;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(all(unix, not(target_vendor = "apple")))]
fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Vec<u8> {
    use openssl::hash::MessageDigest;
    let mut out = vec![0u8; len];
    let md = MessageDigest::sha256();
    match openssl::pkcs5::pbkdf2_hmac(password, salt, iterations as usize, md, &mut out) {
        Ok(()) => out,
        // Only an allocation failure inside OpenSSL: an empty hash matches nothing.
        Err(_) => Vec::new(),
    }
}

/// Never called: hashed entries are refused when the file is read.
#[cfg(not(all(unix, not(target_vendor = "apple"))))]
fn pbkdf2(_: &[u8], _: &[u8], _: u32, _: usize) -> Vec<u8> {
    Vec::new()
}

/// A user name fit for a log line: quoted, control characters escaped, at most 64 characters.
fn shown(user: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(user).chars().take(64).collect();
    format!("{s:?}")
}

/// A user name wssh can check: not empty, no `:` (Basic auth splits there), no control
/// characters.
pub fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        Err("empty user name".into())
    } else if user.contains(':') {
        Err("a user name cannot hold ':'".into())
    } else if user.chars().any(char::is_control) {
        Err("a user name cannot hold control characters".into())
    } else {
        Ok(())
    }
}

/// One `USER:PASSWORD` or `USER:pbkdf2-sha256$ITER$SALT$HASH` (everything after the first
/// colon is the password). Errors never quote the password.
pub fn parse_entry(line: &str) -> Result<Entry, String> {
    let Some((user, secret)) = line.split_once(':') else {
        return Err("expected USER:PASSWORD".into());
    };
    check_user(user)?;
    let secret = match secret
        .strip_prefix(PBKDF2)
        .and_then(|s| s.strip_prefix('$'))
    {
        Some(_) if !HASHES => {
            return Err(format!(
                "user {}: a hashed password ({PBKDF2}) needs the OpenSSL build of wssh \
                 (Linux and other Unix but macOS); give the password itself here",
                shown(user.as_bytes())
            ))
        }
        Some(h) => parse_hash(h).map_err(|e| format!("user {}: {e}", shown(user.as_bytes())))?,
        None if secret.is_empty() => {
            return Err(format!("user {}: empty password", shown(user.as_bytes())))
        }
        None => Secret::Plain(secret.as_bytes().to_vec()),
    };
    Ok(Entry {
        user: user.as_bytes().to_vec(),
        secret,
    })
}

/// `ITER$SALT$HASH`, salt and hash in base64.
fn parse_hash(h: &str) -> Result<Secret, String> {
    let bad = || format!("expected {PBKDF2}$ITERATIONS$SALT$HASH (from wssh hash-password)");
    let [iterations, salt, hash] = h.split('$').collect::<Vec<_>>()[..] else {
        return Err(bad());
    };
    let iterations: u32 = iterations.parse().map_err(|_| bad())?;
    if !ITERATIONS.contains(&iterations) {
        return Err(format!(
            "{iterations} iterations: want {} to {}",
            ITERATIONS.start(),
            ITERATIONS.end()
        ));
    }
    let salt = unbase64(salt).filter(|s| s.len() >= 8).ok_or_else(bad)?;
    let hash = unbase64(hash)
        .filter(|h| (16..=64).contains(&h.len()))
        .ok_or_else(bad)?;
    Ok(Secret::Pbkdf2 {
        iterations,
        salt,
        hash,
    })
}

/// A credentials file: an entry per line; blank lines and `#` comments skipped. Errors name
/// the line by number only.
pub fn parse_file(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        entries.push(parse_entry(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(entries)
}

/// Read `--auth-file`: refused if group or others may read or write it (Unix).
pub fn read_file(path: &std::path::Path) -> Result<Vec<Entry>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        if mode & 0o066 != 0 {
            return Err(format!(
                "group or others may read or write it (mode {:o}): chmod 600 it",
                mode & 0o777
            ));
        }
    }
    let mut text = String::new();
    file.take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    parse_file(&text)
}

/// The value of an `Authorization: Basic ...` header: (user, password). The error says what is
/// wrong with it, never what it holds.
pub fn parse_basic(value: &str) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    let (scheme, token) = value.trim().split_once(' ').ok_or("not Basic")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("not Basic");
    }
    let mut plain = unbase64(token.trim()).ok_or("not base64")?;
    let colon = plain.iter().position(|&b| b == b':').ok_or("no colon")?;
    let password = plain.split_off(colon + 1);
    plain.pop();
    Ok((plain, password))
}

/// Standard base64 (RFC 4648, padded), through the project's one decoder; None otherwise.
fn unbase64(s: &str) -> Option<Vec<u8>> {
    crate::url::base64_decode(s.as_bytes()).ok()
}

/// What stands between a request and a tunnel (or, with `--web-auth`, a page).
#[derive(Debug, Default)]
pub struct Gate {
    /// Basic auth: these users.
    pub users: Option<Credentials>,
    /// `--client-cn`: the certificate's subject CN must be one of these.
    pub cns: Vec<String>,
    /// `--web-auth`: pages too.
    pub pages: bool,
}

/// Why a request may not pass: the status (401 asks for credentials, 403 does not), the one
/// line the client reads (never which of user and password was wrong) and the log line.
/// `attempt` is false for a request that brought no credentials: a browser always asks so
/// first, so that is the normal first step, not a failed attempt.
#[derive(Debug, PartialEq)]
pub struct Denial {
    pub code: u16,
    pub body: &'static str,
    pub log: String,
    pub attempt: bool,
}

impl Denial {
    fn new(code: u16, body: &'static str, log: impl Into<String>) -> Denial {
        let log = log.into();
        let attempt = true;
        Denial {
            code,
            body,
            log,
            attempt,
        }
    }
}

/// Who passed, for the tunnel's log line (`user="alice" cn="alice" `; empty if no check).
#[derive(Debug, Default, PartialEq)]
pub struct Passed(String);

impl std::fmt::Display for Passed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One connection's memory of the last `Authorization` value that passed, so that a browser's
/// kept-alive requests cost one hash between them.
#[derive(Default)]
pub struct Memo(Option<(String, Vec<u8>)>);

impl Gate {
    /// Is anything checked at all?
    pub fn active(&self) -> bool {
        self.users.is_some() || !self.cns.is_empty()
    }

    /// Must this request pass the gate? Tunnels always (and, without `--web`, every request,
    /// which can only be a tunnel or a 400); pages with `--web-auth`.
    pub fn guards(&self, upgrade: bool, web: bool) -> bool {
        self.active() && (upgrade || !web || self.pages)
    }

    /// The client certificate's CN (when the server verifies them) first, then Basic
    /// credentials: a missing or wrong password is 401, a malformed header or an unlisted CN 403.
    pub fn check(
        &self,
        authorization: Option<&str>,
        cn: Option<&str>,
        memo: &mut Memo,
    ) -> Result<Passed, Denial> {
        let mut passed = String::new();
        if !self.cns.is_empty() {
            match cn {
                Some(c) if self.cns.iter().any(|a| a == c) => {
                    passed += &format!("cn={} ", shown(c.as_bytes()))
                }
                Some(c) => {
                    let log = format!(
                        "client certificate CN {} is not a --client-cn",
                        shown(c.as_bytes())
                    );
                    return Err(Denial::new(403, "client certificate not allowed", log));
                }
                None => {
                    let log = "client certificate without one subject CN";
                    return Err(Denial::new(403, "client certificate not allowed", log));
                }
            }
        }
        if let Some(users) = &self.users {
            let missing = || Denial {
                attempt: false,
                ..Denial::new(401, "credentials required", "no credentials")
            };
            let value = authorization.ok_or_else(missing)?;
            let user = match &memo.0 {
                Some((seen, user)) if ct_eq(seen.as_bytes(), value.as_bytes()) => user.clone(),
                _ => {
                    let (user, password) = parse_basic(value).map_err(|why| {
                        let log = format!("malformed Authorization header: {why}");
                        Denial::new(403, "malformed Authorization header", log)
                    })?;
                    let wrong = |log| Denial::new(401, "wrong user or password", log);
                    users.verify(&user, &password).map_err(wrong)?;
                    memo.0 = Some((value.to_string(), user.clone()));
                    user
                }
            };
            passed += &format!("user={} ", shown(&user));
        }
        Ok(Passed(passed))
    }
}

/// `wssh hash-password USER`: read the password from stdin (asked twice, not echoed, on a
/// terminal; else its first line) and print `USER:pbkdf2-sha256$ITER$SALT$HASH`.
pub fn hash_password(user: &str, iterations: u32) -> Result<(), Error> {
    let usage = |m: String| Error::Usage(format!("hash-password: {m}"));
    check_user(user).map_err(usage)?;
    if !ITERATIONS.contains(&iterations) {
        return Err(usage(format!(
            "--iterations {iterations}: want {} to {}",
            ITERATIONS.start(),
            ITERATIONS.end()
        )));
    }
    if !HASHES {
        return Err(usage(
            "needs the OpenSSL build of wssh (Linux and other Unix but macOS); put the \
             password itself in the --auth-file there"
                .into(),
        ));
    }
    let password = read_password()?;
    if password.is_empty() || password.contains('\0') {
        return Err(usage("empty password, or one with a NUL byte".into()));
    }
    let line = hash_line(user, password.as_bytes(), iterations, &salt()?);
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("write stdout", e))
}

/// The line `hash_password` prints.
fn hash_line(user: &str, password: &[u8], iterations: u32, salt: &[u8]) -> String {
    let hash = pbkdf2(password, salt, iterations, HASH_LEN);
    let b64 = crate::url::base64;
    format!("{user}:{PBKDF2}${iterations}${}${}", b64(salt), b64(&hash))
}

#[cfg(all(unix, not(target_vendor = "apple")))]
fn salt() -> Result<Vec<u8>, Error> {
    let mut salt = vec![0u8; SALT_LEN];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| Error::Tls(format!("random salt: {e}")))?;
    Ok(salt)
}

#[cfg(not(all(unix, not(target_vendor = "apple"))))]
fn salt() -> Result<Vec<u8>, Error> {
    Ok(vec![0u8; SALT_LEN])
}

/// The password from stdin: on a terminal, asked twice without echo; else the first line.
fn read_password() -> Result<String, Error> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let read_line = || {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("read the password from stdin", e))?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        Ok::<_, Error>(line.strip_suffix('\r').unwrap_or(line).to_string())
    };
    if !stdin.is_terminal() {
        return read_line();
    }
    let ask = |prompt: &str| {
        eprint!("{prompt}");
        let _quiet = sys::NoEcho::new();
        let line = read_line();
        eprintln!();
        line
    };
    let first = ask("password: ")?;
    if ask("again: ")? != first {
        return Err(Error::Usage(
            "hash-password: the two passwords differ".into(),
        ));
    }
    Ok(first)
}

#[cfg(unix)]
mod sys {
    /// Terminal echo off on stdin until dropped.
    pub struct NoEcho(Option<libc::termios>);

    impl NoEcho {
        pub fn new() -> NoEcho {
            // SAFETY: tcgetattr and tcsetattr on fd 0 with a termios we own.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) != 0 {
                    return NoEcho(None);
                }
                let saved = t;
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(0, libc::TCSANOW, &t);
                NoEcho(Some(saved))
            }
        }
    }

    impl Drop for NoEcho {
        fn drop(&mut self) {
            if let Some(t) = &self.0 {
                // SAFETY: restores the state read in `new`.
                unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
            }
        }
    }
}

#[cfg(not(unix))]
mod sys {
    pub struct NoEcho;
    impl NoEcho {
        pub fn new() -> NoEcho {
            NoEcho
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: PartialEq + std::fmt::Debug>(f: impl Fn(&str) -> T, input: &str, expected: T) {
        assert_eq!(f(input), expected, "{input:?}");
    }

    #[test]
    fn base64() {
        let d = |s: &str| unbase64(s).map(|v| String::from_utf8_lossy(&v).into_owned());
        check(d, "", Some("".into()));
        check(d, "YQ==", Some("a".into()));
        check(d, "YQ", None); // padding is required, as RFC 7617's base64 has it
        check(d, "YWI=", Some("ab".into()));
        check(d, "YWJj", Some("abc".into()));
        check(d, "bWU6c2VjcmV0", Some("me:secret".into()));
        check(d, "YQ=", None);
        check(d, "YQ===", None);
        check(d, "Y", None);
        check(d, "YW Jj", None);
        check(d, "YW-j", None);
        check(d, "Y=Q=", None);
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            assert_eq!(unbase64(&crate::url::base64(&data)), Some(data));
        }
    }

    #[test]
    fn authorization_headers() {
        let p = |v: &str| {
            parse_basic(v).map(|(u, p)| {
                (
                    String::from_utf8_lossy(&u).into_owned(),
                    String::from_utf8_lossy(&p).into_owned(),
                )
            })
        };
        let ok = |u: &str, pw: &str| Ok((u.to_string(), pw.to_string()));
        check(p, "Basic bWU6c2VjcmV0", ok("me", "secret"));
        check(p, "basic  bWU6c2VjcmV0 ", ok("me", "secret"));
        check(p, "BASIC bWU6c2VjcmV0", ok("me", "secret"));
        // The first colon splits: the password may hold more.
        check(p, "Basic bWU6YTpiOg==", ok("me", "a:b:"));
        check(p, "Basic OnB3", ok("", "pw"));
        check(p, "Basic bWU6", ok("me", ""));
        check(p, "Bearer bWU6c2VjcmV0", Err("not Basic"));
        check(p, "Basic", Err("not Basic"));
        check(p, "bWU6c2VjcmV0", Err("not Basic"));
        check(p, "Basic bWU6c2VjcmV0!", Err("not base64"));
        check(p, "Basic bWU=", Err("no colon"));
        check(p, "Basic bWU", Err("not base64")); // unpadded
    }

    #[test]
    fn credential_lines() {
        let p = |line: &str| parse_entry(line).map(|e| (e.user, e.secret));
        let plain = |u: &str, pw: &str| Ok((u.as_bytes().to_vec(), pw.as_bytes().to_vec()));
        let got = |line: &str| match p(line) {
            Ok((u, Secret::Plain(pw))) => Ok((u, pw)),
            Ok((u, Secret::Pbkdf2 { iterations, .. })) => Ok((u, iterations.to_string().into())),
            Err(e) => Err(e),
        };
        check(got, "alice:s3cret", plain("alice", "s3cret"));
        check(got, "alice:a:b c ", plain("alice", "a:b c "));
        check(got, "élise:pw", plain("élise", "pw"));
        check(got, "alice", Err("expected USER:PASSWORD".into()));
        check(got, ":pw", Err("empty user name".into()));
        check(got, "alice:", Err("user \"alice\": empty password".into()));
        check(
            got,
            "al\u{7}ice:pw",
            Err("a user name cannot hold control characters".into()),
        );
        let salt = "c2FsdHNhbHRzYWx0";
        let hash = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";
        let line = format!("bob:pbkdf2-sha256$1000${salt}${hash}");
        if HASHES {
            check(got, &line, Ok((b"bob".to_vec(), b"1000".to_vec())));
        } else {
            assert!(p(&line).unwrap_err().contains("needs the OpenSSL build"));
        }
        let bad = "user \"bob\": expected pbkdf2-sha256$ITERATIONS$SALT$HASH (from wssh \
                   hash-password)";
        for broken in [
            format!("bob:pbkdf2-sha256$1000${salt}"),
            format!("bob:pbkdf2-sha256$x${salt}${hash}"),
            format!("bob:pbkdf2-sha256$1000$!${hash}"),
            format!("bob:pbkdf2-sha256$1000$YWJj${hash}"),
            format!("bob:pbkdf2-sha256$1000${salt}$YWJj"),
            format!("bob:pbkdf2-sha256$1000${salt}${hash}$"),
        ] {
            if HASHES {
                check(got, &broken, Err(bad.into()));
            }
        }
        if HASHES {
            check(
                got,
                &format!("bob:pbkdf2-sha256$999${salt}${hash}"),
                Err("user \"bob\": 999 iterations: want 1000 to 10000000".into()),
            );
        }
        // Not the scheme word followed by `$`: a plain password that happens to start so.
        check(got, "bob:pbkdf2-sha256", plain("bob", "pbkdf2-sha256"));
    }

    #[test]
    fn files() {
        let users = |text: &str| {
            parse_file(text).map(|e| {
                e.iter()
                    .map(|e| String::from_utf8_lossy(&e.user).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        check(
            users,
            "# users\n\nalice:a\r\n  # indented comment\nbob:b\n",
            Ok(vec!["alice".into(), "bob".into()]),
        );
        check(users, "", Ok(vec![]));
        // The line is named by number; its text (maybe a password) is not quoted.
        check(
            users,
            "alice:a\nsecret-without-user\n",
            Err("line 2: expected USER:PASSWORD".into()),
        );
        let twice = parse_file("alice:a\nalice:b\n").unwrap();
        assert_eq!(
            Credentials::new(twice).unwrap_err(),
            "user \"alice\" is given twice"
        );
        assert_eq!(
            Credentials::new(vec![]).unwrap_err(),
            "no USER:PASSWORD line"
        );
    }

    #[test]
    fn debug_output_shows_no_password() {
        let g = gate("alice:s3cret-pw\n", &["alice"]);
        let shown = format!("{g:?}");
        assert!(
            shown.contains("alice") && shown.contains("[redacted]"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }

    #[test]
    fn constant_time_equality() {
        let eq = |s: &str| {
            let (a, b) = s.split_once('|').unwrap();
            ct_eq(a.as_bytes(), b.as_bytes())
        };
        check(eq, "abc|abc", true);
        check(eq, "abc|abd", false);
        check(eq, "abc|ab", false);
        check(eq, "abc|abcabc", false);
        check(eq, "ab|abab", false);
        check(eq, "|", false);
        check(eq, "|a", false);
        check(eq, "a|", false);
    }

    fn gate(lines: &str, cns: &[&str]) -> Gate {
        Gate {
            users: (!lines.is_empty())
                .then(|| Credentials::new(parse_file(lines).unwrap()).unwrap()),
            cns: cns.iter().map(|c| c.to_string()).collect(),
            pages: false,
        }
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", crate::url::base64(user_pass.as_bytes()))
    }

    #[test]
    fn verdicts() {
        let g = gate("alice:s3cret\nbob:hunter2:x\n", &[]);
        let v = |auth: &str| {
            let auth = (!auth.is_empty()).then_some(auth);
            g.check(auth, None, &mut Memo::default())
                .map(|p| p.0)
                .map_err(|d| (d.code, d.log))
        };
        check(v, &basic("alice:s3cret"), Ok("user=\"alice\" ".into()));
        check(v, &basic("bob:hunter2:x"), Ok("user=\"bob\" ".into()));
        check(v, "", Err((401, "no credentials".into())));
        check(
            v,
            &basic("alice:s3cre"),
            Err((401, "wrong password for user \"alice\"".into())),
        );
        check(
            v,
            &basic("alice:s3cret "),
            Err((401, "wrong password for user \"alice\"".into())),
        );
        check(
            v,
            &basic("Alice:s3cret"),
            Err((401, "unknown user \"Alice\"".into())),
        );
        // Another user's password is no good, nor the first entry's for an unknown user.
        check(
            v,
            &basic("bob:s3cret"),
            Err((401, "wrong password for user \"bob\"".into())),
        );
        check(
            v,
            &basic("carol:s3cret"),
            Err((401, "unknown user \"carol\"".into())),
        );
        check(
            v,
            &basic("\u{1b}[31m:x"),
            Err((401, "unknown user \"\\u{1b}[31m\"".into())),
        );
        check(
            v,
            "Bearer abc",
            Err((403, "malformed Authorization header: not Basic".into())),
        );
        check(
            v,
            "Basic !!",
            Err((403, "malformed Authorization header: not base64".into())),
        );
        check(
            v,
            &basic("alice"),
            Err((403, "malformed Authorization header: no colon".into())),
        );
    }

    #[test]
    fn client_cns_then_credentials() {
        let cn_only = gate("", &["alice", "ops team"]);
        let v = |g: &Gate, cn: Option<&str>, auth: Option<&str>| {
            g.check(auth, cn, &mut Memo::default())
                .map(|p| p.0)
                .map_err(|d| (d.code, d.log))
        };
        assert_eq!(v(&cn_only, Some("alice"), None), Ok("cn=\"alice\" ".into()));
        assert_eq!(
            v(&cn_only, Some("ops team"), None),
            Ok("cn=\"ops team\" ".into())
        );
        let not_listed = "client certificate CN \"mallory\" is not a --client-cn";
        assert_eq!(
            v(&cn_only, Some("mallory"), None),
            Err((403, not_listed.into()))
        );
        assert_eq!(
            v(&cn_only, Some("Alice"), None).unwrap_err().0,
            403,
            "CNs are compared exactly"
        );
        assert_eq!(
            v(&cn_only, None, None),
            Err((403, "client certificate without one subject CN".into()))
        );
        let both = gate("alice:pw\n", &["alice"]);
        let good = basic("alice:pw");
        assert_eq!(
            v(&both, Some("alice"), Some(&good)),
            Ok("cn=\"alice\" user=\"alice\" ".into())
        );
        assert_eq!(v(&both, Some("alice"), None).unwrap_err().0, 401);
        assert_eq!(
            v(&both, Some("mallory"), Some(&good)),
            Err((403, not_listed.into()))
        );
    }

    #[test]
    fn which_requests_are_guarded() {
        let g = |users: bool, pages: bool| Gate {
            users: users.then(|| Credentials::new(parse_file("a:b").unwrap()).unwrap()),
            cns: vec![],
            pages,
        };
        // (upgrade, web) for: tunnels, pages, and anything without --web.
        let cases = [(true, true), (false, true), (false, false), (true, false)];
        let seen = |g: Gate| cases.map(|(u, w)| g.guards(u, w));
        assert_eq!(seen(g(false, false)), [false; 4]);
        assert_eq!(seen(g(true, false)), [true, false, true, true]);
        assert_eq!(seen(g(true, true)), [true; 4]);
    }

    #[test]
    fn the_memo_spares_the_hash_for_the_same_value_only() {
        let g = gate("alice:pw\nbob:pw2\n", &[]);
        let mut memo = Memo::default();
        let (alice, bob) = (basic("alice:pw"), basic("bob:pw2"));
        assert!(g.check(Some(&alice), None, &mut memo).is_ok());
        assert!(memo.0.is_some());
        assert!(g.check(Some(&alice), None, &mut memo).is_ok());
        assert_eq!(
            g.check(Some(&basic("alice:no")), None, &mut memo)
                .unwrap_err()
                .code,
            401
        );
        assert_eq!(
            g.check(Some(&bob), None, &mut memo).unwrap().0,
            "user=\"bob\" "
        );
        assert_eq!(g.check(None, None, &mut memo).unwrap_err().code, 401);
    }

    #[cfg(all(unix, not(target_vendor = "apple")))]
    #[test]
    fn hashed_lines_verify() {
        // RFC 7914 section 11's PBKDF2-HMAC-SHA256 vector: "passwd", salt "salt", 1 iteration.
        assert_eq!(
            pbkdf2(b"passwd", b"salt", 1, 16),
            [
                0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
                0xb6, 0x05
            ]
        );
        let line = hash_line("carol", b"correct horse", 1000, b"0123456789abcdef");
        assert!(
            line.starts_with("carol:pbkdf2-sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg==$"),
            "{line}"
        );
        let g = Gate {
            users: Some(
                Credentials::new(parse_file(&format!("alice:pw\n{line}\n")).unwrap()).unwrap(),
            ),
            ..Gate::default()
        };
        let v = |auth: &str| {
            g.check(Some(auth), None, &mut Memo::default())
                .map_err(|d| d.log)
        };
        assert_eq!(
            v(&basic("carol:correct horse")).unwrap().0,
            "user=\"carol\" "
        );
        assert_eq!(
            v(&basic("carol:correct horsE")).unwrap_err(),
            "wrong password for user \"carol\""
        );
        // Found by the fuzz target `auth`: HMAC pads its key with zero bytes, so a trailing NUL
        // gave the same hash.
        assert_eq!(
            v(&basic("carol:correct horse\0")).unwrap_err(),
            "wrong password for user \"carol\""
        );
        assert_eq!(v(&basic("alice:pw")).unwrap().0, "user=\"alice\" ");
    }
}
