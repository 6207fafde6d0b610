//! `--record`: each tunnel's payload to `FILE.N` in websockify's format, the JavaScript array
//! that noVNC's playback page loads. The encoder is pure (top of the file); around it, one
//! thread per recorded tunnel owns the file, fed copies of the payload over a bounded queue, so
//! a slow or full disk never stalls or changes the tunnel: recording stops instead, with one
//! warning. It does not choose what is recorded: `bridge` hands it what crosses the local side.

use crate::bridge::Observer;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first line of a recording.
pub const HEADER: &str = "var VNC_frame_data = [\n";
/// The last line; noVNC's player stops at `'EOF'`.
pub const TRAILER: &str = "'EOF'];\n";
/// What closes an entry.
pub const ENTRY_END: &str = "',\n";

/// Which way a payload went, as websockify marks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the target to the browser: `'{MS{...',`.
    ToBrowser,
    /// From the browser to the target: `'}MS}...',` (the player skips these).
    FromBrowser,
}

/// The start of an entry: the mark, milliseconds since the session began, the mark again.
pub fn entry_head(dir: Dir, ms: u64) -> String {
    let mark = match dir {
        Dir::ToBrowser => '{',
        Dir::FromBrowser => '}',
    };
    format!("'{mark}{ms}{mark}")
}

/// Append `data` escaped as websockify does it (Python's `latin1`, then `unicode_escape`, then
/// `'` as `\'`): printable ASCII as itself, `\\`, `\'`, `\n`, `\r`, `\t`, and every other byte
/// as `\xNN` in lowercase hex. A JavaScript string literal reads each back as one character
/// whose code is the byte.
pub fn escape(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in data {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(&[b'\\', b'x', HEX[b as usize >> 4], HEX[b as usize & 15]]),
        }
    }
}

/// How long `escape` makes `data`.
pub fn escaped_len(data: &[u8]) -> usize {
    data.iter()
        .map(|&b| match b {
            b'\\' | b'\'' | b'\n' | b'\r' | b'\t' => 2,
            0x20..=0x7e => 1,
            _ => 4,
        })
        .sum()
}

/// One whole entry, its line end included (the recorder writes large ones in pieces).
pub fn entry(dir: Dir, ms: u64, data: &[u8]) -> Vec<u8> {
    let mut out = entry_head(dir, ms).into_bytes();
    escape(data, &mut out);
    out.extend_from_slice(ENTRY_END.as_bytes());
    out
}

/// Payload a recorded tunnel may have waiting for the disk; past it, recording stops.
pub const QUEUE_BYTES: usize = 4 << 20;
/// Messages it may have waiting, the same.
const QUEUE_MESSAGES: usize = 1024;
/// How long the end of a tunnel waits for its recording's last line (a hung disk: no longer).
const FINISH_WAIT: Duration = Duration::from_secs(1);
/// Payload escaped at a time: the recorder's buffer is at most 4 times this.
const PIECE: usize = 16 * 1024;
/// Numbers tried past files that already exist, per session.
const MAX_SKIP: u64 = 1000;

/// The server's recorder: where recordings go, and the next session number.
pub struct Recorder {
    base: PathBuf,
    max: u64,
    /// Counts recorded sessions from 1, as websockify does; a number moves on only when its
    /// file was created (or already existed), so this server's numbers have no gaps.
    next: Arc<Mutex<u64>>,
}

impl Recorder {
    /// Record to `base.N`, each file at most `max` bytes.
    pub fn new(base: PathBuf, max: u64) -> Recorder {
        Recorder {
            base,
            max,
            next: Arc::new(Mutex::new(1)),
        }
    }

    /// Start recording tunnel `id`: the handle its threads feed. The file is created by the
    /// recording's own thread, not here; `None` (with a warning) if that thread cannot start.
    pub fn start(&self, id: u64) -> Option<Session> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_MESSAGES);
        let (done_tx, done) = mpsc::channel();
        let state = Arc::new(Flags::default());
        let start = Instant::now();
        let job = Job {
            base: self.base.clone(),
            next: self.next.clone(),
            max: self.max,
            rx,
            state: state.clone(),
            id,
            start,
            _done: done_tx,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{id}-rec"))
            .stack_size(crate::listen::STACK)
            .spawn(move || job.run());
        match spawned {
            Ok(_) => Some(Session {
                tx: Some(tx),
                state,
                id,
                done: Mutex::new(done),
            }),
            Err(e) => {
                log::warn!("conn-{id}: not recorded: cannot start a thread: {e}");
                None
            }
        }
    }
}

/// What a tunnel and its recording thread share.
#[derive(Default)]
struct Flags {
    /// Recording is over (queue full, size cap, disk error): the tunnel hands on nothing more.
    stopped: AtomicBool,
    /// Payload bytes handed on and not yet written.
    queued: AtomicUsize,
}

/// One payload on its way to the file.
struct Entry {
    dir: Dir,
    at: Instant,
    data: Vec<u8>,
}

/// A recorded tunnel's end of the queue. Dropped when the tunnel ends: the file then gets its
/// last line (waited for at most `FINISH_WAIT`).
pub struct Session {
    tx: Option<SyncSender<Entry>>,
    state: Arc<Flags>,
    id: u64,
    /// Ends when the recording's thread does (in a mutex only so that a session is `Sync`).
    done: Mutex<Receiver<()>>,
}

impl Session {
    /// Hand a copy on, never waiting: when the queue is full, recording stops (one warning).
    fn push(&self, dir: Dir, data: &[u8]) {
        let Some(tx) = self
            .tx
            .as_ref()
            .filter(|_| !self.state.stopped.load(Ordering::Relaxed))
        else {
            return;
        };
        let queued = self.state.queued.fetch_add(data.len(), Ordering::Relaxed) + data.len();
        let entry = || Entry {
            dir,
            at: Instant::now(),
            data: data.to_vec(),
        };
        let full = queued > QUEUE_BYTES
            || match tx.try_send(entry()) {
                Ok(()) => false,
                Err(TrySendError::Full(_)) => true,
                // The recording ended on its own and said why.
                Err(TrySendError::Disconnected(_)) => false,
            };
        if full && !self.state.stopped.swap(true, Ordering::Relaxed) {
            log::warn!(
                "conn-{}: recording stopped: the disk did not keep up (over {} MiB or {} \
                 messages waiting); the tunnel goes on",
                self.id,
                QUEUE_BYTES >> 20,
                QUEUE_MESSAGES
            );
        }
    }
}

impl Observer for Session {
    fn local_write(&self, data: &[u8]) {
        self.push(Dir::FromBrowser, data);
    }
    fn local_read(&self, data: &[u8]) {
        self.push(Dir::ToBrowser, data);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Ok(done) = self.done.get_mut() {
            let _ = done.recv_timeout(FINISH_WAIT);
        }
    }
}

/// A recording's thread: creates the file, writes what comes, ends it.
struct Job {
    base: PathBuf,
    next: Arc<Mutex<u64>>,
    max: u64,
    rx: Receiver<Entry>,
    state: Arc<Flags>,
    id: u64,
    start: Instant,
    /// Dropped when the job ends: tells the session its file is complete.
    _done: mpsc::Sender<()>,
}

impl Job {
    fn run(self) {
        let id = self.id;
        let (path, file) = match self.create() {
            Ok(x) => x,
            Err(e) => {
                self.state.stopped.store(true, Ordering::Relaxed);
                log::warn!("conn-{id}: not recorded: {e}; the tunnel goes on");
                return;
            }
        };
        log::info!("conn-{id}: recording to {}", path.display());
        if let Err(e) = self.write(BufWriter::with_capacity(64 * 1024, file), &path) {
            if !self.state.stopped.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "conn-{id}: recording {} stopped: {e}; the tunnel goes on",
                    path.display()
                );
            }
        }
    }

    /// Create the next `base.N` that does not exist yet: mode 0600, and never through a
    /// symlink (`create_new` fails on any existing name, a symlink included).
    fn create(&self) -> io::Result<(PathBuf, File)> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..MAX_SKIP {
            let mut name = self.base.clone().into_os_string();
            name.push(format!(".{next}"));
            let path = PathBuf::from(name);
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(f) => {
                    *next += 1;
                    return Ok((path, f));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => *next += 1,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            }
        }
        let msg = format!(
            "{}.N: {MAX_SKIP} numbers in a row are taken",
            self.base.display()
        );
        Err(io::Error::new(io::ErrorKind::AlreadyExists, msg))
    }

    /// Write entries as they come until the tunnel ends or recording stops, then the last
    /// line. The file never passes `max` bytes, its last line included.
    fn write(&self, mut w: impl Write, path: &Path) -> io::Result<()> {
        w.write_all(HEADER.as_bytes())?;
        let mut written = HEADER.len() as u64;
        let mut piece = Vec::with_capacity(PIECE * 4);
        loop {
            let e = match self.rx.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Empty) => {
                    // Nothing waiting: let what is written reach the file, then sleep.
                    w.flush()?;
                    match self.rx.recv() {
                        Ok(e) => e,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            if self.state.stopped.load(Ordering::Relaxed) {
                break;
            }
            let ms = e.at.saturating_duration_since(self.start).as_millis() as u64;
            let head = entry_head(e.dir, ms);
            let len = (head.len() + escaped_len(&e.data) + ENTRY_END.len()) as u64;
            if written + len + TRAILER.len() as u64 > self.max {
                if !self.state.stopped.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "conn-{}: recording {} stopped at its size cap ({} MiB); the tunnel \
                         goes on",
                        self.id,
                        path.display(),
                        self.max >> 20
                    );
                }
                break;
            }
            w.write_all(head.as_bytes())?;
            for chunk in e.data.chunks(PIECE) {
                piece.clear();
                escape(chunk, &mut piece);
                w.write_all(&piece)?;
            }
            w.write_all(ENTRY_END.as_bytes())?;
            written += len;
            self.state.queued.fetch_sub(e.data.len(), Ordering::Relaxed);
        }
        w.write_all(TRAILER.as_bytes())?;
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected texts made by websockify's own expression in Python 3:
    /// `"'{{{0}{{{1}',\n".format(ms, data.decode('latin1').encode('unicode_escape')
    /// .decode('ascii').replace("'", "\\'"))`, and `'}}{0}}}{1}'` for the other way.
    fn check(dir: Dir, ms: u64, data: &[u8], expected: &str) {
        let got = entry(dir, ms, data);
        assert_eq!(String::from_utf8(got).unwrap(), expected, "{data:?}");
        assert_eq!(
            escaped_len(data) + entry_head(dir, ms).len() + 3,
            expected.len()
        );
    }

    #[test]
    fn entries_are_escaped_as_websockify_does() {
        use Dir::*;
        check(ToBrowser, 0, b"RFB 003.008\n", "'{0{RFB 003.008\\n',\n");
        check(FromBrowser, 12, b"RFB 003.008\n", "'}12}RFB 003.008\\n',\n");
        check(ToBrowser, 5, b"", "'{5{',\n");
        check(
            FromBrowser,
            86_400_000,
            b"it's a \\ path\r\n\t",
            "'}86400000}it\\'s a \\\\ path\\r\\n\\t',\n",
        );
        check(ToBrowser, 7, b"\\'", "'{7{\\\\\\'',\n");
        check(
            ToBrowser,
            1,
            b"\xe9t\xe9\x00\x7f\x80\xff\x1b[0m",
            "'{1{\\xe9t\\xe9\\x00\\x7f\\x80\\xff\\x1b[0m',\n",
        );
        check(FromBrowser, 3, b"\"{}}{\"", "'}3}\"{}}{\"',\n");
        // Every byte, as Python prints it.
        let all: Vec<u8> = (0..=255).collect();
        let python = r##"\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"##;
        check(ToBrowser, 42, &all, &format!("'{{42{{{python}',\n"));
    }

    #[test]
    fn a_full_queue_stops_recording_at_once_and_never_waits() {
        // Nobody drains the queue here: a disk that stopped answering.
        for (piece, pushes) in [(64 * 1024, 100), (1, 2000)] {
            let (tx, rx) = mpsc::sync_channel(QUEUE_MESSAGES);
            let (done_tx, done) = mpsc::channel();
            let session = Session {
                tx: Some(tx),
                state: Arc::default(),
                id: 1,
                done: Mutex::new(done),
            };
            let data = vec![7u8; piece];
            let started = Instant::now();
            for _ in 0..pushes {
                session.local_read(&data);
                session.local_write(&data);
            }
            assert!(started.elapsed() < Duration::from_secs(1));
            assert!(session.state.stopped.load(Ordering::Relaxed));
            let queued: usize = rx.try_iter().map(|e| e.data.len()).sum();
            let fits = (QUEUE_BYTES / piece).min(QUEUE_MESSAGES);
            assert_eq!(queued, fits * piece, "piece {piece}");
            drop(done_tx);
        }
    }

    #[test]
    fn a_recording_is_a_header_entries_and_the_trailer() {
        let (tx, rx) = mpsc::sync_channel(8);
        let (done, _) = mpsc::channel();
        let start = Instant::now();
        let job = Job {
            base: PathBuf::new(),
            next: Arc::new(Mutex::new(1)),
            max: 1 << 20,
            rx,
            state: Arc::default(),
            id: 1,
            start,
            _done: done,
        };
        let at = start + Duration::from_millis(1500);
        for (dir, data) in [(Dir::ToBrowser, &b"RFB"[..]), (Dir::FromBrowser, b"ok")] {
            let data = data.to_vec();
            tx.send(Entry { dir, at, data }).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        job.write(&mut out, Path::new("x")).unwrap();
        let text = "var VNC_frame_data = [\n'{1500{RFB',\n'}1500}ok',\n'EOF'];\n";
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn the_size_cap_holds_to_the_byte_with_the_trailer_in() {
        let one = entry(Dir::ToBrowser, 0, b"0123456789").len() as u64;
        for (max, entries) in [
            (0, 0),
            (one - 1, 0),
            (one, 1),
            (2 * one - 1, 1),
            (2 * one, 2),
        ] {
            let max = HEADER.len() as u64 + TRAILER.len() as u64 + max;
            let (tx, rx) = mpsc::sync_channel(8);
            let (done, _) = mpsc::channel();
            let start = Instant::now();
            let job = Job {
                base: PathBuf::new(),
                next: Arc::new(Mutex::new(1)),
                max,
                rx,
                state: Arc::default(),
                id: 1,
                start,
                _done: done,
            };
            for _ in 0..3 {
                let data = b"0123456789".to_vec();
                let e = Entry {
                    dir: Dir::ToBrowser,
                    at: start,
                    data,
                };
                tx.send(e).unwrap();
            }
            drop(tx);
            let mut out = Vec::new();
            job.write(&mut out, Path::new("x")).unwrap();
            assert!(out.len() as u64 <= max, "{} > {max}", out.len());
            let expected = HEADER.len() as u64 + entries * one + TRAILER.len() as u64;
            assert_eq!(out.len() as u64, expected);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.matches("0123456789").count() as u64, entries, "{text}");
            assert!(text.ends_with(TRAILER));
            assert_eq!(job.state.stopped.load(Ordering::Relaxed), entries < 3);
        }
    }
}
