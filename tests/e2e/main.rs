//! End-to-end tests: the real `wssh` binary on loopback, against real peers.

mod limits;
mod reach;
mod ssh;
mod support;
mod tls;
mod tunnel;
