//! The byte stream under tungstenite: a read-ahead on plain TCP, so that one `recv(2)` takes
//! up to `AHEAD` bytes while tungstenite asks for 4 KiB at a time (its read buffer stays small
//! so that an idle tunnel stays small). The read-ahead is freed whenever the socket has nothing
//! more (`WouldBlock`): an idle tunnel holds none of it, a busy one reuses it. TLS streams pass
//! through. A binary data frame is written here, around tungstenite (`queue_frame`): one copy
//! (and the client's mask) into a buffer kept while data flows, written on from where the socket
//! stopped, where tungstenite's path takes a fresh allocation per message, copies it twice and
//! moves the unsent rest to the front after every partial write. Whatever tungstenite writes
//! later (a pong, a Close) goes out only after that frame's last byte. It parses nothing.

use crate::tls::Stream;
use std::io::{self, Read, Write};
use tungstenite::protocol::Role;

/// The most one read from a plain socket takes: one full data frame (`pump::CHUNK`) and its
/// header, so that a busy tunnel reads a frame in one system call.
pub const AHEAD: usize = 64 * 1024 + 16;

/// A tunnel's stream with its read-ahead.
pub struct Wire {
    stream: Stream,
    role: Role,
    /// Bytes read from the socket, not yet handed on: `ahead[pos..end]`. Made (zero-filled)
    /// when a read fills tungstenite's buffer, kept while data flows, freed at `WouldBlock`.
    ahead: Vec<u8>,
    pos: usize,
    end: usize,
    /// A data frame queued by `queue_frame`, not all taken by the socket yet: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
}

impl Wire {
    pub fn new(stream: Stream, role: Role) -> Wire {
        Wire {
            stream,
            role,
            ahead: Vec::new(),
            pos: 0,
            end: 0,
            out: Vec::new(),
            sent: 0,
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

    pub fn get_ref(&self) -> &Stream {
        &self.stream
    }

    /// Which end of the WebSocket this is.
    pub fn role(&self) -> Role {
        self.role
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !matches!(self.stream, Stream::Plain(_)) {
            return self.stream.read(buf);
        }
        if self.pos == self.end {
            // A read that fills tungstenite's buffer says more is waiting: read ahead from then
            // on. Until then (small frames, a fresh tunnel) no buffer of ours is touched.
            if self.ahead.is_empty() {
                let n = self.stream.read(buf)?;
                if n == buf.len() && n > 0 {
                    self.ahead = vec![0; AHEAD];
                }
                return Ok(n);
            }
            (self.pos, self.end) = (0, 0);
            match self.stream.read(&mut self.ahead) {
                Ok(n) => self.end = n,
                Err(e) => {
                    // Nothing more for now (or an error): give the buffer back.
                    self.ahead = Vec::new();
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.end - self.pos);
        buf[..n].copy_from_slice(&self.ahead[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.drain()?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.stream.flush()
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

#[cfg(test)]
mod tests {
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
