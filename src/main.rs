//! The `wssh` binary: parse the command line (websockify's, when named `websockify`), set up
//! logging on stderr, run the mode, and map the result to an exit code (0 ok, 1 failure,
//! 2 usage, 130 signal; the server may pass on its wrapped program's status).

use std::io::Write;
use wssh::cli::{self, Command};

fn main() {
    wssh::pump::few_arenas();
    let argv: Vec<_> = std::env::args_os().collect();
    let program = cli::program(&argv);
    let code = match cli::parse_argv(argv) {
        Ok(Command::Print(text)) => {
            // A closed stdout (wssh --help | head) is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        Ok(Command::Client(cfg, level)) => {
            logging(level);
            cfg.dialer.log_warnings();
            // ssh sends SIGHUP when it is done with us: end at once, whatever is in flight.
            let _ = ctrlc::set_handler(|| std::process::exit(130));
            run(wssh::client::run(cfg))
        }
        Ok(Command::Probe(cfg, level)) => {
            logging(level);
            cfg.dialer.log_warnings();
            wssh::probe::run(*cfg)
        }
        Ok(Command::Server(cfg, level)) => {
            match &cfg.syslog {
                Some(to) => {
                    if let Err(e) = wssh::syslog::install(logger(level), to) {
                        eprintln!("error: {e}");
                        std::process::exit(1);
                    }
                }
                None => logging(level),
            }
            // The wrapped program's status, under --wrap-mode exit.
            wssh::server::run(*cfg).unwrap_or_else(|e| wssh::report(&e))
        }
        Ok(Command::Connect(cfg, level)) => {
            logging(level);
            cfg.dialer.log_warnings();
            run(wssh::forward::run_connect(cfg))
        }
        Ok(Command::Forward(cfg, level)) => {
            logging(level);
            cfg.dialer.log_warnings();
            run(wssh::forward::run_forward(cfg))
        }
        Ok(Command::HashPassword(user, iterations)) => {
            run(wssh::auth::hash_password(&user, iterations))
        }
        Err(e) => wssh::report_as(&e, program),
    };
    std::process::exit(code);
}

fn run(r: Result<(), wssh::error::Error>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => wssh::report(&e),
    }
}

/// simple_logger on stderr (its `stderr` feature): stdout is for tunnel bytes.
fn logging(level: log::LevelFilter) {
    let _ = logger(level).init();
}

fn logger(level: log::LevelFilter) -> simple_logger::SimpleLogger {
    simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("tungstenite", level.min(log::LevelFilter::Info))
}
