//! HTTP through curl for the tests that drive real binaries under `cargo lambda watch`
//! (fold-batch's, snapshot-compactor's and replay-api's; the others include this file with
//! `#[path]`). Depends on `std` only.
//!
//! Waits up to 15 minutes per request: under the emulator a function's first invoke runs
//! `cargo run`, which waits for every other build holding the target directory's lock, and
//! an asynchronous invoke there runs to completion before it answers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// The request's body: a file's contents or text.
pub enum Body<'a> {
    File(&'a Path),
    Text(&'a str),
}

/// `curl -X METHOD URL [--data-binary BODY]`: (HTTP status, response body). A curl that
/// fails (no connection, timeout) fails the test.
pub fn request(method: &str, url: &str, body: Option<Body<'_>>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "--max-time", "900"])
        .args(["-w", "\n%{http_code}"]);
    match body {
        Some(Body::File(p)) => {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(format!("@{}", p.display()));
        }
        Some(Body::Text(t)) => {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(t);
        }
        None => {}
    }
    let out = cmd.arg(url).output().expect("curl runs");
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// POSTs a file's contents (a Lambda Invoke of an `events/` sample).
pub fn post_file(url: &str, body: &Path) -> (u16, String) {
    request("POST", url, Some(Body::File(body)))
}
