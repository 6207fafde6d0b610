//! What `wssh probe` prints: one step per line (human) or one JSON object per line (`--json`,
//! schema `wssh-probe/1`, described in the README), every text scrubbed of the user's
//! secrets first. Pure but for the writing to stdout.

use std::io::Write;
use std::time::Instant;

/// The JSON schema's name and version: a field that changes meaning gets a new version.
pub const SCHEMA: &str = "wssh-probe/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Works, but something is worth knowing (`--insecure`, a server that did not stay quiet).
    Warn,
    Fail,
    /// Nothing to judge (which proxy applies, and why).
    Info,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Info => "info",
        }
    }
}

/// One step of the walk along the path.
#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub verdict: Verdict,
    /// How long the step took, in milliseconds.
    pub ms: Option<f64>,
    /// One line: what was found.
    pub detail: String,
    /// More lines (addresses tried, the certificate chain).
    pub lines: Vec<String>,
    /// What to do about a failure (or a warning).
    pub hint: Option<String>,
}

impl Step {
    pub fn new(
        name: &'static str,
        verdict: Verdict,
        since: Option<Instant>,
        detail: String,
    ) -> Step {
        Step {
            name,
            verdict,
            ms: since.map(|t| t.elapsed().as_secs_f64() * 1000.0),
            detail,
            lines: Vec::new(),
            hint: None,
        }
    }

    pub fn lines(mut self, lines: Vec<String>) -> Step {
        self.lines = lines;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Step {
        self.hint = Some(hint.into());
        self
    }
}

/// Where the steps go, and what must never appear in them.
pub struct Report {
    pub json: bool,
    pub secrets: Vec<String>,
    /// Any step failed so far.
    pub failed: bool,
}

impl Report {
    pub fn emit(&mut self, step: Step) {
        self.failed |= step.verdict == Verdict::Fail;
        let text = match self.json {
            true => json_line(&step),
            false => human(&step),
        };
        let text = crate::redact::scrub(&text, &self.secrets);
        // A closed stdout (`| head`) is not worth a panic.
        let _ = std::io::stdout().write_all(text.as_bytes());
        let _ = std::io::stdout().flush();
    }
}

/// `pass  dns        0.4 ms  localhost: 127.0.0.1, ::1`, then indented lines and the hint.
pub fn human(s: &Step) -> String {
    let ms = s.ms.map_or(String::new(), |ms| format!("{ms:.1} ms"));
    let mut out = format!(
        "{:<5} {:<8} {:>9}  {}\n",
        s.verdict.word(),
        s.name,
        ms,
        s.detail
    );
    for l in &s.lines {
        out += &format!("{:27}{l}\n", "");
    }
    if let Some(h) = &s.hint {
        out += &format!("{:27}-> {h}\n", "");
    }
    out
}

/// `{"schema":"wssh-probe/1","step":"dns","verdict":"pass","ms":0.4,"detail":"...",
/// "lines":[...],"hint":"..."}` on one line (`ms` and `hint` only when known).
pub fn json_line(s: &Step) -> String {
    let mut o = format!(
        "{{\"schema\":{},\"step\":{},\"verdict\":{}",
        quote(SCHEMA),
        quote(s.name),
        quote(s.verdict.word())
    );
    if let Some(ms) = s.ms {
        o += &format!(",\"ms\":{ms:.3}");
    }
    o += &format!(",\"detail\":{}", quote(&s.detail));
    let lines: Vec<String> = s.lines.iter().map(|l| quote(l)).collect();
    o += &format!(",\"lines\":[{}]", lines.join(","));
    if let Some(h) = &s.hint {
        o += &format!(",\"hint\":{}", quote(h));
    }
    o + "}\n"
}

/// A JSON string.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            '\n' => o += "\\n",
            c if (c as u32) < 0x20 || c == '\u{7f}' => o += &format!("\\u{:04x}", c as u32),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Bytes from a peer as one printable line: text as it is (at most `max` characters), other
/// bytes as `\xNN`.
pub fn printable(b: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(b);
    let mut o = String::new();
    for c in text.chars().take(max) {
        match c {
            '\r' => o += "\\r",
            '\n' => o += "\\n",
            c if c.is_control() || c == '\u{fffd}' => o += &format!("\\x{:02x}", c as u32 & 0xff),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(step: Step, expected: &str) {
        assert_eq!(json_line(&step), expected);
    }

    #[test]
    fn json_lines() {
        let s = Step::new("dns", Verdict::Pass, None, "a \"b\"\n\u{1}".into());
        check(
            s,
            "{\"schema\":\"wssh-probe/1\",\"step\":\"dns\",\"verdict\":\"pass\",\
             \"detail\":\"a \\\"b\\\"\\n\\u0001\",\"lines\":[]}\n",
        );
        let s = Step::new("tcp", Verdict::Fail, None, "x".into())
            .lines(vec!["1".into(), "\\".into()])
            .hint("h");
        check(
            s,
            "{\"schema\":\"wssh-probe/1\",\"step\":\"tcp\",\"verdict\":\"fail\",\
             \"detail\":\"x\",\"lines\":[\"1\",\"\\\\\"],\"hint\":\"h\"}\n",
        );
        assert_eq!(printable(b"SSH-2.0-x\r\n\x00", 40), "SSH-2.0-x\\r\\n\\x00");
    }
}
