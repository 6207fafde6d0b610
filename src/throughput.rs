//! Throughput, both ends: `wssh server --probe` serves `/_wssh/probe` (an upgrade that never
//! reaches a target) and `wssh probe --bytes N` measures against it (`probe` words it). The exchange, in binary
//! messages: the client sends N bytes then an empty message (end of data); the server answers
//! with the count it received (8 bytes, big-endian); the client sends the count it wants back
//! (8 bytes, at most `MAX_DOWN`); the server sends that many bytes then an empty message; the
//! client closes.

use crate::pump::{Incoming, Shared};
use std::time::Instant;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// The endpoint's path (under the server's own prefix).
pub const PATH: &str = "/_wssh/probe";
/// Most bytes the server sends back for one request.
pub const MAX_DOWN: u64 = 1 << 30;
/// Size of each message the server and the probe send.
const PIECE: usize = 64 * 1024;

/// Is this request target the probe endpoint (query ignored)?
pub fn is_endpoint(target: &str) -> bool {
    target.split('?').next() == Some(PATH)
}

/// Serve one probe exchange on an open tunnel; returns (bytes received, bytes sent) and how
/// it ended, for the server's log line.
pub fn serve(t: &Shared) -> (u64, u64, String) {
    let (mut up, mut down) = (0u64, 0u64);
    // Up: count until the end-of-data message, and say the count.
    loop {
        match t.recv() {
            Ok(Incoming::Data(b)) if b.is_empty() => break,
            Ok(Incoming::Data(b)) => up += b.len() as u64,
            Ok(Incoming::Close(_) | Incoming::Ended) => return (up, down, "client closed".into()),
            Ok(other) => return (up, down, end(t, &format!("{other:?}"))),
            Err(e) => return (up, down, format!("{e}")),
        }
    }
    if let Err(e) = t.send(Message::binary(up.to_be_bytes().to_vec())) {
        return (up, down, format!("{e}"));
    }
    // Down: the count asked for, then end of data.
    let want = match t.recv() {
        Ok(Incoming::Data(b)) if b.len() == 8 => {
            u64::from_be_bytes(b[..8].try_into().unwrap_or_default()).min(MAX_DOWN)
        }
        Ok(Incoming::Close(_) | Incoming::Ended) => return (up, down, "client closed".into()),
        Ok(_) => return (up, down, end(t, "not a count")),
        Err(e) => return (up, down, format!("{e}")),
    };
    let piece = vec![0x5a; PIECE];
    while down < want {
        let n = (want - down).min(PIECE as u64) as usize;
        if let Err(e) = t.send_data(&piece[..n]) {
            return (up, down, format!("{e}"));
        }
        down += n as u64;
    }
    let _ = t.send(Message::binary(Vec::new()));
    loop {
        match t.recv() {
            Ok(Incoming::Close(_) | Incoming::Ended) | Err(_) => break,
            Ok(_) => {}
        }
    }
    t.flush_close();
    t.finish();
    (up, down, "probe done".into())
}

/// Close a misbehaving exchange; the reason for the log.
fn end(t: &Shared, why: &str) -> String {
    t.close(CloseCode::Protocol, "probe: unexpected message");
    format!("probe: unexpected message ({why})")
}

/// What the client measured: bytes and seconds each way.
pub struct Measured {
    pub up: u64,
    pub up_secs: f64,
    pub down: u64,
    pub down_secs: f64,
}

/// The client's side: `n` bytes each way over a tunnel opened to the endpoint.
pub fn measure(t: &Shared, n: u64) -> Result<Measured, String> {
    let start = Instant::now();
    let piece = vec![0xa5; PIECE];
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(PIECE as u64) as usize;
        t.send_data(&piece[..k])
            .map_err(|e| format!("sending: {e}"))?;
        sent += k as u64;
    }
    t.send(Message::binary(Vec::new()))
        .map_err(|e| format!("sending: {e}"))?;
    let got = match t.recv() {
        Ok(Incoming::Data(b)) if b.len() == 8 => {
            u64::from_be_bytes(b[..8].try_into().unwrap_or_default())
        }
        other => return Err(format!("no count from the server: {other:?}")),
    };
    let up_secs = start.elapsed().as_secs_f64();
    if got != n {
        return Err(format!("the server received {got} of {n} bytes"));
    }
    let want = n.min(MAX_DOWN);
    let down_start = Instant::now();
    t.send(Message::binary(want.to_be_bytes().to_vec()))
        .map_err(|e| format!("sending: {e}"))?;
    let mut down = 0u64;
    loop {
        match t.recv() {
            Ok(Incoming::Data(b)) if b.is_empty() => break,
            Ok(Incoming::Data(b)) => down += b.len() as u64,
            other => return Err(format!("the download ended early: {other:?}")),
        }
    }
    let down_secs = down_start.elapsed().as_secs_f64();
    t.close(CloseCode::Normal, "probe done");
    if down != want {
        return Err(format!("the server sent {down} of {want} bytes"));
    }
    Ok(Measured {
        up: n,
        up_secs,
        down,
        down_secs,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_path() {
        for (t, yes) in [
            ("/_wssh/probe", true),
            ("/_wssh/probe?x=1", true),
            ("/_wssh/probe/", false),
            ("/_wssh/probes", false),
            ("/", false),
        ] {
            assert_eq!(super::is_endpoint(t), yes, "{t}");
        }
    }
}
