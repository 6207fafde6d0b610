//! The one error type of wssh, with variants named after what the caller does with them.
//! Messages are lowercase and name the object they are about; `main` maps them to exit codes.
//! Windows error numbers that the system could not put in words (Wine has no message table) are
//! put in words here (`words`).

use std::{fmt, io};

/// Everything that can end a wssh command or a tunnel early.
#[derive(Debug)]
pub enum Error {
    /// Bad command line or configuration: exit code 2.
    Usage(String),
    /// A local I/O failure, with what was being done.
    Io { what: String, source: io::Error },
    /// Could not reach an address (the server, a proxy or a target).
    Dial { addr: String, source: io::Error },
    /// TLS set-up or handshake failed.
    Tls(String),
    /// The peer's HTTP answer or request was not what the protocol needs.
    Handshake(String),
    /// The server or a proxy answered with an HTTP status instead of the tunnel.
    Refused { code: u16, msg: String },
    /// The WebSocket failed after the handshake.
    Ws(tungstenite::Error),
    /// The server closed the tunnel with a code other than normal.
    Closed { code: u16, reason: String },
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&words(&self.raw()))
    }
}

impl Error {
    /// The message as the parts below put it, before `words`.
    fn raw(&self) -> String {
        let mut s = String::new();
        let f = &mut s;
        use std::fmt::Write;
        let _ = match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Dial { addr, source } => write!(f, "connect {addr}: {source}"),
            Error::Tls(m) => write!(f, "tls: {m}"),
            Error::Handshake(m) => write!(f, "{m}"),
            Error::Refused { msg, .. } => write!(f, "{msg}"),
            Error::Ws(e) => write!(f, "websocket: {e}"),
            Error::Closed { code, reason } if reason.is_empty() => {
                write!(f, "server closed the tunnel with code {code}")
            }
            Error::Closed { code, reason } => {
                write!(f, "server closed the tunnel with code {code}: {reason}")
            }
        };
        s
    }
}

/// What the common Windows error numbers mean: socket errors, and the schannel and certificate
/// HRESULTs a TLS handshake can end with.
fn windows_text(code: u32) -> Option<&'static str> {
    Some(match code {
        2 => "file not found",
        3 => "path not found",
        5 => "access denied",
        109 => "broken pipe",
        232 => "the pipe is being closed",
        10048 => "address already in use",
        10049 => "address not available",
        10050 => "network down",
        10051 => "network unreachable",
        10053 => "connection aborted",
        10054 => "connection reset by peer",
        10060 => "connection timed out",
        10061 => "connection refused",
        10065 => "no route to host",
        11001 => "host not found",
        11002 => "host not found, try again",
        11004 => "no address for this name",
        0x8009_0304 => "TLS internal error",
        0x8009_0308 => "invalid TLS message",
        0x8009_030E => "no TLS credentials (certificate or key) usable",
        0x8009_0325 => "the certificate chain ends in a root that is not trusted",
        0x8009_0326 => "the peer sent a TLS message it should not have",
        0x8009_0327 => "the certificate is not known",
        0x8009_0331 => "no TLS version or cipher in common",
        0x8009_2010 => "the certificate is revoked",
        0x8009_2012 => "the revocation of the certificate could not be checked",
        0x8009_2013 => "the certificate's revocation server is offline",
        0x800B_0101 => "the certificate has expired or is not valid yet",
        0x800B_0109 => "the certificate chain ends in a root that is not trusted",
        0x800B_010A => "the certificate chain does not reach a trusted root",
        0x800B_010C => "the certificate is revoked",
        0x800B_010E => {
            "the revocation of the certificate could not be checked (it names no revocation source)"
        }
        0x800B_010F => "the certificate is not for this host name",
        0x800B_0110 => "the certificate is not for server authentication",
        _ => return None,
    })
}

/// Rust's text for a Windows error the system had no words for is
/// `OS Error N (FormatMessageW() returned error M)`: put that in words (or at least in hex,
/// as Windows documents HRESULTs). Everything else is left as it is.
pub fn words(msg: &str) -> String {
    const HEAD: &str = "OS Error ";
    let Some(at) = msg.find(HEAD) else {
        return msg.to_string();
    };
    let rest = &msg[at + HEAD.len()..];
    let digits = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    let Ok(n) = rest[..digits].parse::<i64>() else {
        return msg.to_string();
    };
    // The fallback's own parenthesis, when there is one, goes too.
    let after = &rest[digits..];
    let after = match after.strip_prefix(" (FormatMessageW()") {
        Some(a) => a.find(')').map_or("", |e| &a[e + 1..]),
        None => after,
    };
    let code = n as i32 as u32; // an HRESULT comes negative: its 32 bits
    let text =
        windows_text(code).map_or_else(|| format!("Windows error 0x{code:08X}"), String::from);
    let after = after.replace(&format!(" (os error {n})"), "");
    // Win32 and socket errors are documented in decimal, HRESULTs in hex.
    let num = match n {
        0..=0xFFFF => n.to_string(),
        _ => format!("0x{code:08X}"),
    };
    format!("{}{text} (os error {num}){after}", &msg[..at])
}

impl std::error::Error for Error {}

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        Error::Ws(e)
    }
}

#[cfg(test)]
mod tests {
    fn check(input: &str, expected: &str) {
        assert_eq!(super::words(input), expected, "{input}");
    }

    #[test]
    fn windows_numbers_are_put_in_words() {
        check(
            "tls: handshake with localhost failed: OS Error -2146762487 (FormatMessageW() \
             returned error 317) (os error -2146762487)",
            "tls: handshake with localhost failed: the certificate chain ends in a root that is \
             not trusted (os error 0x800B0109)",
        );
        check(
            "connect 127.0.0.1:9: OS Error 10061 (FormatMessageW() returned error 317) (os \
             error 10061)",
            "connect 127.0.0.1:9: connection refused (os error 10061)",
        );
        check(
            "x: OS Error -5 (FormatMessageW() returned error 317)",
            "x: Windows error 0xFFFFFFFB (os error 0xFFFFFFFB)",
        );
        // Words already there (Linux, real Windows) are left alone.
        check(
            "connect 127.0.0.1:9: Connection refused (os error 111)",
            "connect 127.0.0.1:9: Connection refused (os error 111)",
        );
        check("OS Error x", "OS Error x");
    }
}
