//! `--web DIR`: static files for browsers (noVNC's page) on the server's own port, GET and HEAD.
//! Pure parts first: request target to a path inside DIR, content types, HTTP dates. Then the
//! I/O, which opens a file so that nothing outside DIR is ever read or revealed:
//! - on Linux, `openat2(2)` with `RESOLVE_BENEATH` relative to DIR: the kernel refuses every
//!   resolution that would leave DIR (`..`, absolute symlinks, symlinks leading out), so a file
//!   outside is never even opened, whatever a symlink is swapped to during the request. Where
//!   `openat2` is missing (kernels before 5.6, seccomp filters, other Unixes), `openat(2)`.
//! - then, always, the opened descriptor is checked, not the name: `fstat` says what it is
//!   (regular files and directories only), and the real path of the name (no symlinks) must lie
//!   in DIR, without a dotfile in it, and be that very file (same device and inode). A swap
//!   between the open and the check makes them differ: refused, never served.
//!
//! Symlinks that stay inside DIR are followed (Debian's noVNC has one). It does not route
//! upgrades, nor decide which paths belong to the server itself (`reserved` says, `server` acts).

use crate::ws::Request;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The web root and what it may show; built (and DIR checked) at start-up.
#[derive(Debug, Clone)]
pub struct Web {
    /// Canonical: absolute, without symlinks.
    root: PathBuf,
    listings: bool,
    dotfiles: bool,
}

/// How a page request was answered, for the connection's log.
#[derive(Debug, PartialEq, Eq)]
pub struct Served {
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// Why, for an answer other than 200 (lowercase, for a log line).
    pub note: &'static str,
}

/// A request path inside the root: its decoded segments, and whether it ended with `/`.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub segments: Vec<String>,
    pub slash: bool,
}

impl Resolved {
    /// The path relative to the root (`""` for the root itself).
    pub fn rel(&self) -> String {
        self.segments.join("/")
    }
}

/// The first path segment of the server's own pages and endpoints: never a file, never a target.
pub const RESERVED: &str = "_wssh";

/// Does this request target lie under `/_wssh/` (or is it `/_wssh`), in any encoding?
pub fn reserved(target: &str) -> bool {
    let path = path_of(target);
    // An absolute-form target (`http://host/_wssh/`) names the same path.
    let path = match path.split_once("://") {
        Some((_, after)) => after.find('/').map_or("", |i| &after[i..]),
        None => path,
    };
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let decoded = decode(first).map(|b| String::from_utf8_lossy(&b).into_owned());
    first == RESERVED || decoded.as_deref() == Some(RESERVED)
}

/// The path of a request target, without query or fragment.
pub fn path_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or("")
}

/// Map a request target to a path inside the root, or refuse it: 400 for what can only be an
/// attempt to leave the root or a malformed path, 404 for what must not be shown. Decodes
/// `%XX` once, per segment (so `%2f` cannot make a separator); refuses `.` and `..` in any
/// encoding, backslashes, NUL and control characters, invalid UTF-8 (overlong forms such as
/// `%c0%ae`), a `%` left after decoding (double encoding), empty segments (`//`, which also
/// keeps a `//host` form out), anything not starting with `/`; dotfiles are 404 unless allowed.
pub fn resolve(target: &str, dotfiles: bool) -> Result<Resolved, u16> {
    let path = path_of(target);
    let Some(rest) = path.strip_prefix('/') else {
        return Err(400); // absolute-form, authority-form, `*`
    };
    let raw: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::with_capacity(raw.len());
    let mut slash = false;
    for (i, r) in raw.iter().enumerate() {
        if r.is_empty() {
            match i + 1 == raw.len() {
                true => slash = true,
                false => return Err(400),
            }
            continue;
        }
        let bytes = decode(r).ok_or(400u16)?;
        let seg = String::from_utf8(bytes).map_err(|_| 400u16)?;
        let bad = |c: char| c.is_control() || matches!(c, '/' | '\\' | '%');
        if seg.chars().any(bad) || seg == "." || seg == ".." {
            return Err(400);
        }
        if seg.starts_with('.') && !dotfiles {
            return Err(404);
        }
        segments.push(seg);
    }
    if segments.first().is_some_and(|s| s == RESERVED) {
        return Err(404);
    }
    Ok(Resolved { segments, slash })
}

/// `%XX` decoded once; `None` for a `%` without two hex digits.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A path segment fit for a URL: everything but letters, digits and `-._~` percent-encoded.
fn encode(seg: &str) -> String {
    seg.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Text fit for HTML, in an element or a quoted attribute.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// The content type of a file name, from a built-in table (no system files: the same answer on
/// every box). `.js` must be `text/javascript`: browsers refuse ES modules served otherwise.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "mp3" => "audio/mpeg",
        "oga" | "ogg" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month 1-12, day 1-31) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), to the second; times before 1970 as 1970.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[(days + 4).rem_euclid(7) as usize],
        MONTHS[m as usize - 1],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parse an IMF-fixdate; `None` for anything else (the obsolete forms too): a header that
/// cannot be read is ignored, as RFC 9110 says.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let p: Vec<&str> = s.trim().split(' ').collect();
    let [wd, day, mon, year, time, "GMT"] = p[..] else {
        return None;
    };
    let num = |t: &str, len: usize| -> Option<u32> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let wd = DAYS.iter().position(|d| wd.strip_suffix(',') == Some(d))?;
    let m = MONTHS.iter().position(|x| *x == mon)? as u32 + 1;
    let (d, y) = (num(day, 2)?, i64::from(num(year, 4)?));
    let t: Vec<&str> = time.split(':').collect();
    let [h, mi, sec] = t[..] else { return None };
    let (h, mi, sec) = (num(h, 2)?, num(mi, 2)?, num(sec, 2)?);
    let days = days_from_civil(y, m, d);
    // 31 Feb, 25:00, the wrong weekday, before 1970: not a date.
    let valid = civil(days) == (y, m, d) && h < 24 && mi < 60 && sec <= 60 && days >= 0;
    if !valid || (days + 4).rem_euclid(7) as usize != wd {
        return None;
    }
    let secs = days as u64 * 86_400 + u64::from(h * 3600 + mi * 60 + sec);
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Seconds since 1970 of a modification time (HTTP dates have no finer grain).
fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// An answer about to be written.
pub struct Reply {
    pub status: u16,
    pub ctype: &'static str,
    /// Extra header lines, each ending in CRLF.
    pub extra: String,
    pub body: Body,
    pub note: &'static str,
}

pub enum Body {
    Text(String),
    /// A file and the length its `fstat` gave.
    File(File, u64),
    /// 304: headers only.
    None,
}

impl Reply {
    /// A short text answer; the body is one line (a page's error), or `text` as it is (HTML).
    pub fn text(status: u16, ctype: &'static str, text: String, note: &'static str) -> Reply {
        Reply {
            status,
            ctype,
            extra: String::new(),
            body: Body::Text(text),
            note,
        }
    }

    pub fn error(status: u16, note: &'static str) -> Reply {
        Reply::text(
            status,
            "text/plain; charset=utf-8",
            format!("{note}\n"),
            note,
        )
    }

    fn len(&self) -> u64 {
        match &self.body {
            Body::Text(t) => t.len() as u64,
            Body::File(_, n) => *n,
            Body::None => 0,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

/// What a request found in the root.
enum Found {
    File(File, Metadata),
    /// A directory asked for without its slash: where it is.
    Moved(String),
    /// A directory listing's HTML.
    Listing(String),
}

impl Web {
    /// Check DIR at start-up: it must exist and be a directory; kept canonical.
    pub fn new(dir: &Path, listings: bool, dotfiles: bool) -> Result<Web, String> {
        if !cfg!(unix) {
            return Err("--web is supported on Unix only".into());
        }
        let root = dir
            .canonicalize()
            .map_err(|e| format!("--web {}: {e}", dir.display()))?;
        if !root.is_dir() {
            return Err(format!("--web {}: not a directory", dir.display()));
        }
        Ok(Web {
            root,
            listings,
            dotfiles,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answer one GET or HEAD (anything else gets 405) on `out`; the caller has read its head,
    /// and reads the next request only if `keep_alive` says so.
    pub fn serve(&self, req: &Request, out: &mut impl Write) -> io::Result<Served> {
        respond(req, out, |r| self.answer(r))
    }

    /// The reply to a GET or HEAD.
    fn answer(&self, req: &Request) -> Reply {
        let r = match resolve(&req.target, self.dotfiles) {
            Ok(r) => r,
            Err(400) => return Reply::error(400, "bad path"),
            Err(_) => return Reply::error(404, "not found"),
        };
        let (file, meta) = match self.find(&r, query(&req.target)) {
            Ok(Found::File(f, m)) => (f, m),
            Ok(Found::Moved(to)) => {
                let mut reply = Reply::error(301, "a directory: its address ends with /");
                reply.extra = format!("Location: {to}\r\n");
                return reply;
            }
            Ok(Found::Listing(html)) => {
                return Reply::text(200, "text/html; charset=utf-8", html, "listing")
            }
            Err(note) => return Reply::error(404, note),
        };
        let name = match r.slash {
            true => "index.html",
            false => r.segments.last().map_or("", String::as_str),
        };
        let mtime = meta.modified().ok().and_then(unix_secs);
        let since = crate::ws::header(&req.headers, "if-modified-since")
            .and_then(parse_http_date)
            .and_then(unix_secs);
        let mut reply = Reply {
            status: 200,
            ctype: content_type(name),
            extra: String::new(),
            body: Body::File(file, meta.len()),
            note: "",
        };
        if let Some(m) = mtime {
            let date = http_date(UNIX_EPOCH + Duration::from_secs(m));
            reply.extra = format!("Last-Modified: {date}\r\n");
            if since.is_some_and(|s| m <= s) {
                (reply.status, reply.body, reply.note) = (304, Body::None, "not modified");
            }
        }
        reply
    }

    /// Open what a resolved path names, safely (see the module's top), and decide what it is.
    fn find(&self, r: &Resolved, query: Option<&str>) -> Result<Found, &'static str> {
        let rel = r.rel();
        let (opened, meta) = self.open(&rel)?;
        if meta.is_file() {
            return match r.slash {
                true => Err("a file asked for as a directory"),
                false => Ok(Found::File(opened, meta)),
            };
        }
        if !meta.is_dir() {
            return Err("not a regular file");
        }
        if !r.slash {
            // Relative, so it works under any prefix a proxy adds; `./` so that no segment
            // (`a:b`) reads as a scheme, and never `//host`.
            let last = r.segments.last().map_or("", String::as_str);
            let q = query.map_or(String::new(), |q| format!("?{q}"));
            return Ok(Found::Moved(format!("./{}/{q}", encode(last))));
        }
        let index = match rel.is_empty() {
            true => "index.html".to_string(),
            false => format!("{rel}/index.html"),
        };
        match self.open(&index) {
            Ok((f, m)) if m.is_file() => return Ok(Found::File(f, m)),
            Ok(_) | Err(_) if !self.listings => {
                return Err("no index.html (and no --web-listings)")
            }
            _ => {}
        }
        let names = sys::entries(&opened).map_err(|_| "cannot list the directory")?;
        Ok(Found::Listing(self.listing(r, names)))
    }

    /// Open `rel` beneath the root and check the opened file: see the module's top.
    fn open(&self, rel: &str) -> Result<(File, Metadata), &'static str> {
        let file = sys::open_beneath(&self.root, rel).map_err(|e| {
            log::debug!("web root: open {rel:?}: {e}");
            "not found"
        })?;
        let meta = file.metadata().map_err(|_| "cannot read")?;
        let real = self
            .root
            .join(rel)
            .canonicalize()
            .map_err(|_| "not found")?;
        let inside = real
            .strip_prefix(&self.root)
            .map_err(|_| "leads out of the web root")?;
        let dotted = inside
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
        if dotted && !self.dotfiles {
            return Err("leads to a dotfile");
        }
        let named = std::fs::metadata(&real).map_err(|_| "not found")?;
        if !sys::same_file(&meta, &named) {
            return Err("changed while it was opened");
        }
        Ok((file, meta))
    }

    /// A minimal listing: names escaped, links relative, directories with `/`, dotfiles only
    /// with `--web-dotfiles`.
    fn listing(&self, r: &Resolved, mut names: Vec<(String, bool)>) -> String {
        names.retain(|(n, _)| n != "." && n != ".." && (self.dotfiles || !n.starts_with('.')));
        names.sort_by_key(|(n, _)| n.to_lowercase());
        let mut path = format!("/{}", r.rel());
        if !r.segments.is_empty() {
            path.push('/');
        }
        let title = escape(&path);
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
             <body><h1>{title}</h1>\n<ul>\n"
        );
        for (n, is_dir) in names {
            let slash = if is_dir { "/" } else { "" };
            html += &format!(
                "<li><a href=\"./{}{slash}\">{}{slash}</a></li>\n",
                escape(&encode(&n)),
                escape(&n)
            );
        }
        html + "</ul></body></html>\n"
    }
}

/// Answer one GET or HEAD with what `answer` makes of it (anything else gets 405, a request
/// with a body 400) on `out`; the caller reads the next request only if `keep_alive` says so.
pub fn respond(
    req: &Request,
    out: &mut impl Write,
    answer: impl FnOnce(&Request) -> Reply,
) -> io::Result<Served> {
    let head_only = req.method == "HEAD";
    let mut keep = req.keep_alive();
    let reply = if !matches!(req.method.as_str(), "GET" | "HEAD") {
        let mut r = Reply::error(405, "method not allowed: GET and HEAD only");
        r.extra = "Allow: GET, HEAD\r\n".into();
        keep = false; // its body, if any, is unread
        r
    } else if has_body(req) {
        // Its body would be read as the next request: refuse, and end the connection.
        keep = false;
        Reply::error(400, "a GET or HEAD request has no body")
    } else {
        answer(req)
    };
    // After a refusal of the path itself, nothing more from this client.
    keep &= reply.status != 400;
    write_reply(out, reply, keep, head_only)
}

/// The query of a request target, if any.
pub fn query(target: &str) -> Option<&str> {
    let q = target.split('#').next()?.split_once('?')?.1;
    Some(q)
}

/// Does a request announce a body?
fn has_body(req: &Request) -> bool {
    let h = &req.headers;
    let length = crate::ws::header(h, "content-length").is_some_and(|l| l.trim() != "0");
    length || crate::ws::header(h, "transfer-encoding").is_some()
}

/// Write an answer: the head, then (not for HEAD, nor 304) exactly the announced body.
fn write_reply(
    out: &mut impl Write,
    reply: Reply,
    keep: bool,
    head_only: bool,
) -> io::Result<Served> {
    let status = reply.status;
    let length = match status {
        304 => String::new(),
        _ => format!("Content-Length: {}\r\n", reply.len()),
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\n{length}{}Date: {}\r\n\
         Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: {}\r\n\r\n",
        reason(status),
        reply.ctype,
        reply.extra,
        http_date(SystemTime::now()),
        if keep { "keep-alive" } else { "close" },
    );
    out.write_all(head.as_bytes())?;
    let mut served = Served {
        status,
        bytes: 0,
        keep_alive: keep,
        note: reply.note,
    };
    match reply.body {
        _ if head_only => {}
        Body::None => {}
        Body::Text(t) => {
            out.write_all(t.as_bytes())?;
            served.bytes = t.len() as u64;
        }
        Body::File(f, len) => {
            served.bytes = send(f, len, out)?;
            if served.bytes < len {
                // The file shrank: the announced length cannot be kept, so the connection ends.
                served.keep_alive = false;
            }
        }
    }
    out.flush()?;
    Ok(served)
}

/// Copy at most `len` bytes of a file (it may change meanwhile) through a 16 KiB buffer.
fn send(f: File, len: u64, out: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut f = f.take(len);
    let mut sent = 0;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => return Ok(sent),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        sent += n as u64;
    }
}

#[cfg(unix)]
mod sys {
    //! Opening beneath a directory, and reading a directory through its descriptor.
    use std::ffi::{CStr, CString};
    use std::fs::{File, Metadata};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// Read only; no controlling terminal; a FIFO does not block the open.
    const FLAGS: libc::c_int = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

    fn check(r: libc::c_int) -> io::Result<OwnedFd> {
        match r {
            -1 => Err(io::Error::last_os_error()),
            // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
            fd => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        }
    }

    /// Open `rel` (segments checked by `resolve`; `""` for the directory itself) beneath `root`.
    pub fn open_beneath(root: &Path, rel: &str) -> io::Result<File> {
        let c = |b: &[u8]| CString::new(b).map_err(|_| io::ErrorKind::InvalidInput);
        let root_c = c(root.as_os_str().as_bytes())?;
        let rel_c = c(if rel.is_empty() { b"." } else { rel.as_bytes() })?;
        // SAFETY: open(2) with a NUL-terminated path.
        let dir = check(unsafe {
            libc::open(
                root_c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(File::from(beneath(dir.as_raw_fd(), &rel_c)?))
    }

    #[cfg(target_os = "linux")]
    fn beneath(dir: RawFd, rel: &CStr) -> io::Result<OwnedFd> {
        use std::sync::atomic::{AtomicBool, Ordering};
        static MISSING: AtomicBool = AtomicBool::new(false);
        /// `struct open_how` (linux/openat2.h).
        #[repr(C)]
        struct OpenHow {
            flags: u64,
            mode: u64,
            resolve: u64,
        }
        if !MISSING.load(Ordering::Relaxed) {
            let how = OpenHow {
                flags: FLAGS as u64,
                mode: 0,
                resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            };
            // SAFETY: openat2(2) with a valid directory, path and `open_how` of the given size.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir,
                    rel.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            let r = check(r as libc::c_int);
            match r.as_ref().map_err(io::Error::raw_os_error) {
                // Not there (before 5.6), or refused by a seccomp filter: the check after the
                // open is then the only guard.
                Err(Some(libc::ENOSYS | libc::EPERM)) => {
                    MISSING.store(true, Ordering::Relaxed);
                    log::warn!("web root: openat2 unavailable; each opened file is still checked");
                }
                _ => return r,
            }
        }
        plain(dir, rel)
    }

    #[cfg(not(target_os = "linux"))]
    fn beneath(dir: RawFd, rel: &CStr) -> io::Result<OwnedFd> {
        plain(dir, rel)
    }

    fn plain(dir: RawFd, rel: &CStr) -> io::Result<OwnedFd> {
        // SAFETY: openat(2) with a valid directory and a NUL-terminated path.
        check(unsafe { libc::openat(dir, rel.as_ptr(), FLAGS) })
    }

    /// Are these the same file (device and inode)?
    pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
        (a.dev(), a.ino()) == (b.dev(), b.ino())
    }

    /// The names in an opened directory, each with whether it is a directory (not following
    /// symlinks), read through the descriptor so that no path is looked up again.
    pub fn entries(dir: &File) -> io::Result<Vec<(String, bool)>> {
        // SAFETY: dup(2) of a descriptor we hold; fdopendir then owns the copy, closedir frees it.
        let fd = check(unsafe { libc::dup(dir.as_raw_fd()) })?;
        let raw = fd.as_raw_fd();
        let d = unsafe { libc::fdopendir(raw) };
        if d.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(fd); // now the DIR's
        let mut out = Vec::new();
        loop {
            // SAFETY: readdir on an open DIR; the entry is valid until the next call.
            let ent = unsafe { libc::readdir(d) };
            if ent.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstatat on the directory's own descriptor, name from readdir.
            let r =
                unsafe { libc::fstatat(raw, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
            let is_dir = r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            out.push((name.to_string_lossy().into_owned(), is_dir));
        }
        // SAFETY: closes the DIR and the descriptor it owns.
        unsafe { libc::closedir(d) };
        Ok(out)
    }
}

#[cfg(not(unix))]
mod sys {
    //! `Web::new` refuses to start elsewhere: there is no way to check an opened file here yet.
    use std::fs::{File, Metadata};
    use std::io;
    use std::path::Path;

    pub fn open_beneath(_root: &Path, _rel: &str) -> io::Result<File> {
        Err(io::ErrorKind::Unsupported.into())
    }
    pub fn same_file(_a: &Metadata, _b: &Metadata) -> bool {
        false
    }
    pub fn entries(_dir: &File) -> io::Result<Vec<(String, bool)>> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected`: the path inside the root (`/` at the end for a directory form), or a status.
    fn check(input: &str, expected: Result<&str, u16>) {
        let got = resolve(input, false).map(|r| {
            let slash = if r.slash && !r.segments.is_empty() {
                "/"
            } else {
                ""
            };
            format!("{}{slash}", r.rel())
        });
        assert_eq!(got.as_deref().map_err(|e| *e), expected, "{input}");
    }

    #[test]
    fn paths() {
        check("/", Ok(""));
        check("/vnc.html", Ok("vnc.html"));
        check("/vnc.html?autoconnect=1&password=x", Ok("vnc.html"));
        check("/app/ui.js#frag", Ok("app/ui.js"));
        check("/app/", Ok("app/"));
        check("/app/images", Ok("app/images"));
        check("/a%20b.txt", Ok("a b.txt"));
        check("/caf%C3%A9", Ok("café"));
        check("/x..y", Ok("x..y"));
        check("/..;/x", Err(404)); // a dotfile, not a way up
        check("/x/a..;", Ok("x/a..;"));
        // Leaving the root, in every spelling.
        check("/..", Err(400));
        check("/../etc/passwd", Err(400));
        check("/app/../../x", Err(400));
        check("/./x", Err(400));
        check("/%2e%2e/x", Err(400));
        check("/%2E%2e/x", Err(400));
        check("/.%2e/x", Err(400));
        check("/%2e/x", Err(400));
        check("/..%2fetc%2fpasswd", Err(400));
        check("/app%2f..%2f..%2fx", Err(400));
        check("/%252e%252e/x", Err(400));
        check("/%25", Err(400));
        check("/..\\x", Err(400));
        check("/a\\b", Err(400));
        check("/..%5cx", Err(400));
        check("/%c0%ae%c0%ae/x", Err(400));
        check("/%e0%80%ae", Err(400));
        check("/%ff", Err(400));
        check("/x%00.html", Err(400));
        check("/x%0a", Err(400));
        check("/%", Err(400));
        check("/%2", Err(400));
        check("/%zz", Err(400));
        check("//evil.example/", Err(400));
        check("//evil.example/%2f..", Err(400));
        check("/a//b", Err(400));
        check("http://evil.example/x", Err(400));
        check("evil.example:80", Err(400));
        check("*", Err(400));
        check("", Err(400));
        // Dotfiles, and the server's own prefix.
        check("/.git/config", Err(404));
        check("/.env", Err(404));
        check("/app/.hidden/x", Err(404));
        check("/%2eenv", Err(404));
        check("/_wssh/", Err(404));
        check("/_wssh", Err(404));
        check("/%5fwssh/x", Err(404));
        check("/app/_wssh/x", Ok("app/_wssh/x"));
        assert_eq!(resolve("/.env", true).map(|r| r.rel()), Ok(".env".into()));
        assert_eq!(resolve("/..", true), Err(400));
    }

    #[test]
    fn reserved_prefix() {
        for (target, want) in [
            ("/_wssh/", true),
            ("/_wssh", true),
            ("/_wssh/probe?x=1", true),
            ("/%5Fwssh/", true),
            ("/_wssh?x", true),
            ("http://gw/_wssh/x", true),
            ("/_wsshx", false),
            ("/x/_wssh/", false),
            ("/", false),
            ("/websockify", false),
        ] {
            assert_eq!(reserved(target), want, "{target}");
        }
    }

    #[test]
    fn content_types() {
        for (name, want) in [
            ("app/ui.js", "text/javascript; charset=utf-8"),
            ("x.mjs", "text/javascript; charset=utf-8"),
            ("vnc.HTML", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("i.svg", "image/svg+xml"),
            ("defaults.json", "application/json"),
            ("ui.js.map", "application/json"),
            ("p.png", "image/png"),
            ("p.jpg", "image/jpeg"),
            ("p.gif", "image/gif"),
            ("favicon.ico", "image/x-icon"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("f.ttf", "font/ttf"),
            ("m.wasm", "application/wasm"),
            ("bell.mp3", "audio/mpeg"),
            ("bell.oga", "audio/ogg"),
            ("README.txt", "text/plain; charset=utf-8"),
            ("Makefile", "application/octet-stream"),
            ("x.exe", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), want, "{name}");
        }
    }

    #[test]
    fn dates() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        for (secs, text) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (4_133_980_799, "Fri, 31 Dec 2100 23:59:59 GMT"),
        ] {
            assert_eq!(http_date(at(secs)), text);
            assert_eq!(parse_http_date(text), Some(at(secs)), "{text}");
        }
        assert_eq!(
            http_date(at(784_111_777) + Duration::from_millis(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Tue, 31 Feb 2000 00:00:00 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "",
            "yesterday",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn encoding_for_urls_and_html() {
        assert_eq!(encode("a b/c:d"), "a%20b%2Fc%3Ad");
        assert_eq!(encode("café"), "caf%C3%A9");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
