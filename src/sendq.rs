//! Apple only: the socket under Secure Transport, with a send queue of its own, so that no
//! encrypted byte is ever left inside Secure Transport. Its `SSLWrite` reports success after
//! queuing records it could not send on a non-blocking socket and sends them only on a later
//! write or read (kornelski/rust-security-framework#138). Here the socket never answers
//! `WouldBlock` to Secure Transport: what the kernel does not take waits in this queue, and
//! `tls::Stream::flush` (which the pump calls after every message) drains it or says
//! `WouldBlock`, so the pump waits for writability and flushes again, as with OpenSSL.
//! It does not encrypt, and it is compiled elsewhere only for its unit tests.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Most bytes the queue holds: a data frame (64 KiB) and its records, plus a long run of small
/// control frames. Only a peer that reads nothing while it keeps pinging gets this far; its
/// tunnel then ends with an error instead of the queue growing.
const CAP: usize = 256 * 1024;

pub struct SendQ {
    tcp: TcpStream,
    queue: Vec<u8>,
}

impl SendQ {
    pub fn new(tcp: TcpStream) -> SendQ {
        SendQ {
            tcp,
            queue: Vec::new(),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Send what the queue holds, as far as the kernel takes it; `WouldBlock` if any is left.
    pub fn drain(&mut self) -> io::Result<()> {
        while !self.queue.is_empty() {
            match self.tcp.write(&self.queue) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// No payload in a debug line: only how much waits.
impl std::fmt::Debug for SendQ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SendQ({} bytes queued)", self.queue.len())
    }
}

impl Read for SendQ {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for SendQ {
    /// Takes all of `buf` (or fails): what the kernel refuses is queued behind what is queued.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.drain() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        let mut sent = 0;
        if self.queue.is_empty() {
            match self.tcp.write(buf) {
                Ok(n) => sent = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let rest = &buf[sent..];
        if self.queue.len() + rest.len() > CAP {
            return Err(io::Error::other("the peer reads nothing: send queue full"));
        }
        self.queue.extend_from_slice(rest);
        Ok(buf.len())
    }

    /// Secure Transport's own flush (after each of its writes) lands here: send what the kernel
    /// takes, and never `WouldBlock`, which would make it keep records back again.
    fn flush(&mut self) -> io::Result<()> {
        match self.drain() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    fn pair() -> (SendQ, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (SendQ::new(a), b)
    }

    #[test]
    fn every_byte_taken_goes_out_in_order_once_drained() {
        let (mut q, mut peer) = pair();
        // Until well past what the socket buffers hold, while the peer reads nothing yet.
        let mut want = Vec::new();
        for i in 0..1000u32 {
            let c = vec![i as u8; 60 * 1024];
            assert_eq!(q.write(&c).unwrap(), c.len());
            q.flush().unwrap(); // Secure Transport's flush never blocks it
            want.extend_from_slice(&c);
            if q.queue.len() > 100 * 1024 {
                break;
            }
        }
        assert!(
            q.queue.len() > 100 * 1024,
            "the kernel took everything: no test"
        );
        let n = want.len();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; n];
            peer.read_exact(&mut got).unwrap();
            got
        });
        let end = Instant::now() + Duration::from_secs(10);
        while let Err(e) = q.drain() {
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            assert!(Instant::now() < end, "the queue did not drain");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(reader.join().unwrap() == want, "bytes lost or out of order");
    }

    #[test]
    fn a_peer_that_reads_nothing_fills_the_queue_to_an_error() {
        let (mut q, _peer) = pair();
        let chunk = vec![7u8; 64 * 1024];
        let err = (0..100)
            .find_map(|_| q.write(&chunk).err())
            .expect("the queue grew without bound");
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(q.queue.len() <= CAP);
    }
}
