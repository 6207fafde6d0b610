//! The byte stream under tungstenite, and the reader of the tunnel's binary data frames.
//!
//! Reading: a final, unfragmented binary frame (the only frame a busy tunnel carries) is read
//! here (`data_frame`): its header from a small read-ahead, its payload straight from the
//! socket into the buffer that becomes the message, unmasked in place. Every other frame
//! (control frames, text, fragments, and anything malformed or too large, which tungstenite
//! refuses) is handed to tungstenite whole and alone: its reads through `Read` stop at the end
//! of that frame, so tungstenite never holds a byte of the frame after it. tungstenite's own
//! path reads 4 KiB at a time, copies each payload three times and keeps a buffer the size of
//! the largest frame it has seen; here a 64 KiB frame takes two system calls and no copy, and a
//! quiet tunnel keeps no buffer (the read-ahead is freed whenever the socket has nothing more).
//!
//! Writing: a binary data frame is written here too (`queue_frame`): one copy (and the client's
//! mask) into a buffer kept while data flows, written on from where the socket stopped, where
//! tungstenite's path takes a fresh allocation per message, copies it twice and moves the
//! unsent rest to the front after every partial write. Whatever tungstenite writes later (a
//! pong, a Close) goes out only after that frame's last byte.

use crate::pump::MAX_FRAME;
use crate::tls::Stream;
use std::io::{self, Read, Write};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::Role;
use tungstenite::{Bytes, Error as WsError, Message, WebSocket};

/// The read-ahead: room for frame headers and the small frames behind them, taken in one read.
/// A payload that does not fit is read straight into its own buffer.
const AHEAD: usize = 4 * 1024;

/// How much of a frame's payload buffer is zero-filled ahead of the bytes that came: room for
/// one read. A peer that announces a large frame and sends it slowly holds only what it sent.
const STEP: usize = 64 * 1024;

/// A binary frame being read here.
struct Partial {
    /// The payload: `data[..filled]` came, the rest is room for the next read.
    data: Vec<u8>,
    filled: usize,
    /// The payload's length, from the header.
    len: usize,
    mask: Option<[u8; 4]>,
}

/// A frame header (RFC 6455, 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    /// The three reserved bits (no extension is negotiated: must be 0).
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Payload length.
    len: u64,
    /// Length of the header itself: 2 to 14 bytes.
    size: usize,
}

impl Header {
    /// The header at the start of `b`; `None` while `b` holds less than all of it.
    fn parse(b: &[u8]) -> Option<Header> {
        let (b0, b1) = (*b.first()?, *b.get(1)?);
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let masked = b1 & 0x80 != 0;
        let size = 2 + ext + if masked { 4 } else { 0 };
        let h = b.get(..size)?;
        let len = match ext {
            0 => u64::from(b1 & 0x7f),
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            _ => u64::from_be_bytes(h[2..10].try_into().unwrap()),
        };
        Some(Header {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0f,
            mask: masked.then(|| h[size - 4..].try_into().unwrap()),
            len,
            size,
        })
    }
}

/// A tunnel's stream: the read-ahead, the frame being read, and the frame being written.
pub struct Wire<S = Stream> {
    stream: S,
    role: Role,
    /// Bytes read from the socket, not yet taken: `ahead[pos..end]`. Made (zero-filled) when a
    /// header is wanted, freed when the socket has nothing more and nothing is left in it.
    ahead: Vec<u8>,
    pos: usize,
    end: usize,
    /// The binary frame being read here.
    frame: Option<Partial>,
    /// Bytes of the frame tungstenite is reading that it has not been handed yet; 0 at a frame
    /// boundary.
    theirs: u64,
    /// A fragmented message is open: every data frame up to its last is tungstenite's.
    fragmented: bool,
    /// The rest of the stream is tungstenite's: a frame longer than `MAX_FRAME` (which it
    /// refuses) or the end of the stream inside a header (which it reports).
    handed_over: bool,
    /// tungstenite owes the peer a reply (a pong) that a blocked socket kept: flush it before
    /// reading on, as tungstenite's own read does.
    owed: bool,
    /// A data frame queued by `queue_frame`, not all taken by the socket yet: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
}

impl<S: Read + Write> Wire<S> {
    /// `rest`: bytes read past the HTTP head, the start of the frames.
    pub fn new(stream: S, role: Role, rest: Vec<u8>) -> Wire<S> {
        Wire {
            stream,
            role,
            end: rest.len(),
            ahead: rest,
            pos: 0,
            frame: None,
            theirs: 0,
            fragmented: false,
            handed_over: false,
            owed: false,
            out: Vec::new(),
            sent: 0,
        }
    }

    /// The next message if it is a binary frame read here: its payload. `Ok(None)`: the next
    /// frame is tungstenite's (`WebSocket::read` takes it). Call only while tungstenite can
    /// still read (`WebSocket::can_read`). `WouldBlock` keeps what was read for the next call.
    pub fn data_frame(&mut self) -> Result<Option<Bytes>, WsError> {
        if self.frame.is_none() {
            if self.handed_over || self.theirs > 0 {
                return Ok(None);
            }
            let Some(h) = self.header()? else {
                self.handed_over = true;
                return Ok(None);
            };
            if !self.ours(&h) {
                self.hand_over(&h);
                return Ok(None);
            }
            self.pos += h.size;
            let len = h.len as usize;
            let mut data = Vec::with_capacity(len);
            let n = len.min(self.end - self.pos);
            data.extend_from_slice(&self.ahead[self.pos..self.pos + n]);
            self.pos += n;
            let mask = h.mask;
            self.frame = Some(Partial {
                data,
                filled: n,
                len,
                mask,
            });
        }
        let f = self.frame.as_mut().unwrap();
        while f.filled < f.len {
            if f.data.len() == f.filled {
                grow_zeroed(&mut f.data, STEP.min(f.len - f.filled));
            }
            match self.stream.read(&mut f.data[f.filled..]) {
                Ok(0) => {
                    return Err(WsError::Protocol(
                        ProtocolError::ResetWithoutClosingHandshake,
                    ))
                }
                Ok(n) => f.filled += n,
                Err(e) => return Err(WsError::Io(e)),
            }
        }
        let Partial { mut data, mask, .. } = self.frame.take().unwrap();
        if let Some(m) = mask {
            apply_mask(&mut data, m);
        }
        Ok(Some(data.into()))
    }

    /// A frame read here: final, binary, no reserved bit, masked as the peer's role must
    /// (RFC 6455, 5.1), within `MAX_FRAME`, and not inside a fragmented message. Everything
    /// tungstenite would refuse fails one of these, so it goes to tungstenite, which refuses it.
    fn ours(&self, h: &Header) -> bool {
        h.fin
            && h.rsv == 0
            && h.opcode == 2
            && !self.fragmented
            && h.mask.is_some() == (self.role == Role::Server)
            && h.len <= MAX_FRAME as u64
    }

    /// The frame with header `h` is tungstenite's: its reads stop at its end.
    fn hand_over(&mut self, h: &Header) {
        if h.len > MAX_FRAME as u64 {
            self.handed_over = true;
            return;
        }
        self.theirs = h.size as u64 + h.len;
        if h.opcode < 3 {
            // A data frame (continuation, text, binary): a message ends with its final frame.
            self.fragmented = !h.fin;
        }
    }

    /// The header of the next frame, all in `ahead[pos..]`; `None` at the end of the stream.
    fn header(&mut self) -> io::Result<Option<Header>> {
        loop {
            if let Some(h) = Header::parse(&self.ahead[self.pos..self.end]) {
                return Ok(Some(h));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// Read more into `ahead`, behind what it holds (moved to the front); 0 at the end of the
    /// stream.
    fn fill(&mut self) -> io::Result<usize> {
        self.ahead.copy_within(self.pos..self.end, 0);
        (self.pos, self.end) = (0, self.end - self.pos);
        if self.ahead.len() < AHEAD {
            self.ahead.resize(AHEAD, 0);
        }
        match self.stream.read(&mut self.ahead[self.end..]) {
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(e) => {
                if self.end == 0 {
                    // Nothing more for now (or an error): give the buffer back.
                    self.ahead = Vec::new();
                }
                Err(e)
            }
        }
    }

    /// Queue one final binary frame holding `data`, masked with `mask` (a client's frame) or
    /// not (a server's), behind nothing: call it only when the frame before is all out (`flush`
    /// returned Ok). `flush` sends it.
    pub fn queue_frame(&mut self, data: &[u8], mask: Option<[u8; 4]>) {
        debug_assert_eq!(self.sent, self.out.len());
        self.out.clear();
        self.sent = 0;
        let masked = if mask.is_some() { 0x80 } else { 0 };
        self.out.push(0x82);
        let n = data.len();
        if n < 126 {
            self.out.push(masked | n as u8);
        } else if n <= 0xffff {
            self.out.push(masked | 126);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.out.push(masked | 127);
            self.out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        if let Some(m) = mask {
            self.out.extend_from_slice(&m);
        }
        let start = self.out.len();
        self.out.extend_from_slice(data);
        if let Some(m) = mask {
            apply_mask(&mut self.out[start..], m);
        }
    }

    /// Write what is left of the queued frame; `WouldBlock` (or the error) until it is all out.
    fn drain(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..])? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => self.sent += n,
            }
        }
        Ok(())
    }

    /// Give the frame buffer back once it is all out (a quiet tunnel keeps none).
    pub fn release(&mut self) {
        if self.sent == self.out.len() {
            (self.out, self.sent) = (Vec::new(), 0);
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Which end of the WebSocket this is.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// One attempt at the next message: a binary data frame read by `Wire`, any other frame by
/// tungstenite (which answers a ping or a Close by queueing the reply). A queued reply that a
/// full socket kept is flushed first, as tungstenite's own read does. `WouldBlock`: try again
/// when the socket is readable.
pub fn read_message<S: Read + Write>(ws: &mut WebSocket<Wire<S>>) -> Result<Message, WsError> {
    if ws.get_ref().owed {
        match ws.flush() {
            Ok(()) => ws.get_mut().owed = false,
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    if ws.can_read() {
        if let Some(data) = ws.get_mut().data_frame()? {
            return Ok(Message::Binary(data));
        }
    }
    let r = ws.read();
    if matches!(r, Ok(Message::Ping(_))) {
        ws.get_mut().owed = true;
    }
    r
}

impl<S: Read + Write> Read for Wire<S> {
    /// tungstenite's reads: the frame handed to it, never past its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.frame.is_some() {
            let msg = "tungstenite read inside a frame wssh was reading";
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        if !self.handed_over && self.theirs == 0 {
            match self.header()? {
                Some(h) => self.hand_over(&h),
                None => self.handed_over = true,
            }
        }
        let mut want = buf.len();
        if !self.handed_over {
            want = want.min(usize::try_from(self.theirs).unwrap_or(usize::MAX));
        }
        // tungstenite asks for little at a time (its read buffer is small): serve it from the
        // read-ahead, so that a large frame of its still takes a read per `AHEAD` bytes.
        if self.pos == self.end && 0 < want && want < AHEAD && self.fill()? == 0 {
            return Ok(0);
        }
        let n = if self.pos < self.end {
            let n = want.min(self.end - self.pos);
            buf[..n].copy_from_slice(&self.ahead[self.pos..self.pos + n]);
            self.pos += n;
            n
        } else {
            self.stream.read(&mut buf[..want])?
        };
        if !self.handed_over {
            self.theirs -= n as u64;
        }
        Ok(n)
    }
}

impl<S: Read + Write> Write for Wire<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.drain()?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.stream.flush()
    }
}

/// `v` longer by `n` zero bytes, within the capacity it was made with. A `memset` at any
/// optimisation level: `Vec::resize` is a loop a byte at a time in the static build (opt-level
/// "z"), which took 6 instructions a byte there.
fn grow_zeroed(v: &mut Vec<u8>, n: usize) {
    assert!(n <= v.capacity() - v.len(), "beyond the frame's buffer");
    // SAFETY: the n bytes after len lie within the allocation (checked above), and they are
    // all written before len is moved over them.
    unsafe {
        std::ptr::write_bytes(v.as_mut_ptr().add(v.len()), 0, n);
        v.set_len(v.len() + n);
    }
}

/// XOR `data` with the 4-byte `mask` repeated (RFC 6455, 5.3), eight bytes at a time.
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let m = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = data.chunks_exact_mut(8);
    for w in &mut words {
        let x = u64::from_ne_bytes((&*w).try_into().unwrap()) ^ m;
        w.copy_from_slice(&x.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so at mask[0].
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// A check that reading through `Wire` is reading through tungstenite alone, for the tests and
/// the fuzz target `frames`: the same byte stream, cut into the same pieces with `WouldBlock`
/// between them, gives the same messages, the same error, and (as a server, whose frames are
/// not masked with random keys) the same bytes written back.
pub mod differential {
    use super::{read_message, Wire};
    use std::io::{self, Read, Write};
    use tungstenite::protocol::Role;
    use tungstenite::{Error as WsError, Message, WebSocket};

    /// A peer's bytes handed out `piece` at a time (0: as much as asked), with `WouldBlock`
    /// before every read when `block`; what is written is kept.
    pub struct Script<'a> {
        data: &'a [u8],
        at: usize,
        reads: usize,
        piece: usize,
        block: bool,
        blocked: bool,
        written: Vec<u8>,
    }

    impl Read for Script<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            self.blocked = !self.blocked;
            if self.block && self.blocked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let want = if self.piece == 0 {
                buf.len()
            } else {
                self.piece.min(buf.len())
            };
            let n = want.min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Script<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What a reader made of a stream: each message with the count of bytes written back by
    /// then, the error that ended it (`None`: it never ended), all it wrote, and its reads.
    struct Outcome {
        messages: Vec<(Message, usize)>,
        end: Option<String>,
        written: Vec<u8>,
        reads: usize,
    }

    fn drive<W>(
        mut ws: W,
        mut next: impl FnMut(&mut W) -> Result<Message, WsError>,
        stream: impl Fn(&W) -> &Script,
        limit: usize,
    ) -> Outcome {
        let (mut messages, mut end) = (Vec::new(), None);
        for _ in 0..limit {
            match next(&mut ws) {
                Ok(m) => messages.push((m, stream(&ws).written.len())),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    end = Some(e.to_string());
                    break;
                }
            }
        }
        let s = stream(&ws);
        Outcome {
            messages,
            end,
            written: s.written.clone(),
            reads: s.reads,
        }
    }

    /// A peer's stream (see `Script`).
    pub fn script(data: &[u8], piece: usize, block: bool) -> Script<'_> {
        Script {
            data,
            at: 0,
            reads: 0,
            piece,
            block,
            blocked: false,
            written: Vec::new(),
        }
    }

    /// Read `data` as `role` both ways; `Err` says how they differ. `Ok`: the messages, and the
    /// reads from the stream that tungstenite alone and `Wire` took.
    pub fn compare(
        data: &[u8],
        role: Role,
        piece: usize,
        block: bool,
    ) -> Result<(usize, usize, usize), String> {
        // Every other read makes progress, and every attempt reads: 4 attempts a byte suffice.
        let limit = 4 * data.len() + 16;
        let config = Some(crate::pump::ws_config());
        let plain = WebSocket::from_raw_socket(script(data, piece, block), role, config);
        let a = drive(plain, |ws| ws.read(), |ws| ws.get_ref(), limit);
        let ours = Wire::new(script(data, piece, block), role, Vec::new());
        let wired = WebSocket::from_raw_socket(ours, role, config);
        let b = drive(wired, read_message, |ws| &ws.get_ref().stream, limit);
        if a.messages != b.messages {
            let kinds = |m: &[(Message, usize)]| {
                m.iter()
                    .map(|(m, w)| format!("{}:{} (written {w})", kind(m), m.len()))
                    .collect::<Vec<_>>()
            };
            return Err(format!(
                "messages: tungstenite {:?}, wire {:?}",
                kinds(&a.messages),
                kinds(&b.messages)
            ));
        }
        if a.end != b.end || a.end.is_none() {
            return Err(format!("end: tungstenite {:?}, wire {:?}", a.end, b.end));
        }
        // A client masks what it writes with random keys: only the lengths can match.
        let same = match role {
            Role::Server => a.written == b.written,
            Role::Client => a.written.len() == b.written.len(),
        };
        if !same {
            return Err(format!(
                "written: tungstenite {:?}, wire {:?}",
                a.written, b.written
            ));
        }
        Ok((a.messages.len(), a.reads, b.reads))
    }

    fn kind(m: &Message) -> &'static str {
        match m {
            Message::Binary(_) => "binary",
            Message::Text(_) => "text",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::Close(_) => "close",
            Message::Frame(_) => "frame",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::differential::{compare, script};
    use tungstenite::protocol::Role;

    /// A frame as a peer in `role` sends it (a client masks).
    fn frame(fin: bool, opcode: u8, payload: &[u8], role: Role) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        let masked = if role == Role::Client { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(masked | n as u8),
            n if n <= 0xffff => {
                f.push(masked | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(masked | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mut p = payload.to_vec();
        if role == Role::Client {
            let m = [0x37, 0xfa, 0x21, 0x3d];
            f.extend_from_slice(&m);
            super::apply_mask(&mut p, m);
        }
        f.extend_from_slice(&p);
        f
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    /// The frames a tunnel meets, from a peer in `from`, ending with a Close.
    fn session(from: Role) -> Vec<u8> {
        let f = |fin, op, p: &[u8]| frame(fin, op, p, from);
        [
            f(true, 2, b"hello"),
            f(true, 9, b"ping"),
            f(true, 2, &bytes(200 * 1024)),
            f(true, 2, b""),
            f(false, 2, b"frag"),
            f(true, 9, b""),
            f(true, 0, b"mented"),
            f(true, 1, "t\u{e9}xt".as_bytes()),
            f(true, 2, &bytes(70_000)),
            f(true, 10, b"pong"),
            f(true, 8, &[0x03, 0xe8, b'b', b'y', b'e']),
        ]
        .concat()
    }

    /// Reader cuts: a byte at a time, odd sizes, the read-ahead's size, and all at once; each
    /// with and without `WouldBlock` before every read.
    const PIECES: [usize; 6] = [1, 7, 13, 4096, 65536, 0];

    #[test]
    fn wire_reads_what_tungstenite_reads_however_the_reads_are_cut() {
        for (peer, us) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            let s = session(peer);
            for piece in PIECES {
                for block in [false, true] {
                    let r = compare(&s, us, piece, block);
                    let (messages, _, _) =
                        r.unwrap_or_else(|e| panic!("{us:?}, piece {piece}, block {block}: {e}"));
                    assert_eq!(messages, 10, "{us:?}: the session's messages");
                }
            }
        }
    }

    #[test]
    fn a_large_binary_frame_takes_a_read_per_64_kib_not_per_kib() {
        let s = frame(true, 2, &bytes(1 << 20), Role::Client);
        let (messages, plain, wire) = compare(&s, Role::Server, 0, false).unwrap();
        assert_eq!(messages, 1);
        // The header (and the first 4 KiB) into the read-ahead, the rest straight into the
        // message a `STEP` at a time, then the end of the stream (seen by Wire, then by
        // tungstenite).
        let most = (1 << 20) / super::STEP + 4;
        assert!(
            wire <= most,
            "{wire} reads through Wire, at most {most} (tungstenite alone: {plain})"
        );
        assert!(plain > 100, "tungstenite alone took {plain} reads");
    }

    #[test]
    fn a_large_frame_sent_slowly_holds_only_what_came() {
        // A 1 MiB frame is announced and 100 bytes of it sent: its buffer is room for one read
        // past them, not the MiB.
        let f = frame(true, 2, &bytes(1 << 20), Role::Client);
        let mut w = super::Wire::new(script(&f[..114], 0, false), Role::Server, Vec::new());
        assert!(w.data_frame().is_err(), "the stream ends inside the frame");
        let p = w.frame.as_ref().expect("a frame in part");
        assert_eq!(p.filled, 100);
        assert!(
            p.data.len() <= 100 + super::STEP,
            "{} bytes zero-filled for 100 that came",
            p.data.len()
        );
    }

    #[test]
    fn what_tungstenite_refuses_it_still_refuses_through_wire() {
        let c = Role::Client;
        let cases: Vec<(&str, Vec<u8>, Role)> = vec![
            (
                "unmasked frame to a server",
                frame(true, 2, b"x", Role::Server),
                Role::Server,
            ),
            (
                "masked frame to a client",
                frame(true, 2, b"x", Role::Client),
                Role::Client,
            ),
            (
                "reserved bit",
                {
                    let mut f = frame(true, 2, b"x", c);
                    f[0] |= 0x40;
                    f
                },
                Role::Server,
            ),
            ("reserved opcode", frame(true, 3, b"x", c), Role::Server),
            (
                "frame over MAX_FRAME",
                frame(true, 2, &bytes(super::MAX_FRAME + 1), c),
                Role::Server,
            ),
            (
                "length with the top bit",
                {
                    let mut f = vec![0x82, 0xff];
                    f.extend_from_slice(&[0xff; 12]);
                    f
                },
                Role::Server,
            ),
            (
                "end of stream inside a payload",
                frame(true, 2, &bytes(10_000), c)[..5000].to_vec(),
                Role::Server,
            ),
            (
                "end of stream inside a header",
                frame(true, 2, &bytes(300), c)[..3].to_vec(),
                Role::Server,
            ),
            (
                "continuation without a start",
                frame(true, 0, b"x", c),
                Role::Server,
            ),
            (
                "binary inside a fragmented message",
                [frame(false, 2, b"a", c), frame(true, 2, b"b", c)].concat(),
                Role::Server,
            ),
            (
                "text that is not UTF-8",
                frame(true, 1, &[0xff, 0xfe], c),
                Role::Server,
            ),
            ("long ping", frame(true, 9, &[0; 126], c), Role::Server),
        ];
        for (what, s, us) in cases {
            for piece in PIECES {
                for block in [false, true] {
                    compare(&s, us, piece, block)
                        .unwrap_or_else(|e| panic!("{what}, piece {piece}, block {block}: {e}"));
                }
            }
        }
    }

    #[test]
    fn masking_matches_the_byte_by_byte_rule() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 100] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut got = data.clone();
            super::apply_mask(&mut got, mask);
            let expected: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(got, expected, "length {len}");
        }
    }
}
