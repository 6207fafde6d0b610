//! `--console`: the browser console (a page, its script and its style) and the `wssh.js`
//! module, embedded in the binary and served under `/_wssh/` (the page at `/` too, without
//! `--web`), and `/_wssh/check?path=PATH`, which says whether a tunnel on PATH would be allowed
//! and, if not, why. Pure: a request target to what to answer, the check's query parsed, its
//! verdict as JSON. `server` runs the check (routing, the policy, the lookup), applies the
//! origin rule and the auth gate, and writes the answer (`web::respond`).

use crate::web::{self, Body, Reply};

const PAGE: &str = include_str!("console/console.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");
const MODULE: &str = include_str!("console/wssh.js");

/// The longest PATH the check takes (a tunnel's request target is bounded by the head anyway).
pub const MAX_PATH: usize = 2048;

/// The headers every answer of the console carries: only this server may provide scripts,
/// styles and connections (`'self'` covers ws: and wss: to it), nothing may frame the page.
pub const CSP: &str = "Content-Security-Policy: default-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'\r\n";

/// What a request to the console asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    /// A file: its content type and text.
    Asset(&'static str, String),
    /// `/_wssh/check`: would a tunnel on this path be allowed?
    Check(String),
    /// The check's query cannot be read: why.
    BadCheck(String),
    /// A directory asked for without its slash: where it is (relative).
    Moved(&'static str),
    NotFound,
}

/// Is this request the console's? Everything under `/_wssh/`, and `/` without `--web`.
pub fn wants(target: &str, web: bool) -> bool {
    web::reserved(target) || (!web && web::path_of(target) == "/")
}

/// What a request target (one that `wants` took) asks for.
pub fn ask(target: &str) -> Ask {
    let html = "text/html; charset=utf-8";
    let js = "text/javascript; charset=utf-8";
    // The page finds its script and style relative to where it is served.
    let page = |base: &str| Ask::Asset(html, PAGE.replace("{base}", base));
    match web::path_of(target) {
        "/" => page("_wssh/console/"),
        "/_wssh/console/" => page(""),
        "/_wssh/console" => Ask::Moved("./console/"),
        "/_wssh/console/console.js" => Ask::Asset(js, SCRIPT.into()),
        "/_wssh/console/console.css" => Ask::Asset("text/css; charset=utf-8", STYLE.into()),
        "/_wssh/wssh.js" => Ask::Asset(js, MODULE.into()),
        "/_wssh/check" => match check_path(web::query(target)) {
            Ok(p) => Ask::Check(p),
            Err(e) => Ask::BadCheck(e),
        },
        _ => Ask::NotFound,
    }
}

/// The `path` parameter of the check's query (`application/x-www-form-urlencoded`, as
/// `URLSearchParams` writes it): decoded, a request path of at most `MAX_PATH` bytes, valid
/// UTF-8 without control characters, not the server's own prefix. The first `path` counts.
pub fn check_path(query: Option<&str>) -> Result<String, String> {
    let query = query.unwrap_or("");
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("path="))
        .ok_or("the query needs path=PATH (the tunnel's path, such as /ssh/HOST:PORT)")?;
    if raw.len() > 3 * MAX_PATH {
        return Err(format!("path over {MAX_PATH} bytes"));
    }
    let bytes = web::decode(&raw.replace('+', " ")).ok_or("path: a % without two hex digits")?;
    let path = String::from_utf8(bytes).map_err(|_| "path: not UTF-8")?;
    if path.len() > MAX_PATH {
        return Err(format!("path over {MAX_PATH} bytes"));
    }
    if !path.starts_with('/') || path.chars().any(char::is_control) {
        return Err("path: must start with / and hold no control characters".into());
    }
    if web::reserved(&path) {
        return Err("path: /_wssh/ is the server's own, never a tunnel".into());
    }
    Ok(path)
}

/// The check's answer: `{"allowed":true}`, or `{"allowed":false,"status":N,"reason":"..."}`.
pub fn verdict(v: &Result<(), (u16, String)>) -> Reply {
    let json = match v {
        Ok(()) => "{\"allowed\":true}\n".to_string(),
        Err((status, reason)) => format!(
            "{{\"allowed\":false,\"status\":{status},\"reason\":{}}}\n",
            json_string(reason)
        ),
    };
    Reply::text(200, "application/json", json, "")
}

/// The answer to an `Ask` other than `Check`.
pub fn reply(ask: Ask) -> Reply {
    match ask {
        Ask::Asset(ctype, text) => Reply::text(200, ctype, text, ""),
        Ask::Moved(to) => {
            let mut r = Reply::error(301, "a directory: its address ends with /");
            r.extra = format!("Location: {to}\r\n");
            r
        }
        Ask::BadCheck(why) => Reply {
            body: Body::Text(format!("{why}\n")),
            ..Reply::error(400, "bad check query")
        },
        Ask::Check(_) | Ask::NotFound => Reply::error(404, "not found"),
    }
}

/// A JSON string: quotes, backslashes and control characters escaped.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out + "\""
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: Option<&str>, expected: Result<&str, &str>) {
        let got = check_path(query);
        match expected {
            Ok(p) => assert_eq!(got.as_deref(), Ok(p), "{query:?}"),
            Err(part) => assert!(
                got.as_ref().is_err_and(|e| e.contains(part)),
                "{query:?}: {got:?}"
            ),
        }
    }

    #[test]
    fn check_queries() {
        check(Some("path=/"), Ok("/"));
        check(
            Some("path=%2Fssh%2F127.0.0.1%3A22"),
            Ok("/ssh/127.0.0.1:22"),
        );
        check(Some("path=/ssh/db1:22"), Ok("/ssh/db1:22"));
        check(Some("x=1&path=/a&path=/b"), Ok("/a"));
        check(Some("path=/?token=abc"), Ok("/?token=abc"));
        check(Some("path=%2F%3Ftoken%3Da%2Bb"), Ok("/?token=a+b"));
        check(Some("path=/a+b"), Ok("/a b"));
        check(None, Err("needs path="));
        check(Some(""), Err("needs path="));
        check(Some("xpath=/"), Err("needs path="));
        check(Some("path="), Err("must start with /"));
        check(Some("path=ssh/x"), Err("must start with /"));
        check(Some("path=/%0a"), Err("control"));
        check(Some("path=/%"), Err("hex"));
        check(Some("path=/%zz"), Err("hex"));
        check(Some("path=/%ff"), Err("UTF-8"));
        check(Some("path=/_wssh/check"), Err("server's own"));
        check(Some("path=/%5Fwssh/"), Err("server's own"));
        let long = format!("path=/{}", "a".repeat(MAX_PATH));
        check(Some(&long), Err("over 2048"));
        let long = format!("path=/{}", "%41".repeat(MAX_PATH));
        check(Some(&long), Err("over 2048"));
    }

    #[test]
    fn requests() {
        assert!(wants("/", false));
        assert!(!wants("/", true));
        assert!(wants("/?x=1", false));
        assert!(wants("/_wssh/console/", true));
        assert!(!wants("/index.html", false));
        let asset = |t| match ask(t) {
            Ask::Asset(ctype, text) => (ctype, text),
            other => panic!("{t}: {other:?}"),
        };
        let (ctype, root) = asset("/");
        assert_eq!(ctype, "text/html; charset=utf-8");
        assert!(root.contains("\"_wssh/console/console.js\""), "{root}");
        let (_, own) = asset("/_wssh/console/?x");
        assert!(own.contains("\"console.js\"") && !own.contains("{base}"));
        assert_eq!(asset("/_wssh/wssh.js").0, "text/javascript; charset=utf-8");
        assert_eq!(asset("/_wssh/console/console.css").1, STYLE);
        assert_eq!(ask("/_wssh/console"), Ask::Moved("./console/"));
        assert_eq!(ask("/_wssh/"), Ask::NotFound);
        assert_eq!(ask("/_wssh/console/x"), Ask::NotFound);
        assert_eq!(ask("/_wssh/check?path=/x"), Ask::Check("/x".into()));
        assert!(matches!(ask("/_wssh/check"), Ask::BadCheck(_)));
    }

    #[test]
    fn verdicts() {
        let text = |r: Reply| match r.body {
            Body::Text(t) => t,
            _ => panic!("not text"),
        };
        assert_eq!(text(verdict(&Ok(()))), "{\"allowed\":true}\n");
        let no = verdict(&Err((403, "target \"x\\y\"\n not allowed".into())));
        assert_eq!(
            text(no),
            "{\"allowed\":false,\"status\":403,\"reason\":\"target \\\"x\\\\y\\\"\\u000a not allowed\"}\n"
        );
    }
}
