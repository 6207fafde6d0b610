//! The byte stream under tungstenite: a read-ahead on plain TCP, so that one `recv(2)` takes
//! up to `AHEAD` bytes while tungstenite asks for 4 KiB at a time (its read buffer stays small
//! so that an idle tunnel stays small). The read-ahead is freed whenever the socket has nothing
//! more (`WouldBlock`): an idle tunnel holds none of it, a busy one reuses it. TLS streams pass
//! through (OpenSSL reads ahead by itself, see `tls`). It does not frame or parse anything.

use crate::tls::Stream;
use std::io::{self, Read, Write};

/// The most one read from a plain socket takes: one full data frame (`pump::CHUNK`) and its
/// header, so that a busy tunnel reads a frame in one system call.
pub const AHEAD: usize = 64 * 1024 + 16;

/// A tunnel's stream with its read-ahead.
pub struct Wire {
    stream: Stream,
    /// Bytes read from the socket, not yet handed on: `ahead[pos..end]`. No allocation while
    /// the tunnel is quiet; zero-filled once when it is made, and kept while data flows.
    ahead: Vec<u8>,
    pos: usize,
    end: usize,
}

impl Wire {
    pub fn new(stream: Stream) -> Wire {
        Wire {
            stream,
            ahead: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    pub fn get_ref(&self) -> &Stream {
        &self.stream
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !matches!(self.stream, Stream::Plain(_)) {
            return self.stream.read(buf);
        }
        if self.pos == self.end {
            if self.ahead.is_empty() {
                self.ahead = vec![0; AHEAD];
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
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
