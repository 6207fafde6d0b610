//! `wssh server [OPTIONS] -- PROGRAM ARGS`: start the service behind the server (websockify's
//! wrap mode), watch it, and end it with the server. Owns the program's processes, their process
//! group and `--wrap-mode` (exit, ignore, respawn with websockify's throttle); it neither routes
//! nor dials: the program listens where the fixed target says, a port this module may pick.
//!
//! The program cannot outlive wssh. It runs in a process group of its own, led by a guard: a
//! fork of wssh that blocks every signal and reads a pipe only wssh can write to. When wssh ends,
//! however it ends (SIGKILL too), the kernel closes the pipe; the guard wakes, sends SIGTERM to
//! the group, and SIGKILL `GRACE` later. On Linux the program also gets SIGTERM straight from the
//! kernel when wssh dies (`PR_SET_PDEATHSIG`). On a normal stop wssh does this itself: SIGTERM to
//! the group, then, as soon as nothing but the guard is left, it is done; what is still there
//! after `GRACE` gets SIGKILL.

use crate::error::Error;
use crate::policy::Target;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Replaced by the picked port in the program's arguments.
pub const PORT_MARK: &str = "{port}";
/// The environment variables that pass a picked port in: `PORT`, and `127.0.0.1:PORT`.
pub const PORT_VAR: &str = "WSSH_TARGET_PORT";
pub const TARGET_VAR: &str = "WSSH_TARGET";
/// websockify's respawn throttle: no new start while the last `STARTS` starts average less than
/// `WINDOW` ago.
const STARTS: usize = 3;
const WINDOW: Duration = Duration::from_secs(10);
/// From SIGTERM to SIGKILL when wssh ends.
const GRACE: Duration = Duration::from_secs(3);

/// What to do when the program ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stop the server and exit with the program's status.
    Exit,
    /// Log it and serve on.
    Ignore,
    /// Start it again, throttled.
    Respawn,
}

/// `-- PROGRAM ARGS` and `--wrap-mode`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub argv: Vec<OsString>,
    pub mode: Mode,
    /// Neither `--target` nor `--unix-target` was given: wssh picks the port.
    pub pick_port: bool,
}

/// The usage rules of wrap mode, pure: `argv` is what followed `--` (None: no `--`), `mode` the
/// `--wrap-mode` value, `target_given` whether `--target` or `--unix-target` was.
pub fn program(
    argv: Option<Vec<OsString>>,
    mode: Option<&str>,
    target_given: bool,
) -> Result<Option<Program>, String> {
    let mode = match mode {
        None => None,
        Some("exit") => Some(Mode::Exit),
        Some("ignore") => Some(Mode::Ignore),
        Some("respawn") => Some(Mode::Respawn),
        Some(m) => {
            return Err(format!(
                "--wrap-mode {m:?}: expected exit, ignore or respawn"
            ))
        }
    };
    let argv = match argv {
        None if mode.is_some() => return Err("--wrap-mode goes with -- PROGRAM ARGS".into()),
        None => return Ok(None),
        Some(a) if a.is_empty() => return Err("-- needs a PROGRAM after it".into()),
        Some(a) => a,
    };
    if target_given && argv.iter().any(|a| a.to_string_lossy().contains(PORT_MARK)) {
        return Err(format!(
            "{PORT_MARK} stands for the port wssh picks when neither --target nor \
             --unix-target is given; with one of them, write the port itself"
        ));
    }
    Ok(Some(Program {
        argv,
        mode: mode.unwrap_or(Mode::Exit),
        pick_port: !target_given,
    }))
}

/// The arguments with `{port}` replaced.
fn fill(argv: &[OsString], port: u16) -> Vec<OsString> {
    let port = port.to_string();
    argv.iter()
        .map(|a| match a.to_str() {
            Some(s) if s.contains(PORT_MARK) => s.replace(PORT_MARK, &port).into(),
            _ => a.clone(),
        })
        .collect()
}

/// How long to hold a respawn, given the last starts, oldest first (websockify's rule: not while
/// the last three average less than 10 s ago; fewer than three never wait). A program that keeps
/// failing is started about every 5 s.
fn respawn_wait(starts: &VecDeque<Instant>, now: Instant) -> Option<Duration> {
    let first = *starts.front()?;
    if starts.len() < STARTS {
        return None;
    }
    let since: Duration = starts.iter().map(|s| s.duration_since(first)).sum();
    let average = first + since / STARTS as u32;
    Some((average + WINDOW).saturating_duration_since(now)).filter(|d| !d.is_zero())
}

/// A free port on 127.0.0.1 now: the system picks it; the program takes it a moment later.
fn pick_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("pick a port for the program", e))
}

/// The exit code wssh passes on: the program's, or 128 + the signal that ended it.
fn exit_code(s: ExitStatus) -> i32 {
    sys::exit_code(s)
}

/// The watcher's state, shared with the server's stop.
#[derive(Default)]
struct State {
    /// wssh is stopping: no respawn, and the program's end is not its own.
    stopping: bool,
    /// The watcher has nothing left to wait for.
    done: bool,
    /// Under `--wrap-mode exit`, the status of the program that ended by itself.
    ended: Option<i32>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until `done` or `deadline`; whether it is done.
    fn wait_done(&self, deadline: Instant) -> bool {
        let s = self.lock();
        let wait = deadline.saturating_duration_since(Instant::now());
        let (s, _) = self
            .changed
            .wait_timeout_while(s, wait, |s| !s.done)
            .unwrap_or_else(|p| p.into_inner());
        s.done
    }
}

/// The running program and its watcher; `finish` (or drop) ends them.
pub struct Running {
    shared: Arc<Shared>,
    guard: sys::Guard,
    watcher: Option<JoinHandle<()>>,
}

/// Start the program, with its group and guard; when wssh picks the port, it becomes `fixed`.
/// Call once the listener is bound.
pub fn start(p: Program, fixed: &mut Target) -> Result<Running, Error> {
    let mut argv = p.argv;
    let mut env = Vec::new();
    if p.pick_port {
        let port = pick_port()?;
        *fixed = Target {
            host: "127.0.0.1".into(),
            port,
        };
        log::info!("program's target: {fixed} (picked: {PORT_MARK} and {PORT_VAR})");
        argv = fill(&argv, port);
        env = vec![
            (PORT_VAR, port.to_string()),
            (TARGET_VAR, fixed.to_string()),
        ];
    }
    let name = argv[0].to_string_lossy().into_owned();
    let guard = sys::Guard::new().map_err(|e| Error::io("start the program's guard", e))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).envs(env).stdin(Stdio::null());
    guard.configure(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("start {name}"), e))?;
    log::info!("program started: {name} (pid {})", child.id());
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    let s = shared.clone();
    let watcher = std::thread::Builder::new()
        .name("wrap".into())
        .spawn(move || watch(&s, cmd, child, p.mode, &name))
        .map_err(|e| Error::io("start the program's watcher", e))?;
    Ok(Running {
        shared,
        guard,
        watcher: Some(watcher),
    })
}

/// The watcher: wait for the program; when it ends by itself, do what the mode says. On Linux
/// a program it respawns is tied to this thread (`PR_SET_PDEATHSIG` follows the thread that
/// started the process), so it runs until the program is gone for good.
fn watch(shared: &Shared, mut cmd: Command, child: Child, mode: Mode, name: &str) {
    let mut child = Some(child);
    let mut starts = VecDeque::from([Instant::now()]);
    loop {
        if let Some(mut c) = child.take() {
            let pid = c.id();
            match c.wait() {
                Ok(status) if shared.lock().stopping => {
                    log::debug!("program ended: {name} (pid {pid}), {status}");
                }
                Ok(status) => {
                    log::info!("program ended: {name} (pid {pid}), {status}");
                    if mode == Mode::Exit {
                        shared.lock().ended = Some(exit_code(status));
                        log::info!("stopping with it (--wrap-mode exit)");
                        crate::listen::stop();
                    }
                }
                Err(e) => log::error!("program {name} (pid {pid}): wait: {e}"),
            }
        }
        let mut s = shared.lock();
        if s.stopping || mode != Mode::Respawn {
            if mode == Mode::Ignore && !s.stopping {
                log::info!("serving on without it (--wrap-mode ignore)");
            }
            s.done = true;
            shared.changed.notify_all();
            return;
        }
        if let Some(wait) = respawn_wait(&starts, Instant::now()) {
            log::warn!(
                "Command respawning too fast (the last {STARTS} starts average under {} s \
                 ago); next start in {:.1} s",
                WINDOW.as_secs(),
                wait.as_secs_f64()
            );
            s = shared
                .changed
                .wait_timeout_while(s, wait, |s| !s.stopping)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if s.stopping {
                continue;
            }
        }
        // Started under the lock: a stop that begins now finds it in the group.
        starts.push_back(Instant::now());
        if starts.len() > STARTS {
            starts.pop_front();
        }
        match cmd.spawn() {
            Ok(c) => {
                log::info!("program started again: {name} (pid {})", c.id());
                child = Some(c);
            }
            Err(e) => log::error!("start {name}: {e}"),
        }
    }
}

impl Running {
    /// End the program and its group (SIGTERM, then SIGKILL) and wait for the watcher. The exit
    /// code for wssh: the program's, when it ended by itself under `--wrap-mode exit`, else 0.
    pub fn finish(mut self) -> i32 {
        self.end()
    }

    fn end(&mut self) -> i32 {
        let Some(watcher) = self.watcher.take() else {
            return 0;
        };
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        let deadline = Instant::now() + GRACE;
        self.guard.signal_group(sys::TERM);
        self.shared.wait_done(deadline);
        self.guard.end(deadline);
        // After SIGKILL only a process stuck in the kernel still runs: do not wait for ever.
        if self
            .shared
            .wait_done(Instant::now() + Duration::from_secs(1))
        {
            let _ = watcher.join();
        } else {
            log::warn!("the program did not end even after SIGKILL");
        }
        self.shared.lock().ended.unwrap_or(0)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(unix)]
mod sys {
    use std::io;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, ExitStatus};
    use std::time::{Duration, Instant};

    pub const TERM: libc::c_int = libc::SIGTERM;

    pub fn exit_code(s: ExitStatus) -> i32 {
        s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
    }

    /// The leader of the program's process group: a fork of wssh that outlives it only to end
    /// the group. Dropping this closes the pipe it reads, which is also what the kernel does
    /// when wssh dies.
    pub struct Guard {
        pid: libc::pid_t,
        _pipe: std::os::fd::OwnedFd,
        /// Killed and reaped already.
        ended: bool,
    }

    impl Guard {
        pub fn new() -> io::Result<Guard> {
            use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
            let mut fds = [0; 2];
            // SAFETY: pipe(2) writes two descriptors, which we then own; FD_CLOEXEC keeps them
            // out of programs (no other thread starts one while this runs).
            let (read, write) = unsafe {
                if libc::pipe(fds.as_mut_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                let pair = (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]));
                for fd in fds {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
                pair
            };
            // Everything the child needs is made here: after fork it may only make system calls.
            // SAFETY: sigfillset fills the set given.
            let all = unsafe {
                let mut set = std::mem::zeroed::<libc::sigset_t>();
                libc::sigfillset(&mut set);
                set
            };
            let top = open_files_limit();
            let grace = libc::timespec {
                tv_sec: super::GRACE.as_secs() as _,
                tv_nsec: 0,
            };
            // SAFETY: the child runs `guard`, which makes only async-signal-safe calls and
            // never returns; the parent only learns the child's pid.
            match unsafe { libc::fork() } {
                -1 => Err(io::Error::last_os_error()),
                0 => unsafe { guard(read.as_raw_fd(), &all, top, &grace) },
                pid => {
                    // The child does this too; whichever runs first, the group exists before
                    // the program is started into it.
                    // SAFETY: setpgid on our own child.
                    unsafe { libc::setpgid(pid, pid) };
                    Ok(Guard {
                        pid,
                        _pipe: write,
                        ended: false,
                    })
                }
            }
        }

        /// Start the program into the guard's group, and on Linux have the kernel send it
        /// SIGTERM when the thread that starts it ends (with wssh, whatever kills it).
        pub fn configure(&self, cmd: &mut Command) {
            cmd.process_group(self.pid);
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                let parent = std::process::id() as libc::pid_t;
                // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
                unsafe {
                    cmd.pre_exec(move || {
                        let term = libc::SIGTERM as libc::c_ulong;
                        libc::prctl(libc::PR_SET_PDEATHSIG, term, 0 as libc::c_ulong);
                        // wssh died before prctl: no signal will come, so do not start.
                        if libc::getppid() != parent {
                            return Err(io::Error::from_raw_os_error(libc::ESRCH));
                        }
                        Ok(())
                    });
                }
            }
        }

        /// Send `sig` to the group (the guard has every signal blocked but SIGKILL).
        pub fn signal_group(&self, sig: libc::c_int) {
            // SAFETY: kill(2). The group cannot be another's while its leader is our child and
            // not yet reaped, nor (in `end`) while a member was left a moment ago.
            unsafe { libc::kill(-self.pid, sig) };
        }

        /// End the guard, then what is left of the group: wait until it is empty or
        /// `deadline` has passed, and SIGKILL the rest.
        pub fn end(&mut self, deadline: Instant) {
            self.reap();
            // SAFETY: kill(2) with signal 0 only asks. The group id cannot be another's while a
            // member is left, so the SIGKILL below reaches the program's group only.
            let left = || unsafe { libc::kill(-self.pid, 0) } == 0;
            while left() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if left() {
                log::info!("the program's group did not end on SIGTERM: SIGKILL");
                self.signal_group(libc::SIGKILL);
            }
        }
    }

    impl Drop for Guard {
        /// Without `end` (the program or its watcher could not be started): the whole group
        /// goes at once.
        fn drop(&mut self) {
            if !self.ended {
                self.signal_group(libc::SIGKILL);
                self.reap();
            }
        }
    }

    impl Guard {
        /// Kill and reap the guard itself, once.
        fn reap(&mut self) {
            if !std::mem::replace(&mut self.ended, true) {
                // SAFETY: kill and waitpid on our own child, not reaped before.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                    libc::waitpid(self.pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    /// Descriptors the guard closes, at most: all below the open-files limit (capped).
    fn open_files_limit() -> libc::c_int {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the one struct given.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        match ok {
            true => lim.rlim_cur.min(65536) as libc::c_int,
            false => 1024,
        }
    }

    /// The guard process. Lead a group of its own, block every signal (so SIGTERM, SIGINT or
    /// SIGHUP meant for the group or the terminal's job leave it be), keep only the pipe
    /// (as stdin: the listening socket and the rest must not stay open in it), and read until
    /// the pipe's other end closes: wssh has ended. Then SIGTERM the group, wait `grace`,
    /// SIGKILL the group, itself included. Only async-signal-safe calls: the parent has threads.
    unsafe fn guard(
        read: libc::c_int,
        all: &libc::sigset_t,
        top: libc::c_int,
        grace: &libc::timespec,
    ) -> ! {
        libc::setpgid(0, 0);
        libc::pthread_sigmask(libc::SIG_SETMASK, all, std::ptr::null_mut());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::prctl(libc::PR_SET_NAME, c"wssh-guard".as_ptr());
        if read != 0 {
            libc::dup2(read, 0);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let closed = {
            let (first, last) = (1 as libc::c_long, libc::c_uint::MAX as libc::c_long);
            libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_long) == 0
        };
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let closed = false;
        if !closed {
            for fd in 1..top {
                libc::close(fd);
            }
        }
        let mut byte = 0u8;
        loop {
            match libc::read(0, (&mut byte as *mut u8).cast(), 1) {
                -1 if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                n if n > 0 => {}
                _ => break,
            }
        }
        libc::kill(0, libc::SIGTERM);
        libc::nanosleep(grace, std::ptr::null_mut());
        libc::kill(0, libc::SIGKILL);
        libc::_exit(0)
    }
}

#[cfg(not(unix))]
mod sys {
    use std::io;
    use std::process::{Command, ExitStatus};
    use std::time::Instant;

    pub const TERM: i32 = 15;

    pub fn exit_code(s: ExitStatus) -> i32 {
        s.code().unwrap_or(1)
    }

    /// No process groups here: `cli` refuses `-- PROGRAM` before this is reached.
    pub struct Guard;

    impl Guard {
        pub fn new() -> io::Result<Guard> {
            Err(io::Error::other("not available on this system"))
        }
        pub fn configure(&self, _cmd: &mut Command) {}
        pub fn signal_group(&self, _sig: i32) {}
        pub fn end(&mut self, _deadline: Instant) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(Into::into).collect()
    }

    /// `-- PROGRAM` (None: no `--`), `--wrap-mode`, a target given, and the result.
    fn check(
        argv: Option<&[&str]>,
        mode: Option<&str>,
        target: bool,
        expected: Result<Option<(Mode, bool)>, &str>,
    ) {
        let got = program(argv.map(args), mode, target);
        let expected = expected
            .map(|o| {
                o.map(|(mode, pick_port)| Program {
                    argv: args(argv.unwrap_or_default()),
                    mode,
                    pick_port,
                })
            })
            .map_err(String::from);
        assert_eq!(got, expected, "{argv:?} {mode:?} {target}");
    }

    #[test]
    fn usage() {
        let sh: &[&str] = &["sh", "-c", "exit 7"];
        let port: &[&str] = &["socat", "TCP-LISTEN:{port},fork", "EXEC:cat"];
        check(None, None, false, Ok(None));
        check(None, None, true, Ok(None));
        check(Some(sh), None, false, Ok(Some((Mode::Exit, true))));
        check(Some(sh), None, true, Ok(Some((Mode::Exit, false))));
        check(Some(sh), Some("exit"), false, Ok(Some((Mode::Exit, true))));
        check(
            Some(sh),
            Some("ignore"),
            false,
            Ok(Some((Mode::Ignore, true))),
        );
        check(
            Some(sh),
            Some("respawn"),
            true,
            Ok(Some((Mode::Respawn, false))),
        );
        check(Some(port), None, false, Ok(Some((Mode::Exit, true))));
        let no_program = "--wrap-mode goes with -- PROGRAM ARGS";
        check(None, Some("exit"), false, Err(no_program));
        check(None, Some("respawn"), true, Err(no_program));
        check(Some(&[]), None, false, Err("-- needs a PROGRAM after it"));
        check(
            Some(&[]),
            Some("ignore"),
            false,
            Err("-- needs a PROGRAM after it"),
        );
        let bad = "--wrap-mode \"Respawn\": expected exit, ignore or respawn";
        check(Some(sh), Some("Respawn"), false, Err(bad));
        check(None, Some("Respawn"), false, Err(bad));
        let taken = "{port} stands for the port wssh picks when neither --target nor \
                     --unix-target is given; with one of them, write the port itself";
        check(Some(port), None, true, Err(taken));
        check(Some(port), Some("respawn"), true, Err(taken));
    }

    #[test]
    fn port_filled_in() {
        assert_eq!(
            fill(
                &args(&["socat", "TCP-LISTEN:{port},fork", "{port}{port}", "x"]),
                5901
            ),
            args(&["socat", "TCP-LISTEN:5901,fork", "59015901", "x"])
        );
    }

    #[test]
    fn throttle() {
        let t = Instant::now();
        let s = |secs: &[u64]| secs.iter().map(|&x| t + Duration::from_secs(x)).collect();
        let wait = |starts: &[u64], now: u64| {
            respawn_wait(&s(starts), t + Duration::from_secs(now)).map(|d| d.as_millis())
        };
        assert_eq!(wait(&[], 0), None);
        assert_eq!(wait(&[0], 0), None);
        assert_eq!(wait(&[0, 0], 0), None);
        assert_eq!(wait(&[0, 0, 0], 0), Some(10_000));
        assert_eq!(wait(&[0, 0, 0], 4), Some(6_000));
        assert_eq!(wait(&[0, 0, 0], 10), None);
        assert_eq!(wait(&[0, 1, 2], 2), Some(9_000));
        // A program that keeps failing at once: held 10 s, then 3.3 s, 4.7 s, ... about 5 s.
        assert_eq!(wait(&[0, 0, 10], 10), Some(3_333));
        assert_eq!(wait(&[0, 10, 13], 13), Some(4_666));
        assert_eq!(wait(&[5, 5, 5], 15), None);
        assert_eq!(wait(&[0, 30, 60], 60), None);
    }
}
