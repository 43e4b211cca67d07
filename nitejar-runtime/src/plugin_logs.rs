//! `logs/plugins/<id>.log`: one line per lifecycle action and per log line a plugin writes through
//! the host. The file is capped: past 8 MiB it is moved to `<id>.log.1` (replacing the previous
//! one) and a new file is started.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

/// Size past which a log file is rotated.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;

/// Appends one line to `<logs_dir>/<id>.log`. Failures are reported through `tracing` only:
/// a log line must never fail the action it describes.
pub fn append(logs_dir: &Path, id: &str, version: Option<&str>, level: &str, message: &str) {
    if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
        return;
    }
    let file = logs_dir.join(format!("{id}.log"));
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(logs_dir)?;
        if std::fs::metadata(&file).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
            std::fs::rename(&file, logs_dir.join(format!("{id}.log.1")))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)?;
        let line = format!(
            "{} {level:<5} {}{}\n",
            humantime::format_rfc3339_millis(SystemTime::now()),
            version.map(|v| format!("{v} ")).unwrap_or_default(),
            message.replace('\n', "\n    ")
        );
        out.write_all(line.as_bytes())
    })();
    if let Err(e) = result {
        tracing::warn!("could not write {}: {e}", file.display());
    }
}

/// The last `lines` lines of `<logs_dir>/<id>.log` (empty when there is none).
pub fn tail(logs_dir: &Path, id: &str, lines: usize) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(logs_dir.join(format!("{id}.log"))) else {
        return Vec::new();
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_append_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), "a.b", Some("1.0.0"), "INFO", "installed");
        append(dir.path(), "a.b", None, "WARN", "two\nlines");
        append(dir.path(), "../x", None, "WARN", "refused name");
        let lines = tail(dir.path(), "a.b", 10);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].ends_with("INFO  1.0.0 installed"), "{}", lines[0]);
        assert_eq!(tail(dir.path(), "a.b", 1), vec!["    lines".to_string()]);
        assert!(tail(dir.path(), "none", 5).is_empty());
    }
}
