//! `--log-file FILE`: wssh's messages (stderr, where the logger writes) go to FILE, appended,
//! and FILE is opened anew on SIGHUP, for log rotation (move it away, then SIGHUP). The signal
//! handler only calls open(2), dup2(2) and close(2), which are safe there. It does not format
//! or filter log lines.

use crate::error::Error;
#[cfg(unix)]
use std::ffi::CString;
use std::path::Path;

/// The file, once `--log-file` has redirected stderr to it.
#[cfg(unix)]
static PATH: std::sync::OnceLock<CString> = std::sync::OnceLock::new();

/// Point stderr at FILE (appended, created 0640).
#[cfg(unix)]
pub fn redirect(file: &Path) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    let err = |e| Error::io(format!("--log-file {}", file.display()), e);
    let c = CString::new(file.as_os_str().as_bytes())
        .map_err(|_| err(std::io::Error::other("a NUL in the path")))?;
    if !reopen(&c) {
        return Err(err(std::io::Error::last_os_error()));
    }
    let _ = PATH.set(c);
    Ok(())
}

#[cfg(not(unix))]
pub fn redirect(_file: &Path) -> Result<(), Error> {
    Err(Error::Usage("--log-file: not on this system".into()))
}

/// Whether stderr now writes to `c`.
#[cfg(unix)]
fn reopen(c: &CString) -> bool {
    // SAFETY: open, dup2 and close on a NUL-terminated path and fds of this process.
    unsafe {
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC;
        let fd = libc::open(c.as_ptr(), flags, 0o640 as libc::c_uint);
        if fd < 0 {
            return false;
        }
        let ok = libc::dup2(fd, 2) == 2;
        libc::close(fd);
        ok
    }
}

#[cfg(unix)]
extern "C" fn on_sighup(_: libc::c_int) {
    if let Some(c) = PATH.get() {
        reopen(c);
    }
}

/// With `--log-file`, make SIGHUP reopen it (instead of stopping, as without). Call after
/// the stop handler is installed, which also claims SIGHUP.
pub fn reopen_on_sighup() {
    #[cfg(unix)]
    if PATH.get().is_some() {
        // SAFETY: installs a handler that only makes async-signal-safe calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sighup as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGHUP, &sa, std::ptr::null_mut());
        }
    }
}
