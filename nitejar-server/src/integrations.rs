//! Integration rows: the engine's [`nitejar_core::integrations`] service, which the API and the UI
//! adapt to HTTP.

pub use nitejar_core::integrations::*;

#[cfg(test)]
mod tests {
    /// Integration types are plugins' business: the server's code never branches on one.
    #[test]
    fn the_server_names_no_integration_type() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for kind in ["\"telegram\"", "\"github\"", "\"echo\""] {
                    assert!(
                        !text.contains(kind),
                        "{} names the integration type {kind}",
                        path.display()
                    );
                }
            }
        }
    }
}
