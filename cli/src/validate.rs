//! `refold validate <pipeline.yaml>`

use std::path::Path;
use std::process::ExitCode;

use refold::pipeline;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = pipeline::load(path)?;
    for problem in &loaded.problems {
        eprintln!("{problem}");
    }
    let errors = loaded.errors().count();
    if errors == 0 {
        let warnings = loaded.warnings().count();
        println!(
            "OK: {} ({warnings} warning{})",
            path.display(),
            if warnings == 1 { "" } else { "s" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{}: {errors} problem{}",
            path.display(),
            if errors == 1 { "" } else { "s" }
        );
        Ok(ExitCode::FAILURE)
    }
}
