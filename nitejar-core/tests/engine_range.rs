//! `engine.nitejar` ranges mean what they mean to npm: every range in `fixtures/ranges/` is checked
//! against the versions node-semver itself accepted for it (regenerate with `generate.mjs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

use std::path::Path;

use nitejar_core::manifest::EngineRange;
use semver::Version;
use serde::Deserialize;

#[derive(Deserialize)]
struct Matrix {
    versions: Vec<String>,
    table: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    range: String,
    matching: Vec<String>,
}

#[test]
fn ranges_match_exactly_the_versions_npm_matches() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ranges/npm-semver.json");
    let matrix: Matrix = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut disagreements = Vec::new();
    for row in &matrix.table {
        let range = EngineRange::parse(&row.range)
            .unwrap_or_else(|e| panic!("npm reads `{}` but we refuse it: {e}", row.range));
        let ours: Vec<&String> = matrix
            .versions
            .iter()
            .filter(|v| range.matches(&Version::parse(v).unwrap()))
            .collect();
        let npm: Vec<&String> = row.matching.iter().collect();
        if ours != npm {
            disagreements.push(format!(
                "`{}` (read as `{range}`):\n  npm: {npm:?}\n  ours: {ours:?}",
                row.range
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
