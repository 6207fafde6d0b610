//! The `wssh` binary: parse the command line, set up logging on stderr, run the mode, and map
//! the result to an exit code (0 ok, 1 failure, 2 usage, 130 signal).

use std::io::Write;
use wssh::cli::{self, Command};

fn main() {
    let code = match cli::parse(std::env::args_os().skip(1).collect()) {
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
        Ok(Command::Server(cfg, level)) => {
            logging(level);
            run(wssh::server::run(*cfg))
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
        Err(e) => wssh::report(&e),
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
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("tungstenite", level.min(log::LevelFilter::Info))
        .init();
}
