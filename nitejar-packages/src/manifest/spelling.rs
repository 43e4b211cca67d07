//! "Did you mean …?": the known name a misspelt one was most likely meant to be.

/// The candidate `written` most likely stands for: the same letters ignoring case and the separators
/// `_`, `-` and `.`, or else the closest within a few edits of those letters (one per four letters,
/// at most `max_edits`, so that short words are not "corrected" into unrelated ones).
pub(crate) fn closest<'a>(
    written: &str,
    candidates: &[&'a str],
    max_edits: usize,
) -> Option<&'a str> {
    let folded = fold(written);
    if let Some(same) = candidates.iter().find(|c| fold(c) == folded) {
        return Some(same);
    }
    let allowed = (folded.chars().count() / 4).clamp(1, max_edits.max(1));
    candidates
        .iter()
        .map(|c| (edit_distance(&folded, &fold(c)), *c))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edit distance in characters, counting a swap of two neighbours as one edit (the optimal string
/// alignment distance): `netowrk` is one edit from `network`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
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
        assert_eq!(closest("extra", &["entry", "engine"], 2), None);
        let hooks = ["tool.pre_exec", "tool.post_exec"];
        assert_eq!(closest("tool.preExec", &hooks, 2), Some("tool.pre_exec"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("netowrk", "network"), 1);
    }
}
