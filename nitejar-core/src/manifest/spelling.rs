//! "Did you mean …?": the known name a misspelt one was most likely meant to be.

/// The candidate `written` most likely stands for: the same letters ignoring case and the separators
/// `_`, `-` and `.`, or else the closest within `max_edits` edits of those letters.
pub(super) fn closest<'a>(
    written: &str,
    candidates: &[&'a str],
    max_edits: usize,
) -> Option<&'a str> {
    let folded = fold(written);
    if let Some(same) = candidates.iter().find(|c| fold(c) == folded) {
        return Some(same);
    }
    candidates
        .iter()
        .map(|c| (edit_distance(&folded, &fold(c)), *c))
        .filter(|(d, _)| *d <= max_edits)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_name_that_was_meant() {
        let fields = ["network", "secrets", "filesystemRead", "allowProcessSpawn"];
        assert_eq!(closest("netowrk", &fields, 2), Some("network"));
        assert_eq!(
            closest("filesystem_read", &fields, 2),
            Some("filesystemRead")
        );
        assert_eq!(
            closest("AllowProcessSpawn", &fields, 2),
            Some("allowProcessSpawn")
        );
        assert_eq!(closest("database", &fields, 2), None);
        let hooks = ["tool.pre_exec", "tool.post_exec"];
        assert_eq!(closest("tool.preExec", &hooks, 2), Some("tool.pre_exec"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
