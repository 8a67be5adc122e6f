//! The deployment template (`infra/template.yaml`, AWS SAM) passes `sam validate --lint` and
//! `cfn-lint` (which also lints the SAM-translated CloudFormation), with no finding at all.
//! Both come from `scripts/install-test-tools.sh` (`$HOME/.cache/refold/tools/bin`, before PATH);
//! the test fails, never skips, without them. Offline: dummy credentials and a region.

use std::path::{Path, PathBuf};
use std::process::Command;

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml")
}

/// `name` from the test tools' folder (the pinned versions), else from PATH; panics naming
/// the installer if neither has it.
fn tool(name: &str) -> PathBuf {
    let cached = std::env::var("HOME")
        .map(|h| Path::new(&h).join(".cache/refold/tools/bin").join(name))
        .ok()
        .filter(|p| p.exists());
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    });
    cached.or(on_path).unwrap_or_else(|| {
        panic!("{name} not found on PATH nor in ~/.cache/refold/tools/bin: run scripts/install-test-tools.sh")
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn sam_validate_lint_is_clean() {
    let out = run(Command::new(tool("sam"))
        .args(["validate", "--lint", "--region", "us-east-1", "--template"])
        .arg(template()));
    assert!(out.contains("is a valid SAM Template"), "{out}");
}

#[test]
fn cfn_lint_is_clean() {
    // Exit 0 only without errors, warnings or informational findings.
    let out = run(Command::new(tool("cfn-lint"))
        .args(["--format", "parseable", "--"])
        .arg(template()));
    assert!(out.trim().is_empty(), "cfn-lint findings:\n{out}");
}

#[test]
fn every_function_is_built_by_cargo_lambda_for_arm64() {
    let text = std::fs::read_to_string(template()).unwrap_or_else(|e| panic!("{e}"));
    for bin in [
        "fold-batch",
        "snapshot-compactor",
        "replay-api",
        "replay-worker",
    ] {
        assert!(
            text.contains(&format!("Binary: {bin}\n")),
            "no rust-cargolambda build of {bin}"
        );
    }
    assert_eq!(text.matches("BuildMethod: rust-cargolambda").count(), 4);
    assert!(text.contains("Runtime: provided.al2023") && text.contains("Architectures: [arm64]"));
}
