//! Fuzz target `head`: what a stranger's bytes meet first. `ws::read_head` reads a head from a
//! reader (whole, in small pieces, or with interrupted reads), then `parse_request`,
//! `check_upgrade`, `offers_binary`, `subprotocol`, `header` and `redact` (server side) and `parse_response`
//! (the client reads server and proxy answers) take it.
//!
//! Input: byte 0 is how the reader delivers (bits 0-6: piece size, 0 = up to the whole slice
//! at once as a `&[u8]` does; bit 7: an `Interrupted` error before every read), bytes 1-2 a
//! little-endian pad length: a `X-Pad: aaa…` line of that many `a` goes after the first line,
//! so that small inputs reach the size limit. The rest is the stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};
use wssh::ws::{self, HeadError, MAX_HEAD};

/// A reader that hands out `piece` bytes at a time (0: all it has), counting what it gave.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
    interrupt: bool,
    interrupted: bool,
    given: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt && !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupted = false;
        let limit = if self.piece == 0 {
            buf.len()
        } else {
            self.piece.min(buf.len())
        };
        let n = (&self.data[self.given..]).read(&mut buf[..limit])?;
        self.given += n;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (mode, pad, input) = (data[0], u16::from_le_bytes([data[1], data[2]]), &data[3..]);
    let stream = padded(input, pad as usize % (MAX_HEAD + 4096));

    let mut r = Pieces {
        data: &stream,
        piece: (mode & 0x7f) as usize,
        interrupt: mode & 0x80 != 0,
        interrupted: false,
        given: 0,
    };
    let got = ws::read_head(&mut r);

    // What read_head must do, whatever the pieces: a head is everything up to and including
    // the first blank line, and at most MAX_HEAD bytes long.
    let end = stream
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (&got, end) {
        (Ok((head, rest)), Some(end)) => {
            assert!(
                end <= MAX_HEAD,
                "head of {end} bytes accepted (MAX_HEAD {MAX_HEAD})"
            );
            assert_eq!(head.len(), end, "head is not cut at the first blank line");
            // Bytes read past the head belong to the tunnel: none dropped, none invented.
            assert_eq!(
                head.len() + rest.len(),
                r.given,
                "bytes read but not returned"
            );
            assert_eq!(&stream[..r.given], [&head[..], &rest[..]].concat());
        }
        (Ok(_), None) => panic!("head returned without a blank line"),
        (Err(HeadError::Empty), _) => assert!(stream.is_empty(), "Empty with bytes to read"),
        (Err(HeadError::TooLarge), end) => {
            assert!(
                end.map_or(stream.len() >= MAX_HEAD, |e| e > MAX_HEAD),
                "{end:?}"
            )
        }
        (Err(HeadError::Io(e)), end) => {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
            assert!(end.is_none() && !stream.is_empty() && stream.len() < MAX_HEAD);
        }
    }

    // The parsers see a head when there is one (as wssh does), else the raw bytes.
    let head = match &got {
        Ok((head, _)) => &head[..],
        Err(_) => &stream[..stream.len().min(MAX_HEAD)],
    };
    if let Ok(req) = ws::parse_request(head) {
        for (name, value) in &req.headers {
            assert_eq!(
                *name,
                name.to_ascii_lowercase(),
                "header names are stored lowercase"
            );
            assert_eq!(value.trim(), value, "header values are stored trimmed");
            assert!(ws::header(&req.headers, name).is_some());
        }
        if let Ok(accept) = ws::check_upgrade(&req) {
            assert_eq!(req.method, "GET");
            assert_eq!(
                ws::header(&req.headers, "sec-websocket-version"),
                Some("13")
            );
            assert_eq!(
                accept.len(),
                28,
                "Sec-WebSocket-Accept is base64 of 20 bytes"
            );
        }
        let _ = ws::offers_binary(&req);
        match ws::subprotocol(&req) {
            Ok(ws::Subprotocol::Binary) => {
                assert!(ws::offers_binary(&req), "binary selected without being offered")
            }
            Ok(ws::Subprotocol::Base64) => {
                assert!(!ws::offers_binary(&req), "base64 selected over binary")
            }
            _ => {}
        }
        let _ = wssh::redact::url(&req.target);
        let _ = ws::header(&req.headers, "x-forwarded-for");
        let _ = ws::header(&req.headers, "origin");
    }
    let _ = wssh::redact::head(&String::from_utf8_lossy(head));
    if let Ok(res) = ws::parse_response(head) {
        assert!(
            res.code <= 999,
            "status {} has more than three digits",
            res.code
        );
        let _ = ws::header(&res.headers, "sec-websocket-accept");
        let _ = ws::header(&res.headers, "content-length");
    }
});

/// `input` with a `X-Pad: ` line of `pad` bytes after its first line (or in front, if none).
fn padded(input: &[u8], pad: usize) -> Vec<u8> {
    if pad == 0 {
        return input.to_vec();
    }
    let at = input
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |i| i + 2);
    let mut s = Vec::with_capacity(input.len() + pad + 9);
    s.extend_from_slice(&input[..at]);
    s.extend_from_slice(b"X-Pad: ");
    s.resize(s.len() + pad, b'a');
    s.extend_from_slice(b"\r\n");
    s.extend_from_slice(&input[at..]);
    s
}
