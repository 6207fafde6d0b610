//! `-D/--daemon` and `--pid-file`: detach from the launcher once the socket is bound, so a bind
//! error is still the launcher's exit status. Double fork and `setsid` (no controlling
//! terminal, never a session leader), `chdir /`, stdin, stdout and stderr to /dev/null; the
//! launching process exits 0 only once the daemon has written its pid file. It must run before
//! any thread starts. It does not bind, log anywhere else, or handle signals.

use crate::error::Error;
use std::path::{Path, PathBuf};

/// The pid file of a running daemon, removed when dropped (a normal exit).
pub struct PidFile(Option<PathBuf>);

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Detach (`keep_stderr`: stderr is a `--log-file`); returns in the daemon only (the launcher exits: 0 once the pid file is written, 1
/// if the daemon could not start). `pid_file` must be absolute.
#[cfg(unix)]
pub fn detach(pid_file: Option<&Path>, keep_stderr: bool) -> Result<PidFile, Error> {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    let sys = |what: &str| Error::io(format!("daemon: {what}"), std::io::Error::last_os_error());
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills the two ints given.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(sys("pipe"));
    }
    // SAFETY: both fds are new and ours alone.
    let (mut rx, mut tx) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: no other thread runs yet (see the module's note), so the child is consistent.
    match unsafe { libc::fork() } {
        -1 => return Err(sys("fork")),
        0 => {}
        _ => {
            // The launcher: wait for the daemon's word.
            drop(tx);
            let mut word = Vec::new();
            let _ = rx.read_to_end(&mut word);
            match word.strip_prefix(b"ok") {
                Some(_) => std::process::exit(0),
                None => {
                    let why = String::from_utf8_lossy(&word);
                    eprintln!("error: daemon did not start: {why}");
                    std::process::exit(1);
                }
            }
        }
    }
    drop(rx);
    // SAFETY: setsid, fork, chdir, open and dup2 on our own process and fds.
    unsafe {
        libc::setsid();
        match libc::fork() {
            -1 => {
                let _ = tx.write_all(b"fork failed");
                libc::_exit(1);
            }
            0 => {}
            _ => libc::_exit(0),
        }
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..(3 - i32::from(keep_stderr)) {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    if let Some(p) = pid_file {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            let _ = write!(tx, "--pid-file {}: {e}", p.display());
            std::process::exit(1);
        }
    }
    let _ = tx.write_all(b"ok");
    Ok(PidFile(pid_file.map(Path::to_path_buf)))
}

#[cfg(not(unix))]
pub fn detach(_pid_file: Option<&Path>, _keep_stderr: bool) -> Result<PidFile, Error> {
    Err(Error::Usage("-D/--daemon: not on this system".into()))
}

/// A pid file without detaching (`--pid-file` alone).
pub fn write_pid(pid_file: &Path) -> Result<PidFile, Error> {
    std::fs::write(pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| Error::io(format!("--pid-file {}", pid_file.display()), e))?;
    Ok(PidFile(Some(pid_file.to_path_buf())))
}
