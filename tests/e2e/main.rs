//! End-to-end tests: the real `wssh` binary on loopback, against real peers.

mod auth;
mod browser;
mod daemon;
mod ends;
mod handed;
mod interop;
mod limits;
mod logfile;
mod pitfalls;
mod reach;
mod record;
mod secrets;
mod ssh;
mod support;
mod syslog;
mod targets;
mod tls;
mod tokens;
mod tunnel;
mod units;
mod unix_listen;
mod web;
mod websockify;
mod wire;
mod wrap;
