//! The probe's TLS step: the handshake, and what it says about the server's certificate. With
//! OpenSSL (Unix but Apple): protocol, cipher, the chain (subject, issuer, not-after with days
//! left, names covered) and exactly why verification failed; then a warning when a private CA
//! vouches for a public name (a TLS-inspecting proxy). Elsewhere native-tls gives only whether
//! the handshake passed and its error text, and the step says so.

use super::report::{Step, Verdict};
use super::ProbeConfig;
use crate::tls::Stream;
use std::net::TcpStream;
use std::time::Instant;

/// A name that only a public CA should vouch for: not an address, not a single label, not a
/// name kept for private networks. (Only OpenSSL's step can tell the issuer apart.)
#[cfg_attr(not(all(unix, not(target_vendor = "apple"))), allow(dead_code))]
pub fn public_name(host: &str) -> bool {
    const PRIVATE: &[&str] = &[
        ".local",
        ".lan",
        ".internal",
        ".home.arpa",
        ".corp",
        ".intranet",
        ".localhost",
        ".test",
    ];
    let h = host.to_ascii_lowercase();
    h.parse::<std::net::IpAddr>().is_err()
        && h.contains('.')
        && !PRIVATE.iter().any(|p| h.ends_with(p))
}

/// The phrase for a handshake that never got going: the other side does not speak TLS.
const NO_TLS: &str = "no TLS here: the port answered something else (a plain ws:// port?)";
const NO_TLS_HINT: &str = "use ws:// for this port, or the port where the server has --cert";

/// Does an OpenSSL error text say that the peer did not answer with TLS?
fn not_tls(msg: &str) -> bool {
    [
        "wrong version number",
        "packet length too long",
        "unexpected eof",
        "record layer failure",
        "http request",
        "Connection reset",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

#[cfg(all(unix, not(target_vendor = "apple")))]
pub fn step(cfg: &ProbeConfig, tcp: TcpStream) -> Result<(Stream, Step), Step> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
    use openssl::x509::X509;
    let t = Instant::now();
    let host = &cfg.url.host;
    let fail = |detail: String| Step::new("tls", Verdict::Fail, Some(t), detail);
    let setup = |e: &dyn std::fmt::Display| fail(format!("TLS set-up: {e}"));
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| setup(&e))?;
    for path in &cfg.ca {
        let cert = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| X509::from_pem(&pem).map_err(|e| e.to_string()))
            .map_err(|e| setup(&format!("{path}: {e}")))?;
        b.cert_store_mut().add_cert(cert).map_err(|e| setup(&e))?;
    }
    if let Some((c, k)) = &cfg.identity {
        b.set_certificate_chain_file(c).map_err(|e| setup(&e))?;
        b.set_private_key_file(k, SslFiletype::PEM)
            .map_err(|e| setup(&e))?;
    }
    // Verification is judged below, from its result: the handshake goes on to show the chain.
    b.set_verify(SslVerifyMode::NONE);
    let conf = b.build().configure().map_err(|e| setup(&e))?;
    let s = match conf.connect(host, tcp) {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            return Err(match not_tls(&msg) {
                true => fail(NO_TLS.into()).hint(NO_TLS_HINT),
                false => fail(format!("handshake failed: {msg}")),
            });
        }
    };
    let ssl = s.ssl();
    let cipher = ssl.current_cipher().map_or("?", |c| c.name());
    let mut lines = Vec::new();
    let chain = ssl.peer_cert_chain().map(|c| c.iter().collect::<Vec<_>>());
    for (i, c) in chain.iter().flatten().enumerate() {
        lines.push(describe(i, c));
    }
    if let Some(leaf) = ssl.peer_certificate() {
        lines.push(format!("names: {}", names(&leaf).join(", ")));
    }
    let v = ssl.verify_result();
    let summary = format!("{} {cipher}", ssl.version_str());
    if v.as_raw() == 0 {
        let mut step = Step::new(
            "tls",
            Verdict::Pass,
            Some(t),
            format!("{summary}, certificate verified for {host}"),
        );
        if !cfg.ca.is_empty() && public_name(host) && !system_trusts(&s) {
            step.verdict = Verdict::Warn;
            step.detail +=
                "; issued by a private CA (--ca) for a public name: looks like a TLS-inspecting proxy";
            step = step.hint(
                "if this is not your organisation's inspecting proxy, someone reads this traffic",
            );
        }
        return Ok((Stream::Ssl(Box::new(s)), step.lines(lines)));
    }
    let (phrase, hint) = reason(v.as_raw());
    let detail = format!("{summary}, certificate {phrase} ({})", v.error_string());
    if cfg.insecure {
        let step = Step::new(
            "tls",
            Verdict::Warn,
            Some(t),
            format!("{detail}; not verified (--insecure)"),
        )
        .lines(lines)
        .hint("anyone on the path can read and change this tunnel");
        return Ok((Stream::Ssl(Box::new(s)), step));
    }
    let mut step = fail(detail).lines(lines).hint(hint);
    let unknown_issuer = matches!(v.as_raw(), 2 | 19 | 20 | 21);
    if unknown_issuer && public_name(host) {
        step.detail += "; a private CA for a public name: looks like a TLS-inspecting proxy";
        step = step.hint("a middlebox (corporate proxy, antivirus) re-signs TLS: give its CA with --ca only if you trust it, or use another network");
    }
    Err(step)
}

/// The fixed phrase for a verification failure, and what to do.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn reason(code: i32) -> (&'static str, &'static str) {
    match code {
        62 | 64 => (
            "name mismatch",
            "the certificate does not cover the name in the URL: use a name it lists",
        ),
        10 => ("expired", "the server's certificate has expired: renew it"),
        9 => (
            "not yet valid",
            "check this machine's clock, or the certificate's start date",
        ),
        18 => (
            "self-signed",
            "give the certificate itself with --ca FILE if you trust it",
        ),
        2 | 19 | 20 | 21 => (
            "issuer unknown",
            "a private CA: give its certificate with --ca FILE",
        ),
        _ => ("not verified", "see the reason in brackets"),
    }
}

/// Does the chain verify against the system's roots alone (without `--ca`)?
#[cfg(all(unix, not(target_vendor = "apple")))]
fn system_trusts(s: &openssl::ssl::SslStream<TcpStream>) -> bool {
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509StoreContext, X509};
    let ssl = s.ssl();
    let (Some(leaf), Some(chain)) = (ssl.peer_certificate(), ssl.peer_cert_chain()) else {
        return false;
    };
    let run = || -> Result<bool, openssl::error::ErrorStack> {
        let mut store = X509StoreBuilder::new()?;
        store.set_default_paths()?;
        let store = store.build();
        let mut untrusted = Stack::<X509>::new()?;
        for c in chain {
            untrusted.push(c.to_owned())?;
        }
        X509StoreContext::new()?.init(&store, &leaf, &untrusted, |c| c.verify_cert())
    };
    run().unwrap_or(false)
}

/// `0: CN=localhost | issuer CN=wssh test CA | not after Dec  2 20:00:00 2026 GMT (1 day left)`.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn describe(i: usize, c: &openssl::x509::X509Ref) -> String {
    let left = openssl::asn1::Asn1Time::days_from_now(0)
        .and_then(|now| now.diff(c.not_after()))
        .map_or(String::new(), |d| match d.days {
            d if d < 0 => format!(", expired {} days ago", -d),
            1 => ", 1 day left".into(),
            d => format!(", {d} days left"),
        });
    format!(
        "{i}: {} | issuer {} | not after {}{left}",
        name(c.subject_name()),
        name(c.issuer_name()),
        c.not_after()
    )
}

#[cfg(all(unix, not(target_vendor = "apple")))]
fn name(n: &openssl::x509::X509NameRef) -> String {
    let parts: Vec<String> = n
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={value}")
        })
        .collect();
    parts.join(", ")
}

/// The DNS names and addresses a certificate covers (its subjectAltName).
#[cfg(all(unix, not(target_vendor = "apple")))]
fn names(c: &openssl::x509::X509Ref) -> Vec<String> {
    let mut out = Vec::new();
    for n in c.subject_alt_names().iter().flatten() {
        if let Some(d) = n.dnsname() {
            out.push(d.to_string());
        } else if let Some(ip) = n.ipaddress() {
            let ip = match ip.len() {
                4 => <[u8; 4]>::try_from(ip).map(std::net::IpAddr::from).ok(),
                16 => <[u8; 16]>::try_from(ip).map(std::net::IpAddr::from).ok(),
                _ => None,
            };
            out.extend(ip.map(|a| a.to_string()));
        }
    }
    if out.is_empty() {
        out.push("(none: no subjectAltName)".into());
    }
    out
}

/// Elsewhere: native-tls's answer, which is all the platform's library gives.
#[cfg(not(all(unix, not(target_vendor = "apple"))))]
pub fn step(cfg: &ProbeConfig, tcp: TcpStream) -> Result<(Stream, Step), Step> {
    let t = Instant::now();
    let Some(c) = &cfg.dialer.tls else {
        return Err(Step::new(
            "tls",
            Verdict::Fail,
            Some(t),
            "no TLS connector".into(),
        ));
    };
    let plain = "(this platform's TLS library gives no protocol, cipher or chain details)";
    match crate::tls::connect(c, &cfg.url.host, tcp) {
        Ok(s) => Ok((
            s,
            Step::new(
                "tls",
                Verdict::Pass,
                Some(t),
                format!("handshake done, certificate verified {plain}"),
            ),
        )),
        Err(e) => {
            let msg = e.to_string();
            Err(match not_tls(&msg) {
                true => Step::new("tls", Verdict::Fail, Some(t), format!("{NO_TLS} ({msg})"))
                    .hint(NO_TLS_HINT),
                false => Step::new("tls", Verdict::Fail, Some(t), format!("{msg} {plain}")),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn public_names() {
        for (h, public) in [
            ("gw.example.com", true),
            ("localhost", false),
            ("127.0.0.1", false),
            ("::1", false),
            ("gw", false),
            ("gw.corp", false),
            ("nas.home.arpa", false),
        ] {
            assert_eq!(super::public_name(h), public, "{h}");
        }
    }
}
