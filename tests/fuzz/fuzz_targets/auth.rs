//! Fuzz target `auth`: the `Authorization` header a stranger sends to a server with Basic auth,
//! through `auth::parse_basic` and `Gate::check` (users alice, plain, and bob, hashed).
//!
//! Input: the header's value, as bytes (lossily UTF-8, as the server's head parser gives it).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use wssh::auth::{parse_basic, parse_file, Credentials, Gate, Memo};
use wssh::url::base64;

/// bob's password is "bob pw", hashed with 1000 iterations (wssh hash-password).
const USERS: &str = "alice:alice pw\n\
    bob:pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$ooBlzxdAKG/EJ8JU5wF/HKlmDkf9dHkMaR6mHmgswIw=\n";

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| Gate {
        users: Some(Credentials::new(parse_file(USERS).unwrap()).unwrap()),
        ..Gate::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let parsed = parse_basic(&value);
    if let Ok((user, password)) = &parsed {
        // What was read is what a client would have sent: it encodes back to the same pair.
        let again = format!("Basic {}", base64(&[&user[..], b":", &password[..]].concat()));
        assert_eq!(parse_basic(&again).as_ref(), Ok(&(user.clone(), password.clone())));
        assert!(!user.contains(&b':'), "the first colon splits");
    }
    match gate().check(Some(&value), None, &mut Memo::default()) {
        Ok(who) => {
            let pair = parsed.expect("passed without parsing");
            let who = who.to_string();
            match &pair.0[..] {
                b"alice" => assert_eq!((&pair.1[..], &who[..]), (&b"alice pw"[..], "user=\"alice\" ")),
                b"bob" => assert_eq!((&pair.1[..], &who[..]), (&b"bob pw"[..], "user=\"bob\" ")),
                _ => panic!("an unknown user passed"),
            }
        }
        Err(d) => {
            // Malformed is 403 (no challenge), anything else 401; the log is one line.
            assert_eq!(d.code, if parsed.is_err() { 403 } else { 401 });
            assert!(!d.log.contains(['\n', '\r']), "{:?}", d.log);
        }
    }
});
