//! The README opens with the two commands a new machine runs; this keeps them runnable from the
//! workspace root as written.

use std::path::Path;

fn root_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_readme_commands_name_what_the_workspace_builds_by_default() {
    let readme = root_file("README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the README opens with a sh block");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --bin nitejar", "cargo test --workspace"]
    );

    // `cargo run --bin` looks only in the default members: the server must be one.
    let manifest = root_file("Cargo.toml");
    let defaults = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("default-members"))
        .expect("workspace.default-members");
    assert!(defaults.contains("\"nitejar-server\""), "{defaults}");
    let server = root_file("nitejar-server/Cargo.toml");
    assert!(
        server.contains("[[bin]]\nname = \"nitejar\""),
        "nitejar-server builds the `nitejar` binary"
    );
}
