//! The probe's `--idle S` step: the tunnel stays silent (the probe sends nothing, and a wssh
//! server that agreed to the quiet request sends no pings) and the step reports when, if ever,
//! something on the path cuts it, and what `--ping` would keep such a tunnel alive.

use super::report::{Step, Verdict};
use std::io;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// The ping interval to suggest for a path that cuts silence after `cut`: half of it.
pub fn suggest(cut: Duration) -> u64 {
    (cut.as_secs() / 2).max(1)
}

pub fn step(
    ws: &mut WebSocket<crate::wire::Wire>,
    idle: Duration,
    quiet: bool,
) -> super::Outcome<()> {
    let t = Instant::now();
    let end = t + idle;
    let mut pinged = 0;
    let cut = loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break None;
        }
        let _ = ws.get_ref().get_ref().tcp().set_read_timeout(Some(left));
        match ws.read() {
            Ok(Message::Ping(_)) => pinged += 1,
            Ok(Message::Close(f)) => {
                let why = f.map_or("1005".into(), |f| {
                    format!("{} {}", u16::from(f.code), f.reason)
                });
                break Some(format!("closed by the server ({why})"));
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => break Some(format!("{e}")),
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let quiet_note = match (quiet, pinged) {
        (true, 0) => "the server agreed to stay silent".to_string(),
        (true, n) => format!("the server agreed to stay silent but sent {n} pings"),
        (false, 0) => "the server did not agree to stay silent (not a wssh server?), though it sent no ping".into(),
        (false, n) => format!("the server did not agree to stay silent: it sent {n} pings, which may hide a longer cut"),
    };
    match cut {
        Some(how) => {
            let every = suggest(t.elapsed());
            let detail = format!("the path cut the silent tunnel after {secs:.1} s ({how})");
            Err(Step::new("idle", Verdict::Fail, Some(t), detail)
                .lines(vec![quiet_note])
                .hint(format!(
                    "something on the path (a proxy's read timeout, a load balancer, NAT) ends silent connections: \
                     ping more often than that, e.g. --ping {every} on the client and the server"
                )))
        }
        None => {
            let verdict = match quiet && pinged == 0 {
                true => Verdict::Pass,
                false => Verdict::Warn,
            };
            let detail = format!("no cut in {:.0} s of silence", idle.as_secs_f64());
            Ok((
                (),
                Some(Step::new("idle", verdict, Some(t), detail).lines(vec![quiet_note])),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggested_ping_is_under_the_cut() {
        for (cut, ping) in [(3, 1), (1, 1), (60, 30), (350, 175), (0, 1)] {
            assert_eq!(
                super::suggest(std::time::Duration::from_secs(cut)),
                ping,
                "{cut}"
            );
        }
    }
}
