//! Fuzz target `frames`: the WebSocket frames a peer sends, read through `wire::Wire` (binary
//! data frames read by wssh, every other frame by tungstenite) and by tungstenite alone. They
//! must agree: the same messages, the same error at the end, the same replies written back by
//! the time of each message (`wire::differential::compare`).
//!
//! Input: byte 0 is how the reader delivers (bits 0-6: piece size, 0 = as much as asked; bit 7:
//! `WouldBlock` before every read), byte 1 bit 0 the role that reads (0: a server, reading a
//! client's masked frames; 1: a client). The rest is the stream of frames.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tungstenite::protocol::Role;
use wssh::wire::differential::compare;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let piece = (data[0] & 0x7f) as usize;
    let block = data[0] & 0x80 != 0;
    let role = if data[1] & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    if let Err(e) = compare(&data[2..], role, piece, block) {
        panic!("Wire and tungstenite differ: {e}");
    }
});
