//! The one error type of wssh, with variants named after what the caller does with them.
//! Messages are lowercase and name the object they are about; `main` maps them to exit codes.

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
        match self {
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
        }
    }
}

impl std::error::Error for Error {}

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        Error::Ws(e)
    }
}
