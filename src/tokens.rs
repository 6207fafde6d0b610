//! Tokens: websockify's ways of naming a target by a secret token, as one more source of the
//! server's name-to-target map. The token comes from `?token=` (or the `Host` header); it is
//! looked up in a token file or a directory of them (`token: host:port`, `token:
//! unix_socket:/path`), in a directory of files named after tokens, or in a directory of Unix
//! sockets. Parsing and name checks are pure; the file reads are thin. A token is a secret: this
//! module never logs one, and no token can reach outside its directory.

use crate::bridge::Local;
use crate::policy::Target;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Where a token leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Tcp(Target),
    Unix(PathBuf),
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Tcp(t) => t.fmt(f),
            Dest::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The operator's token sources (websockify's token plugins of those names).
#[derive(Debug, Clone)]
pub enum Source {
    /// `TokenFile` (`once`: `ReadOnlyTokenFile`): a file, or every regular file in a directory.
    File { path: PathBuf, once: bool },
    /// `TokenFileName`: the file `DIR/<token>` holds `host:port`.
    Names(PathBuf),
    /// `UnixDomainSocketDirectory`: `DIR/<token>` is a Unix socket.
    Sockets(PathBuf),
}

/// Parse the lines of one token file, websockify 0.13's way: lines are trimmed, blank and `#`
/// lines skipped, and each must be `TOKEN: TARGET` with exactly one colon followed by white
/// space. TARGET is `host:port` (the last colon splits; `::1:5900` is IPv6 `::1`, brackets are
/// allowed too) or `unix_socket:/path`. `first_line` numbers lines across the files of a
/// directory, as websockify does. Errors name the line, never the token.
pub fn parse(text: &str, first_line: usize) -> Result<Vec<(String, Dest)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = first_line + i;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let seps: Vec<usize> = line
            .char_indices()
            .filter(|&(i, c)| c == ':' && line[i + 1..].starts_with(char::is_whitespace))
            .map(|(i, _)| i)
            .collect();
        let [sep] = seps[..] else {
            return Err(format!("line {n}: expected `TOKEN: HOST:PORT`"));
        };
        let (token, target) = (&line[..sep], line[sep + 1..].trim());
        out.push((
            token.to_string(),
            dest(target).map_err(|e| format!("line {n}: {e}"))?,
        ));
    }
    Ok(out)
}

/// `host:port`, `[v6]:port`, `v6:port` or `unix_socket:/path`.
fn dest(s: &str) -> Result<Dest, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "the target has no port".to_string())?;
    if host == "unix_socket" {
        return Ok(Dest::Unix(PathBuf::from(port)));
    }
    let port: u16 = port.parse().map_err(|_| "bad port".to_string())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err("bad target".into());
    }
    let target = Target::parse(&crate::url::join_host_port(host, port), port)?;
    Ok(Dest::Tcp(target))
}

/// May this token name a file in a token directory? A plain file name only: no separator, no
/// `.` or `..`, no leading dot, no NUL, not empty.
pub fn plain_name(token: &str) -> bool {
    !token.is_empty()
        && !token.starts_with('.')
        && !token.contains(['/', '\\', '\0'])
        && token.len() <= 255
}

/// The token a request carries: the first `token` parameter of the query (percent-decoded, a
/// trailing newline dropped), or with `host_token` the `Host` header without its port.
pub fn from_request(target: &str, host: Option<&str>, host_token: bool) -> Option<String> {
    if host_token {
        let h = host?.trim();
        let name = match h.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => h.rsplit_once(':').map_or(h, |(n, _)| n),
        };
        return (!name.is_empty()).then(|| name.to_string());
    }
    let query = target.split_once('?')?.1.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "token" {
            return None;
        }
        let v = crate::url::percent_decode(&v.replace('+', " ")).ok()?;
        Some(v.strip_suffix('\n').unwrap_or(&v).to_string())
    })
}

/// A token map read from files, and what it was read from (to notice changes).
#[derive(Default)]
pub struct Map {
    pub map: HashMap<String, Dest>,
    stamp: Vec<(PathBuf, Option<SystemTime>, u64)>,
    loaded: bool,
}

/// The regular files a `TokenFile` source names, in name order, with their change stamps.
fn files(path: &Path) -> std::io::Result<Vec<(PathBuf, Option<SystemTime>, u64)>> {
    let meta = std::fs::metadata(path)?;
    let paths = if meta.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    Ok(paths
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let stamp = m.as_ref().and_then(|m| m.modified().ok());
            let len = m.map_or(0, |m| m.len());
            (p, stamp, len)
        })
        .collect())
}

impl Map {
    /// Read `path` (a token file or a directory of them) if it changed since the last read. A
    /// broken edit keeps the previous map; the error says which file and line.
    pub fn refresh(&mut self, path: &Path, once: bool) -> Result<bool, String> {
        if once && self.loaded {
            return Ok(false);
        }
        let stamp = files(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if self.loaded && stamp == self.stamp {
            return Ok(false);
        }
        let mut map = HashMap::new();
        let mut line = 1;
        for (file, _, _) in &stamp {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            for (token, dest) in
                parse(&text, line).map_err(|e| format!("{}: {e}", file.display()))?
            {
                map.insert(token, dest); // the last of duplicates wins, as in websockify
            }
            line += text.lines().count();
        }
        *self = Map {
            map,
            stamp,
            loaded: true,
        };
        Ok(true)
    }
}

/// Look `token` up in a directory source (`Names` or `Sockets`). The token must be a plain
/// name; the entry is opened without following symlinks, so nothing outside the directory is
/// ever read or dialled.
pub fn lookup_dir(source: &Source, token: &str) -> Result<Option<Dest>, String> {
    let (dir, sockets) = match source {
        Source::Names(d) => (d, false),
        Source::Sockets(d) => (d, true),
        Source::File { .. } => return Ok(None),
    };
    if !plain_name(token) {
        return Ok(None);
    }
    let path = dir.join(token);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(None);
    };
    if sockets {
        return Ok(is_socket(&meta).then_some(Dest::Unix(path)));
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let text = read_nofollow(&path).map_err(|e| format!("token file: {e}"))?;
    let line = text.lines().next().unwrap_or("").trim();
    dest(line).map(Some).map_err(|e| format!("token file: {e}"))
}

#[cfg(unix)]
fn is_socket(meta: &std::fs::Metadata) -> bool {
    std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type())
}

#[cfg(not(unix))]
fn is_socket(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Read a small file without following a symlink put in its place since it was checked.
fn read_nofollow(path: &Path) -> std::io::Result<String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW);
    let f = opts.open(path)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 4096), &mut text)?;
    Ok(text)
}

/// How often the tunnels opened by tokens are checked against their sources: a withdrawn
/// token ends its tunnels within this time.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The configured token sources, their cached maps, and the tunnels opened by tokens.
pub struct Tokens {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    sources: Vec<Source>,
    /// One cached map per source (used by `File` sources only).
    maps: Vec<Mutex<Map>>,
    /// Tunnels opened by a token: its connection id, the token, its local socket to cut.
    watched: Mutex<HashMap<u64, (String, Arc<Local>)>>,
    wake: std::sync::Condvar,
    watcher: std::sync::Once,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tokens {
    pub fn new(sources: Vec<Source>) -> Tokens {
        let maps = sources.iter().map(|_| Mutex::new(Map::default())).collect();
        Tokens {
            inner: std::sync::Arc::new(Inner {
                sources,
                maps,
                watched: Mutex::new(HashMap::new()),
                wake: std::sync::Condvar::new(),
                watcher: std::sync::Once::new(),
            }),
        }
    }

    /// Is any token source configured (then the token alone decides the target)?
    pub fn configured(&self) -> bool {
        !self.inner.sources.is_empty()
    }

    /// Check every source once (at start-up): a broken file is a usage error then.
    pub fn check(&self) -> Result<(), String> {
        for (src, map) in self.inner.sources.iter().zip(&self.inner.maps) {
            match src {
                Source::File { path, once } => {
                    lock(map).refresh(path, *once)?;
                }
                Source::Names(d) | Source::Sockets(d) if !d.is_dir() => {
                    return Err(format!("{}: not a directory", d.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Where `token` leads, and how to name that in a log line (never the token itself).
    pub fn lookup(&self, token: &str) -> Result<Option<(Dest, String)>, String> {
        self.inner.lookup(token)
    }

    /// Cut `local` (a tunnel's target socket) if `token` is withdrawn while the tunnel lives;
    /// until the returned guard is dropped.
    pub fn watch(&self, id: u64, token: String, local: Arc<Local>) -> Watched<'_> {
        lock(&self.inner.watched).insert(id, (token, local));
        self.inner.wake.notify_all();
        let inner = self.inner.clone();
        self.inner.watcher.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("tokens".into())
                .stack_size(crate::listen::STACK)
                .spawn(move || inner.recheck_forever());
            if let Err(e) = spawned {
                log::warn!(
                    "tokens: cannot start the thread that ends withdrawn tokens' tunnels: {e}"
                );
            }
        });
        Watched { tokens: self, id }
    }
}

impl Inner {
    fn lookup(&self, token: &str) -> Result<Option<(Dest, String)>, String> {
        for (src, map) in self.sources.iter().zip(&self.maps) {
            let found = match src {
                Source::File { path, once } => {
                    let mut m = lock(map);
                    if let Err(e) = m.refresh(path, *once) {
                        // A broken edit keeps the previous map.
                        log::warn!("tokens: {e}; keeping the previous map");
                    }
                    m.map.get(token).cloned()
                }
                dir => lookup_dir(dir, token)?,
            };
            if let Some(d) = found {
                let name = match (src, &d) {
                    (Source::Sockets(dir), _) => format!("unix:{}/[token]", dir.display()),
                    (_, d) => d.to_string(),
                };
                return Ok(Some((d, name)));
            }
        }
        Ok(None)
    }

    /// The watcher thread: sleeps while no tunnel was opened by a token; otherwise every
    /// `RECHECK`, cuts the tunnels whose token no longer leads anywhere.
    fn recheck_forever(&self) {
        loop {
            let mut w = lock(&self.watched);
            while w.is_empty() {
                w = self.wake.wait(w).unwrap_or_else(|p| p.into_inner());
            }
            drop(w);
            std::thread::sleep(RECHECK);
            let open: Vec<(u64, String)> = lock(&self.watched)
                .iter()
                .map(|(id, (t, _))| (*id, t.clone()))
                .collect();
            for (id, token) in open {
                if let Ok(None) = self.lookup(&token) {
                    if let Some((_, local)) = lock(&self.watched).remove(&id) {
                        log::info!("conn-{id}: its token was withdrawn: tunnel cut");
                        let _ = local.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
    }
}

/// A tunnel's place among those watched for withdrawn tokens; dropped when the tunnel ends.
pub struct Watched<'a> {
    tokens: &'a Tokens,
    id: u64,
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        lock(&self.tokens.inner.watched).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<&[(&str, &str)], &str>) {
        let got = parse(text, 1).map(|v| {
            v.into_iter()
                .map(|(t, d)| (t, d.to_string()))
                .collect::<Vec<_>>()
        });
        let want = expected.map(|v| {
            v.iter()
                .map(|(t, d)| (t.to_string(), d.to_string()))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, want.map_err(String::from), "{text:?}");
    }

    #[test]
    fn token_files() {
        check("", Ok(&[]));
        check("# c\n\n  a1: h:5900 \n", Ok(&[("a1", "h:5900")]));
        check("a: 127.0.0.1:5901", Ok(&[("a", "127.0.0.1:5901")]));
        check("a:\th:1", Ok(&[("a", "h:1")]));
        check("v6: ::1:5900", Ok(&[("v6", "[::1]:5900")]));
        check("v6: [::1]:5900", Ok(&[("v6", "[::1]:5900")]));
        check(
            "u: unix_socket:/run/vnc.sock",
            Ok(&[("u", "unix:/run/vnc.sock")]),
        );
        check("a: h:1\na: h:2", Ok(&[("a", "h:1"), ("a", "h:2")]));
        check("a:h:1", Err("line 1: expected `TOKEN: HOST:PORT`"));
        check("x\na: b: h:1", Err("line 1: expected `TOKEN: HOST:PORT`"));
        check(
            "ok: h:1\nb: h:2: x",
            Err("line 2: expected `TOKEN: HOST:PORT`"),
        );
        check("a: h", Err("line 1: the target has no port"));
        check("a: h:x", Err("line 1: bad port"));
        check("a: h:0", Err("line 1: bad target"));
    }

    #[test]
    fn tokens_from_requests() {
        let q = |t: &str| from_request(t, None, false);
        assert_eq!(q("/websockify?token=abc").as_deref(), Some("abc"));
        assert_eq!(q("/?a=1&token=x%20y&token=z").as_deref(), Some("x y"));
        assert_eq!(q("/?token=abc%0A").as_deref(), Some("abc"));
        assert_eq!(q("/websockify"), None);
        assert_eq!(q("/?tokens=1"), None);
        let h = |h: &str| from_request("/", Some(h), true);
        assert_eq!(h("vm7.example:6080").as_deref(), Some("vm7.example"));
        assert_eq!(h("vm7").as_deref(), Some("vm7"));
        assert_eq!(h("[::1]:80").as_deref(), Some("::1"));
    }

    #[test]
    fn plain_names_only() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            ".hidden",
            "a\\b",
            "a\0b",
        ] {
            assert!(!plain_name(bad), "{bad:?}");
        }
        assert!(plain_name("one-vm_7"));
    }
}
