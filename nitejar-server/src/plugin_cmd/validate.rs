//! `nitejar plugin validate <dir>`.

use std::path::Path;
use std::process::ExitCode;

use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use serde_json::json;

use super::Out;

pub(crate) fn run(dir: &Path, out: &Out) -> ExitCode {
    match validate_package_dir(dir, &ValidateOptions::new()) {
        Ok(valid) => {
            let m = &valid.manifest;
            let value = json!({
                "valid": true,
                "id": m.id,
                "version": m.version,
                "engine": valid.engine.to_string(),
                "notes": valid.notes,
                "errors": [],
            });
            out.ok(value, || {
                println!("{} {}: valid (engine {})", m.id, m.version, valid.engine);
                for note in &valid.notes {
                    println!("note: {note}");
                }
            })
        }
        Err(errors) => {
            if out.json {
                let value = json!({ "ok": false, "valid": false, "errors": errors });
                println!("{value:#}");
            } else {
                eprintln!(
                    "{}: {} problem{} in {}",
                    dir.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" },
                    nitejar_sdk::manifest::MANIFEST_FILE
                );
                for e in errors.errors() {
                    eprintln!("  {e}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
