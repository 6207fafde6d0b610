//! HTTP heads and the WebSocket opening handshake, both sides, done by hand so that head size is
//! capped, every refusal gets a clear status, and bytes read past a head stay in the tunnel.
//! Frames after the handshake are tungstenite's (see `pump`).

use crate::error::Error;
use crate::pump;
use crate::redact;
use crate::tls::Stream;
use crate::url::{base64, WsUrl};
use std::io::{self, Read, Write};
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;
use tungstenite::WebSocket;

/// The request header that asks a wssh server not to ping this tunnel (`wssh probe --idle`),
/// and the value the server echoes in its 101 when it agrees.
pub const QUIET_HEADER: &str = "x-wssh-probe";
pub const QUIET: &str = "quiet";

/// Largest HTTP head (request or response) wssh reads, its blank line included.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Why an HTTP head could not be read.
#[derive(Debug)]
pub enum HeadError {
    /// The connection closed before the first byte: not an error.
    Empty,
    TooLarge,
    Io(io::Error),
}

/// Read up to the blank line that ends an HTTP head. Returns (head, bytes after it).
pub fn read_head(s: &mut impl Read) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    read_head_from(s, Vec::new())
}

/// The same, starting from bytes already read past the previous head on this connection
/// (pipelined requests): they come first, and may hold the whole head.
pub fn read_head_from(s: &mut impl Read, carry: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut buf = carry;
    buf.reserve(1024);
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let rest = buf.split_off(i + 4);
        return Ok((buf, rest));
    }
    let mut chunk = [0u8; 2048];
    loop {
        // Never read past MAX_HEAD in all, head and early tunnel bytes together.
        let room = MAX_HEAD.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let n = match s.read(&mut chunk[..room]) {
            Ok(0) if buf.is_empty() => return Err(HeadError::Empty),
            Ok(0) => {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-head");
                return Err(HeadError::Io(e));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A socket read timeout shows as EAGAIN on Unix: say what it is.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let msg = "timed out waiting for an HTTP head";
                return Err(HeadError::Io(io::Error::new(io::ErrorKind::TimedOut, msg)));
            }
            Err(e) => return Err(HeadError::Io(e)),
        };
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        // The limit holds however the bytes arrive: a last read may run past it.
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            if from + i + 4 > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let rest = buf.split_off(from + i + 4);
            return Ok((buf, rest));
        }
    }
}

/// A parsed HTTP request head.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// May the connection carry another request after this one's answer? HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        match self.version {
            1 => !has_token(&self.headers, "connection", "close"),
            _ => has_token(&self.headers, "connection", "keep-alive"),
        }
    }

    /// Does it ask for a WebSocket (`Upgrade: websocket`)? Then it is a tunnel request, to be
    /// checked by `check_upgrade`; anything else is a page request.
    pub fn wants_upgrade(&self) -> bool {
        has_token(&self.headers, "upgrade", "websocket")
    }
}

/// Parsed response head: status code, reason and headers.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

fn collect(headers: &[httparse::Header]) -> Vec<(String, String)> {
    let text = |h: &httparse::Header| String::from_utf8_lossy(h.value).trim().to_string();
    headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), text(h)))
        .collect()
}

/// First value of a header (names are stored lowercase).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Every value of a header that may be repeated, joined as one list (`X-Forwarded-For`).
pub fn header_all(headers: &[(String, String)], name: &str) -> Option<String> {
    let all: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    (!all.is_empty()).then(|| all.join(", "))
}

/// Does a comma-separated header contain `token` (case-insensitive)?
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

pub fn parse_request(head: &[u8]) -> Result<Request, String> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hs);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => Ok(Request {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            version: req.version.unwrap_or(1),
            headers: collect(req.headers),
        }),
        Ok(httparse::Status::Partial) => Err("incomplete request head".into()),
        Err(e) => Err(format!("malformed request head: {e}")),
    }
}

pub fn parse_response(head: &[u8]) -> Result<Response, String> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut hs);
    match res.parse(head) {
        Ok(httparse::Status::Complete(_)) => Ok(Response {
            code: res.code.unwrap_or(0),
            reason: res.reason.unwrap_or("").to_string(),
            headers: collect(res.headers),
        }),
        _ => Err("the answer is not HTTP".into()),
    }
}

/// Check a request is a WebSocket upgrade; returns the `Sec-WebSocket-Accept` value.
pub fn check_upgrade(req: &Request) -> Result<String, String> {
    let h = &req.headers;
    if req.method != "GET" {
        return Err(format!("method {} is not GET", req.method));
    }
    if !has_token(h, "upgrade", "websocket") || !has_token(h, "connection", "upgrade") {
        return Err(
            "not a WebSocket upgrade (no Upgrade: websocket and Connection: upgrade)".into(),
        );
    }
    if header(h, "sec-websocket-version") != Some("13") {
        return Err("Sec-WebSocket-Version must be 13".into());
    }
    match header(h, "sec-websocket-key") {
        Some(k) if k.len() == 24 => Ok(derive_accept_key(k.as_bytes())),
        _ => Err("missing or bad Sec-WebSocket-Key".into()),
    }
}

/// Does the client offer the `binary` subprotocol (websockify and noVNC do)?
pub fn offers_binary(req: &Request) -> bool {
    has_token(&req.headers, "sec-websocket-protocol", "binary")
}

/// The subprotocol the server selects, and so how tunnel bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subprotocol {
    /// None offered, none selected: binary messages.
    None,
    /// `binary`: binary messages.
    Binary,
    /// `base64`: text messages holding base64 (websockify before 0.9, noVNC 0.x).
    Base64,
}

impl Subprotocol {
    pub fn encoding(self) -> pump::Encoding {
        match self {
            Subprotocol::None | Subprotocol::Binary => pump::Encoding::Binary,
            Subprotocol::Base64 => pump::Encoding::Base64,
        }
    }
}

/// The one subprotocol rule: none offered, none selected; a list with `binary` in it (white
/// space around items tolerated), `binary`; else a list with `base64` in it, `base64`;
/// anything else, 400.
pub fn subprotocol(req: &Request) -> Result<Subprotocol, String> {
    if header(&req.headers, "sec-websocket-protocol").is_none() {
        Ok(Subprotocol::None)
    } else if offers_binary(req) {
        Ok(Subprotocol::Binary)
    } else if has_token(&req.headers, "sec-websocket-protocol", "base64") {
        Ok(Subprotocol::Base64)
    } else {
        Err("unsupported subprotocol: offer binary, base64, or none".into())
    }
}

/// Answer a request with an error status and a one-line plain-text body, then close.
pub fn refuse(s: &mut impl Write, code: u16, reason: &str, body: &str) -> io::Result<()> {
    refuse_with(s, code, reason, "", body)
}

/// The same with more header lines, each ending in CRLF (a 401's `WWW-Authenticate`).
pub fn refuse_with(
    s: &mut impl Write,
    code: u16,
    reason: &str,
    extra: &str,
    body: &str,
) -> io::Result<()> {
    let r = format!(
        "HTTP/1.1 {code} {reason}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}\n",
        body.len() + 1
    );
    s.write_all(r.as_bytes())?;
    s.flush()
}

/// Accept the upgrade: write the 101 answer, naming the subprotocol selected; `extra` is more
/// header lines, each ending in CRLF.
pub fn accept(
    s: &mut impl Write,
    accept_key: &str,
    proto: Subprotocol,
    extra: &str,
) -> io::Result<()> {
    let proto = match proto {
        Subprotocol::None => "",
        Subprotocol::Binary => "Sec-WebSocket-Protocol: binary\r\n",
        Subprotocol::Base64 => "Sec-WebSocket-Protocol: base64\r\n",
    };
    let r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept_key}\r\n{proto}{extra}\r\n"
    );
    s.write_all(r.as_bytes())?;
    s.flush()
}

/// Run the client side of the handshake on a connected stream (TLS already done).
/// `headers` are extra `Name: value` lines from the command line.
pub fn client_handshake(
    mut s: Stream,
    url: &WsUrl,
    headers: &[String],
) -> Result<WebSocket<crate::wire::Wire>, Error> {
    let up = client_upgrade(&mut s, url, headers)?;
    if up.res.code != 101 {
        return Err(Error::Refused {
            code: up.res.code,
            msg: refusal(&up.res, &up.rest, &mut s, &up.secrets),
        });
    }
    check_switch(&up)?;
    Ok(pump::websocket(s, up.rest, Role::Client))
}

/// The server's answer to our upgrade request, whatever its status.
pub struct Upgrade {
    pub res: Response,
    /// Bytes read past the head: the body's start, or the tunnel's first bytes.
    pub rest: Vec<u8>,
    key: String,
    /// Values of ours the server must not see echoed in messages (credentials, -H values).
    pub secrets: Vec<String>,
}

/// Send the upgrade request (with Basic credentials from the URL's user and `headers`) and
/// read the answer's head.
pub fn client_upgrade(s: &mut Stream, url: &WsUrl, headers: &[String]) -> Result<Upgrade, Error> {
    let key = tungstenite::handshake::client::generate_key();
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: binary\r\nUser-Agent: wssh/{}\r\n",
        url.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(user) = &url.userinfo {
        req += &format!("Authorization: Basic {}\r\n", base64(user.as_bytes()));
    }
    // Whatever the user added with -H is theirs to keep out of logs, whatever its name.
    let mut shown = redact::head(&req);
    let mut secrets = redact::hidden(&req);
    for h in headers {
        req += &format!("{h}\r\n");
        let (name, value) = h.split_once(':').unwrap_or((h, ""));
        shown += &format!(" | {name}: {}", redact::REDACTED);
        secrets.push(value.trim().to_string());
    }
    req += "\r\n";
    log::debug!("request to {}: {shown}", url.authority());
    let io_err = |e| Error::io(format!("handshake with {}", url.authority()), e);
    s.write_all(req.as_bytes())
        .and_then(|_| s.flush())
        .map_err(io_err)?;
    let (head, rest) = match read_head(s) {
        Ok(x) => x,
        Err(HeadError::Empty) => {
            let e = io::Error::new(io::ErrorKind::UnexpectedEof, "closed without an answer");
            return Err(io_err(e));
        }
        Err(HeadError::TooLarge) => {
            return Err(Error::Handshake(format!(
                "server answer head over {MAX_HEAD} bytes"
            )));
        }
        Err(HeadError::Io(e)) => return Err(io_err(e)),
    };
    let res = parse_response(&head)
        .map_err(|e| Error::Handshake(format!("{e}: {}", snippet(&head, &secrets))))?;
    log::debug!("answer: {} {}", res.code, res.reason);
    Ok(Upgrade {
        res,
        rest,
        key,
        secrets,
    })
}

/// Is a 101 answer a WebSocket we can use: the right accept key, binary or no subprotocol?
pub fn check_switch(up: &Upgrade) -> Result<(), Error> {
    let headers = &up.res.headers;
    if header(headers, "sec-websocket-accept") != Some(&derive_accept_key(up.key.as_bytes())) {
        return Err(Error::Handshake(
            "server answered 101 with a wrong Sec-WebSocket-Accept".into(),
        ));
    }
    if let Some(p) = header(headers, "sec-websocket-protocol").filter(|p| *p != "binary") {
        return Err(Error::Handshake(format!(
            "server chose subprotocol {p:?}, not binary"
        )));
    }
    Ok(())
}

/// `server answered 403 Forbidden: target not allowed`, with `Location` and the body's start.
pub fn refusal(res: &Response, rest: &[u8], s: &mut Stream, secrets: &[String]) -> String {
    let mut msg = format!("server answered {} {}", res.code, res.reason);
    if let Some(loc) = header(&res.headers, "location") {
        msg += &format!(", Location: {}", redact::url(loc));
    }
    let mut body = rest.to_vec();
    let want: usize = header(&res.headers, "content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut chunk = [0u8; 512];
    while body.len() < want.min(512) {
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let text = snippet(&body, secrets);
    if !text.is_empty() {
        msg += &format!(": {text}");
    }
    msg
}

/// The start of a body or head as one printable line, without our secrets (a peer may echo
/// the request back).
fn snippet(b: &[u8], secrets: &[String]) -> String {
    let s = redact::scrub(&String::from_utf8_lossy(b), secrets);
    let s: String = s
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read `input` whole (as far as it fits one read) and one byte per read: same outcome.
    fn check(input: &[u8], expected: Result<(usize, usize), &str>) {
        struct Bytewise<'a>(&'a [u8]);
        impl Read for Bytewise<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let show = |r: Result<(Vec<u8>, Vec<u8>), HeadError>| match r {
            Ok((h, r)) => Ok((h.len(), r.len())),
            Err(HeadError::Empty) => Err("empty"),
            Err(HeadError::TooLarge) => Err("large"),
            Err(HeadError::Io(_)) => Err("io"),
        };
        assert_eq!(show(read_head(&mut &input[..])), expected, "whole");
        let bytewise = expected.map(|(h, _)| (h, 0)); // nothing is read past the head
        assert_eq!(show(read_head(&mut Bytewise(input))), bytewise, "bytewise");
    }

    /// A request head of `len` bytes, blank line included.
    fn head_of(len: usize) -> Vec<u8> {
        let mut h = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        h.resize(len - 4, b'a');
        h.extend_from_slice(b"\r\n\r\n");
        h
    }

    #[test]
    fn heads() {
        check(b"", Err("empty"));
        check(b"GET / HTTP/1.1\r\n\r\n", Ok((18, 0)));
        check(b"GET / HTTP/1.1\r\n\r\nSSH-2.0", Ok((18, 7)));
        check(b"GET / HTTP/1.1\r\n", Err("io"));
        check(&[b'a'; MAX_HEAD + 10], Err("large"));
        // The cap holds to the byte: a head of exactly MAX_HEAD passes, one more does not.
        let mut exact = vec![b'a'; MAX_HEAD - 4];
        exact.extend_from_slice(b"\r\n\r\n");
        check(&exact, Ok((MAX_HEAD, 0)));
        exact.insert(0, b'a');
        check(&exact, Err("large"));
        check(&[b'a'; MAX_HEAD], Err("large"));
        check(&[b'a'; MAX_HEAD - 1], Err("io"));
        check(&head_of(MAX_HEAD), Ok((MAX_HEAD, 0)));
        // Found by the fuzz target `head`: 16,389 bytes came through when the last read of
        // 2,048 bytes ended past the limit, and the outcome depended on how reads were cut.
        check(&head_of(MAX_HEAD + 1), Err("large"));
        check(&head_of(MAX_HEAD + 5), Err("large"));
        check(&head_of(MAX_HEAD + 2048), Err("large"));
    }

    #[test]
    fn pipelined_heads_start_from_the_leftover_bytes() {
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nxy";
        let (a, rest) = read_head(&mut &two[..]).unwrap();
        assert_eq!(a, b"GET /a HTTP/1.1\r\n\r\n");
        // The second head is whole in the leftover: nothing more is read.
        let (b, rest) = read_head_from(&mut &b""[..], rest).unwrap();
        assert_eq!(
            (&b[..], &rest[..]),
            (&b"GET /b HTTP/1.1\r\n\r\n"[..], &b"xy"[..])
        );
        // Half of it in the leftover, the rest from the socket.
        let (c, rest) =
            read_head_from(&mut &b"\n\r\nz"[..], b"GET /c HTTP/1.1\r".to_vec()).unwrap();
        assert_eq!(
            (&c[..], &rest[..]),
            (&b"GET /c HTTP/1.1\r\n\r\n"[..], &b"z"[..])
        );
        assert!(matches!(
            read_head_from(&mut &b""[..], b"GET".to_vec()),
            Err(HeadError::Io(_))
        ));
    }

    #[test]
    fn keep_alive_and_upgrade() {
        let req = |v: &str, h: &str| {
            parse_request(format!("GET / HTTP/{v}\r\n{h}\r\n").as_bytes()).unwrap()
        };
        assert!(req("1.1", "").keep_alive());
        assert!(!req("1.1", "Connection: close\r\n").keep_alive());
        assert!(!req("1.0", "").keep_alive());
        assert!(req("1.0", "Connection: Keep-Alive\r\n").keep_alive());
        assert!(req("1.1", "Upgrade: WebSocket\r\n").wants_upgrade());
        assert!(!req("1.1", "Connection: upgrade\r\nUpgrade: h2c\r\n").wants_upgrade());
    }

    #[test]
    fn upgrade_checks() {
        let req =
            |h: &str| parse_request(format!("GET /x HTTP/1.1\r\n{h}\r\n").as_bytes()).unwrap();
        let good = "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        assert_eq!(
            check_upgrade(&req(good)).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(check_upgrade(&req("Host: x\r\n"))
            .unwrap_err()
            .contains("not a WebSocket"));
        assert!(!offers_binary(&req(good)));
        assert!(offers_binary(&req(
            "Sec-WebSocket-Protocol: base64, binary\r\n"
        )));
    }

    #[test]
    fn the_subprotocol_rule() {
        let check = |offered: Option<&str>, expected: Result<Subprotocol, ()>| {
            let h = offered.map_or(String::new(), |p| {
                format!("Sec-WebSocket-Protocol: {p}\r\n")
            });
            let req = parse_request(format!("GET / HTTP/1.1\r\n{h}\r\n").as_bytes()).unwrap();
            assert_eq!(subprotocol(&req).map_err(|_| ()), expected, "{offered:?}");
        };
        use Subprotocol as P;
        check(None, Ok(P::None));
        check(Some("binary"), Ok(P::Binary));
        check(Some("base64, binary"), Ok(P::Binary));
        check(Some(" binary ,base64"), Ok(P::Binary));
        check(Some("BINARY"), Ok(P::Binary));
        check(Some("base64"), Ok(P::Base64));
        check(Some("chat, base64"), Ok(P::Base64));
        check(Some("Base64"), Ok(P::Base64));
        check(Some("chat"), Err(()));
        check(Some("binaryx, base64x"), Err(()));
        check(Some(""), Err(()));
        assert!(parse_request(b"\x16\x03\x01garbage\r\n\r\n").is_err());
    }
}
