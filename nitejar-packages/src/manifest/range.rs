//! `engine.nitejar`: npm-style version ranges, read with npm's meaning.
//!
//! Plugin authors come from the npm world and the seed manifests use npm ranges (`>=0.1.0 <1.0.0`),
//! while the host matches versions with the `semver` crate, which speaks Cargo syntax. The two
//! syntaxes overlap but disagree on meaning: a bare `1.2.3` is *exactly* 1.2.3 for npm and `^1.2.3`
//! for Cargo, and npm has hyphen ranges, `||` and space-separated comparators that Cargo lacks. So a
//! range is parsed here with npm's grammar and desugared into plain comparators (`>=`, `>`, `<`, `<=`,
//! `=` on full versions, which mean the same in both worlds), written out in Cargo syntax and only
//! then handed to [`VersionReq::parse`]. Neither parser ever sees the other's syntax.
//!
//! ```
//! use nitejar_packages::manifest::EngineRange;
//! use semver::Version;
//!
//! let range = EngineRange::parse(">=0.1.0 <1.0.0 || ^2.1").unwrap();
//! assert_eq!(range.to_string(), ">=0.1.0, <1.0.0 || >=2.1.0, <3.0.0");
//! assert!(range.matches(&Version::new(0, 4, 2)));
//! assert!(range.matches(&Version::new(2, 9, 0)));
//! assert!(!range.matches(&Version::new(1, 0, 0)));
//! ```

use std::fmt;
use std::str::FromStr;

use semver::{Prerelease, Version, VersionReq};

/// A version range: alternatives separated by `||`, satisfied when any alternative is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineRange {
    source: String,
    alternatives: Vec<VersionReq>,
    bare_version: bool,
}

/// Why a text is not a version range. The messages quote the offending part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Nothing but whitespace.
    #[error("the range is empty; write `*` to accept every version")]
    Empty,
    /// `a || || b` or a leading/trailing `||`.
    #[error("an alternative between `||` is empty")]
    EmptyAlternative,
    /// A comma, as in Cargo's `>=0.1, <1`.
    #[error("`,` separates comparators in Cargo syntax; npm-style ranges separate them with spaces, e.g. `>=0.1.0 <1.0.0`")]
    CargoSyntax,
    /// An operator glued to the previous version, as in `<1.0.0>=0.1.0`.
    #[error("`{0}`: separate comparators with spaces, e.g. `>=0.1.0 <1.0.0`")]
    MissingSpace(String),
    /// An operator with no version after it.
    #[error("`{0}` is not followed by a version")]
    DanglingOperator(String),
    /// A hyphen that is not of the form `A - B` alone in its alternative.
    #[error(
        "`{0}`: a hyphen range is written `1.2.3 - 2.3.4`, with nothing else before the next `||`"
    )]
    MisplacedHyphen(String),
    /// An operator on one end of a hyphen range.
    #[error("`{0}`: the ends of a hyphen range take no operator")]
    HyphenOperator(String),
    /// A version (or partial version) that cannot be read.
    #[error("`{text}` is not a version: {reason}")]
    InvalidVersion {
        /// The version as written.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A part one greater than `u64::MAX` was needed (`<=18446744073709551615`).
    #[error("`{0}`: a version number is too large")]
    TooLarge(String),
    /// The normalised form was refused by the `semver` crate (e.g. more than 31 comparators).
    #[error("`{normalised}` cannot be used: {reason}")]
    Unsupported {
        /// The alternative in Cargo syntax.
        normalised: String,
        /// The `semver` crate's reason.
        reason: String,
    },
}

impl EngineRange {
    /// Reads an npm-style range.
    ///
    /// Accepted forms: comparators `>=1.2.3`, `>1.2`, `<2`, `<=1.2.3`, `=1.2.3` (space-separated,
    /// all must hold); a bare `1.2.3` (exactly that version, as in npm); partial and wildcard
    /// versions `1.x`, `1.2.x`, `1`, `1.2`, `*`, `x`; `~1.2.3` (`~>` too) and `^1.2.3` with npm's
    /// rules for `0.x`; hyphen ranges `1.2.3 - 2.3.4` (a partial upper end is exclusive of the next
    /// version: `1.2.3 - 2.3` means `>=1.2.3 <2.4.0`); alternatives with `||`. A `v` before a
    /// version is allowed; build metadata (`+build`) is ignored, as precedence ignores it.
    pub fn parse(text: &str) -> Result<EngineRange, RangeError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(RangeError::Empty);
        }
        if trimmed.contains(',') {
            return Err(RangeError::CargoSyntax);
        }
        let mut alternatives = Vec::new();
        let mut bare_version = false;
        for alternative in trimmed.split("||") {
            let alternative = alternative.trim();
            if alternative.is_empty() {
                return Err(RangeError::EmptyAlternative);
            }
            let set = parse_alternative(alternative, &mut bare_version)?;
            let normalised = set.to_cargo();
            let req = VersionReq::parse(&normalised).map_err(|e| RangeError::Unsupported {
                normalised: normalised.clone(),
                reason: e.to_string(),
            })?;
            alternatives.push(req);
        }
        Ok(EngineRange {
            source: text.to_string(),
            alternatives,
            bare_version,
        })
    }

    /// Whether `version` satisfies the range. Pre-release versions match only an alternative that
    /// names a pre-release of the same `MAJOR.MINOR.PATCH`, as in npm and Cargo.
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|req| req.matches(version))
    }

    /// The alternatives, each in Cargo syntax.
    pub fn alternatives(&self) -> &[VersionReq] {
        &self.alternatives
    }

    /// The range as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the range names a full version without an operator (`1.2.3`). npm, and so Nitejar,
    /// reads that as *exactly* 1.2.3; authors used to Cargo often mean `^1.2.3`.
    pub fn has_bare_version(&self) -> bool {
        self.bare_version
    }
}

impl fmt::Display for EngineRange {
    /// The normalised form: the alternatives in Cargo syntax, joined by ` || `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, req) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(" || ")?;
            }
            write!(f, "{req}")?;
        }
        Ok(())
    }
}

impl FromStr for EngineRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineRange::parse(s)
    }
}

/// One comparator on a full version, the common ground of npm and Cargo syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Bound {
    Ge(Version),
    Gt(Version),
    Lt(Version),
    Le(Version),
    Eq(Version),
}

/// The comparators of one alternative (all must hold). `empty` marks an alternative that matches
/// nothing (npm's `>*` and `<*`).
#[derive(Debug, Default)]
struct ComparatorSet {
    bounds: Vec<Bound>,
    empty: bool,
}

impl ComparatorSet {
    fn to_cargo(&self) -> String {
        if self.empty {
            // Nothing is below 0.0.0 and a pre-release of 0.0.0 is excluded by the missing `-pre`.
            return "<0.0.0".to_string();
        }
        if self.bounds.is_empty() {
            return "*".to_string();
        }
        let parts: Vec<String> = self
            .bounds
            .iter()
            .map(|b| match b {
                Bound::Ge(v) => format!(">={v}"),
                Bound::Gt(v) => format!(">{v}"),
                Bound::Lt(v) => format!("<{v}"),
                Bound::Le(v) => format!("<={v}"),
                Bound::Eq(v) => format!("={v}"),
            })
            .collect();
        parts.join(", ")
    }
}

/// A version as written in a range: any part may be missing or a wildcard.
#[derive(Debug)]
struct Partial {
    text: String,
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

impl Partial {
    /// The lowest version the partial names (`1.2` → 1.2.0).
    fn floor(&self) -> Version {
        let mut v = Version::new(
            self.major.unwrap_or(0),
            self.minor.unwrap_or(0),
            self.patch.unwrap_or(0),
        );
        v.pre = self.pre.clone();
        v
    }

    /// The first version past what the partial names: `1` → 2.0.0, `1.2` → 1.3.0. `None` for a
    /// full version (which has no "next" in this sense) or a bare wildcard.
    fn ceiling(&self) -> Result<Option<Version>, RangeError> {
        let too_large = || RangeError::TooLarge(self.text.clone());
        Ok(match (self.major, self.minor, self.patch) {
            (Some(major), None, _) => Some(Version::new(
                major.checked_add(1).ok_or_else(too_large)?,
                0,
                0,
            )),
            (Some(major), Some(minor), None) => Some(Version::new(
                major,
                minor.checked_add(1).ok_or_else(too_large)?,
                0,
            )),
            _ => None,
        })
    }

    fn is_full(&self) -> bool {
        self.patch.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    None,
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

// Longest first, so `>=` is not read as `>` followed by `=1.2.3`.
const OPERATORS: [(&str, Operator); 8] = [
    (">=", Operator::Ge),
    ("<=", Operator::Le),
    ("~>", Operator::Tilde),
    (">", Operator::Gt),
    ("<", Operator::Lt),
    ("=", Operator::Eq),
    ("~", Operator::Tilde),
    ("^", Operator::Caret),
];

fn split_operator(word: &str) -> (Operator, &str) {
    OPERATORS
        .iter()
        .find_map(|(text, op)| word.strip_prefix(text).map(|rest| (*op, rest)))
        .unwrap_or((Operator::None, word))
}

fn parse_alternative(text: &str, bare_version: &mut bool) -> Result<ComparatorSet, RangeError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.contains(&"-") {
        return match words.as_slice() {
            [low, "-", high] => hyphen_range(low, high),
            _ => Err(RangeError::MisplacedHyphen(text.to_string())),
        };
    }

    // npm allows a space between an operator and its version (`>= 1.2.3`).
    let mut comparators: Vec<String> = Vec::new();
    let mut pending: Option<&str> = None;
    for word in words {
        if let Some(op) = pending.take() {
            comparators.push(format!("{op}{word}"));
        } else if matches!(split_operator(word), (op, "") if op != Operator::None) {
            pending = Some(word);
        } else {
            comparators.push(word.to_string());
        }
    }
    if let Some(op) = pending {
        return Err(RangeError::DanglingOperator(op.to_string()));
    }

    let mut set = ComparatorSet::default();
    for comparator in &comparators {
        let (op, version) = split_operator(comparator);
        let partial = parse_partial(version)?;
        if op == Operator::None && partial.is_full() {
            *bare_version = true;
        }
        desugar(op, &partial, &mut set)?;
    }
    Ok(set)
}

fn hyphen_range(low: &str, high: &str) -> Result<ComparatorSet, RangeError> {
    for end in [low, high] {
        if split_operator(end).0 != Operator::None {
            return Err(RangeError::HyphenOperator(end.to_string()));
        }
    }
    let low = parse_partial(low)?;
    let high = parse_partial(high)?;
    let mut set = ComparatorSet::default();
    if low.major.is_some() {
        set.bounds.push(Bound::Ge(low.floor()));
    }
    if high.major.is_some() {
        match high.ceiling()? {
            Some(next) => set.bounds.push(Bound::Lt(next)),
            None => set.bounds.push(Bound::Le(high.floor())),
        }
    }
    Ok(set)
}

fn desugar(op: Operator, p: &Partial, set: &mut ComparatorSet) -> Result<(), RangeError> {
    let any = p.major.is_none();
    match op {
        Operator::None | Operator::Eq => {
            if any {
                return Ok(());
            }
            match p.ceiling()? {
                Some(next) => {
                    set.bounds.push(Bound::Ge(p.floor()));
                    set.bounds.push(Bound::Lt(next));
                }
                None => set.bounds.push(Bound::Eq(p.floor())),
            }
        }
        Operator::Tilde => {
            let too_large = || RangeError::TooLarge(p.text.clone());
            // `~` lets the last written part below the minor change: ~1 → <2.0.0, ~1.2(.3) → <1.3.0.
            let next = match (p.major, p.minor) {
                (None, _) => return Ok(()),
                (Some(major), None) => {
                    Version::new(major.checked_add(1).ok_or_else(too_large)?, 0, 0)
                }
                (Some(major), Some(minor)) => {
                    Version::new(major, minor.checked_add(1).ok_or_else(too_large)?, 0)
                }
            };
            set.bounds.push(Bound::Ge(p.floor()));
            set.bounds.push(Bound::Lt(next));
        }
        Operator::Caret => {
            let too_large = || RangeError::TooLarge(p.text.clone());
            let floor = p.floor();
            // The first non-zero part among those written is the one that may not change.
            let next = match (p.major, p.minor, p.patch) {
                (Some(0), Some(0), Some(patch)) => {
                    Version::new(0, 0, patch.checked_add(1).ok_or_else(too_large)?)
                }
                (Some(0), Some(minor), _) => {
                    Version::new(0, minor.checked_add(1).ok_or_else(too_large)?, 0)
                }
                (Some(major), _, _) => {
                    Version::new(major.checked_add(1).ok_or_else(too_large)?, 0, 0)
                }
                (None, _, _) => return Ok(()),
            };
            set.bounds.push(Bound::Ge(floor));
            set.bounds.push(Bound::Lt(next));
        }
        Operator::Gt => {
            if any {
                set.empty = true;
                return Ok(());
            }
            match p.ceiling()? {
                Some(next) => set.bounds.push(Bound::Ge(next)),
                None => set.bounds.push(Bound::Gt(p.floor())),
            }
        }
        Operator::Ge => {
            if !any {
                set.bounds.push(Bound::Ge(p.floor()));
            }
        }
        Operator::Lt => {
            if any {
                set.empty = true;
                return Ok(());
            }
            set.bounds.push(Bound::Lt(p.floor()));
        }
        Operator::Le => {
            if any {
                return Ok(());
            }
            match p.ceiling()? {
                Some(next) => set.bounds.push(Bound::Lt(next)),
                None => set.bounds.push(Bound::Le(p.floor())),
            }
        }
    }
    Ok(())
}

fn parse_partial(text: &str) -> Result<Partial, RangeError> {
    let invalid = |reason: &str| RangeError::InvalidVersion {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    if text.is_empty() {
        return Err(invalid("it is empty"));
    }
    if text.contains(['<', '>', '=', '~', '^']) {
        return Err(RangeError::MissingSpace(text.to_string()));
    }
    let version = text.strip_prefix('v').unwrap_or(text);
    // Build metadata does not take part in precedence, so it cannot narrow a range.
    let (version, build) = match version.split_once('+') {
        Some((v, b)) => (v, Some(b)),
        None => (version, None),
    };
    let (core, pre) = match version.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (version, None),
    };

    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 {
        return Err(invalid("it has more than three parts (MAJOR.MINOR.PATCH)"));
    }
    let mut numbers: [Option<u64>; 3] = [None; 3];
    let mut wildcard_seen = false;
    for (i, part) in parts.iter().enumerate() {
        let number = match *part {
            "" => return Err(invalid("it has an empty part")),
            "x" | "X" | "*" => None,
            digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
                if digits.len() > 1 && digits.starts_with('0') {
                    return Err(invalid("a number may not have a leading zero"));
                }
                Some(
                    digits
                        .parse::<u64>()
                        .map_err(|_| RangeError::TooLarge(text.to_string()))?,
                )
            }
            _ if parts.len() == 1 => {
                return Err(invalid("write a version such as `1.2.3`, `1.x` or `*`"))
            }
            _ => return Err(invalid(&format!("`{part}` is not a number, `x` or `*`"))),
        };
        if number.is_some() && wildcard_seen {
            return Err(invalid("a number may not follow a wildcard"));
        }
        wildcard_seen |= number.is_none();
        numbers[i] = number;
    }
    let [major, minor, patch] = numbers;
    let full = patch.is_some();

    let pre = match pre {
        None => Prerelease::EMPTY,
        Some(_) if !full => {
            return Err(invalid(
                "a pre-release needs a full MAJOR.MINOR.PATCH version",
            ))
        }
        Some("") => return Err(invalid("the pre-release after `-` is empty")),
        Some(p) => {
            Prerelease::new(p).map_err(|_| invalid(&format!("`{p}` is not a valid pre-release")))?
        }
    };
    if let Some(build) = build {
        if !full {
            return Err(invalid(
                "build metadata needs a full MAJOR.MINOR.PATCH version",
            ));
        }
        if semver::BuildMetadata::new(build).is_err() || build.is_empty() {
            return Err(invalid(&format!("`{build}` is not valid build metadata")));
        }
    }
    Ok(Partial {
        text: text.to_string(),
        major,
        minor,
        patch,
        pre,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        match EngineRange::parse(text) {
            Ok(range) => range.to_string(),
            Err(e) => panic!("`{text}` should parse: {e}"),
        }
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn matches(range: &str, version: &str) -> bool {
        EngineRange::parse(range).unwrap().matches(&v(version))
    }

    #[test]
    fn space_separated_comparators_all_hold() {
        assert_eq!(norm(">=0.1.0 <1.0.0"), ">=0.1.0, <1.0.0");
        assert!(matches(">=0.1.0 <1.0.0", "0.1.0"));
        assert!(matches(">=0.1.0 <1.0.0", "0.9.9"));
        assert!(!matches(">=0.1.0 <1.0.0", "1.0.0"));
        assert!(!matches(">=0.1.0 <1.0.0", "0.0.9"));
    }

    #[test]
    fn operators_may_be_separated_from_their_version() {
        assert_eq!(norm(">= 0.1.0  < 1.0.0"), ">=0.1.0, <1.0.0");
        assert_eq!(norm("^ 1.2"), ">=1.2.0, <2.0.0");
    }

    #[test]
    fn caret_follows_npm_for_zero_majors() {
        assert_eq!(norm("^1.2.3"), ">=1.2.3, <2.0.0");
        assert_eq!(norm("^1.2"), ">=1.2.0, <2.0.0");
        assert_eq!(norm("^1"), ">=1.0.0, <2.0.0");
        assert_eq!(norm("^0.2.3"), ">=0.2.3, <0.3.0");
        assert_eq!(norm("^0.0.3"), ">=0.0.3, <0.0.4");
        assert_eq!(norm("^0.0"), ">=0.0.0, <0.1.0");
        assert_eq!(norm("^0"), ">=0.0.0, <1.0.0");
        assert_eq!(norm("^1.x"), ">=1.0.0, <2.0.0");
        assert_eq!(norm("^*"), "*");
        assert!(matches("^1.2", "1.9.0"));
        assert!(!matches("^1.2", "2.0.0"));
        assert!(!matches("^0.0.3", "0.0.4"));
    }

    #[test]
    fn tilde_allows_patch_changes() {
        assert_eq!(norm("~1.2.3"), ">=1.2.3, <1.3.0");
        assert_eq!(norm("~1.2"), ">=1.2.0, <1.3.0");
        assert_eq!(norm("~1"), ">=1.0.0, <2.0.0");
        assert_eq!(norm("~0.2.3"), ">=0.2.3, <0.3.0");
        assert_eq!(norm("~>1.2.3"), ">=1.2.3, <1.3.0");
        assert!(matches("~1.2.3", "1.2.9"));
        assert!(!matches("~1.2.3", "1.3.0"));
    }

    #[test]
    fn x_ranges_and_wildcards() {
        assert_eq!(norm("*"), "*");
        assert_eq!(norm("x"), "*");
        assert_eq!(norm("X"), "*");
        assert_eq!(norm("1.x"), ">=1.0.0, <2.0.0");
        assert_eq!(norm("1.X.x"), ">=1.0.0, <2.0.0");
        assert_eq!(norm("1.2.x"), ">=1.2.0, <1.3.0");
        assert_eq!(norm("1.2.*"), ">=1.2.0, <1.3.0");
        assert_eq!(norm("1"), ">=1.0.0, <2.0.0");
        assert_eq!(norm("1.2"), ">=1.2.0, <1.3.0");
        assert!(matches("*", "0.1.0"));
        assert!(matches("1.x", "1.99.0"));
        assert!(!matches("1.2.x", "1.3.0"));
    }

    #[test]
    fn a_bare_full_version_is_exact_as_in_npm() {
        let range = EngineRange::parse("1.2.3").unwrap();
        assert_eq!(range.to_string(), "=1.2.3");
        assert!(range.has_bare_version());
        assert!(range.matches(&v("1.2.3")));
        // Cargo would read `1.2.3` as `^1.2.3` and accept 1.2.4.
        assert!(!range.matches(&v("1.2.4")));
        assert_eq!(norm("=1.2.3"), "=1.2.3");
        assert!(!EngineRange::parse("=1.2.3").unwrap().has_bare_version());
        assert_eq!(norm("v1.2.3"), "=1.2.3");
        assert_eq!(norm("=1.2"), ">=1.2.0, <1.3.0");
    }

    #[test]
    fn comparators_with_partial_versions() {
        assert_eq!(norm(">1"), ">=2.0.0");
        assert_eq!(norm(">1.2"), ">=1.3.0");
        assert_eq!(norm(">1.2.3"), ">1.2.3");
        assert_eq!(norm(">=1.2"), ">=1.2.0");
        assert_eq!(norm("<1.2"), "<1.2.0");
        assert_eq!(norm("<=1.2"), "<1.3.0");
        assert_eq!(norm("<=1"), "<2.0.0");
        assert_eq!(norm("<=1.2.3"), "<=1.2.3");
        assert_eq!(norm(">=*"), "*");
        assert_eq!(norm("<=*"), "*");
        assert_eq!(norm(">*"), "<0.0.0");
        assert_eq!(norm("<*"), "<0.0.0");
        assert!(!matches(">*", "0.0.0"));
        assert!(matches("<=1.2", "1.2.9"));
        assert!(!matches(">1.2", "1.2.9"));
    }

    #[test]
    fn hyphen_ranges_follow_npm_for_partial_ends() {
        assert_eq!(norm("1.2.3 - 2.0.0"), ">=1.2.3, <=2.0.0");
        assert_eq!(norm("1.2.3 - 2.3"), ">=1.2.3, <2.4.0");
        assert_eq!(norm("1.2.3 - 2"), ">=1.2.3, <3.0.0");
        assert_eq!(norm("1.2 - 2.3.4"), ">=1.2.0, <=2.3.4");
        assert_eq!(norm("* - 2.0.0"), "<=2.0.0");
        assert_eq!(norm("1.0.0 - *"), ">=1.0.0");
        assert!(matches("1.2.3 - 2.0.0", "2.0.0"));
        assert!(!matches("1.2.3 - 2.0.0", "2.0.1"));
        assert!(matches("1.2.3 - 2.3", "2.3.9"));
        assert!(!matches("1.2.3 - 2.3", "2.4.0"));
        assert!(!matches("1.2.3 - 2.3", "1.2.2"));
    }

    #[test]
    fn alternatives_match_when_any_does() {
        let range = EngineRange::parse(">=1 <2 || >=3").unwrap();
        assert_eq!(range.to_string(), ">=1.0.0, <2.0.0 || >=3.0.0");
        assert_eq!(range.alternatives().len(), 2);
        assert!(range.matches(&v("1.5.0")));
        assert!(range.matches(&v("3.0.0")));
        assert!(range.matches(&v("7.1.0")));
        assert!(!range.matches(&v("2.0.0")));
        assert!(!range.matches(&v("0.9.0")));
        assert_eq!(
            norm("1.2.3 - 1.4 || ^2 || 3.1.x"),
            ">=1.2.3, <1.5.0 || >=2.0.0, <3.0.0 || >=3.1.0, <3.2.0"
        );
    }

    #[test]
    fn pre_releases_match_only_when_named_on_the_same_version() {
        assert_eq!(norm(">=1.0.0-beta.2 <2"), ">=1.0.0-beta.2, <2.0.0");
        assert!(matches(">=1.0.0-beta.2 <2", "1.0.0-beta.3"));
        assert!(matches(">=1.0.0-beta.2 <2", "1.5.0"));
        assert!(!matches(">=1.0.0-beta.2 <2", "1.5.0-alpha"));
        assert!(!matches(">=0.1.0 <1.0.0", "1.0.0-rc.1"));
        assert!(!matches("*", "0.2.0-alpha"));
        assert_eq!(norm("~1.2.3-beta"), ">=1.2.3-beta, <1.3.0");
    }

    #[test]
    fn build_metadata_is_ignored() {
        assert_eq!(norm(">=1.2.3+build.5"), ">=1.2.3");
    }

    #[test]
    fn the_normalised_form_is_cargo_syntax_with_the_same_meaning() {
        for text in [
            ">=0.1.0 <1.0.0",
            "^0.2.3",
            "~1.2",
            "1.2.3 - 2.3",
            "1.2.3",
            ">1.2",
            "*",
        ] {
            let range = EngineRange::parse(text).unwrap();
            for (alt, shown) in range
                .alternatives()
                .iter()
                .zip(range.to_string().split(" || "))
            {
                assert_eq!(&VersionReq::parse(shown).unwrap(), alt, "{text}");
            }
        }
    }

    #[test]
    fn keeps_the_source() {
        let range: EngineRange = " ^0.1 ".parse().unwrap();
        assert_eq!(range.source(), " ^0.1 ");
    }

    fn err(text: &str) -> String {
        match EngineRange::parse(text) {
            Ok(range) => panic!("`{text}` should not parse, got {range}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_what_it_cannot_read_with_a_reason() {
        assert_eq!(
            err("  "),
            "the range is empty; write `*` to accept every version"
        );
        assert_eq!(err("1.x || "), "an alternative between `||` is empty");
        assert!(err(">=0.1, <1").starts_with("`,` separates comparators in Cargo syntax"));
        assert_eq!(
            err("<1.0.0>=0.1.0"),
            "`1.0.0>=0.1.0`: separate comparators with spaces, e.g. `>=0.1.0 <1.0.0`"
        );
        assert_eq!(err(">="), "`>=` is not followed by a version");
        assert!(err("1 - 2 - 3").contains("a hyphen range is written"));
        assert_eq!(
            err(">=1 - 2"),
            "`>=1`: the ends of a hyphen range take no operator"
        );
        assert!(err("1 - 2 3").contains("a hyphen range is written"));
        assert_eq!(
            err("^1 - 2"),
            "`^1`: the ends of a hyphen range take no operator"
        );
        assert_eq!(
            err("latest"),
            "`latest` is not a version: write a version such as `1.2.3`, `1.x` or `*`"
        );
        assert_eq!(
            err("1.2.3.4"),
            "`1.2.3.4` is not a version: it has more than three parts (MAJOR.MINOR.PATCH)"
        );
        assert_eq!(
            err("01.2.3"),
            "`01.2.3` is not a version: a number may not have a leading zero"
        );
        assert_eq!(
            err("1.x.3"),
            "`1.x.3` is not a version: a number may not follow a wildcard"
        );
        assert_eq!(
            err("1.2-beta"),
            "`1.2-beta` is not a version: a pre-release needs a full MAJOR.MINOR.PATCH version"
        );
        assert_eq!(
            err("1.2.3-"),
            "`1.2.3-` is not a version: the pre-release after `-` is empty"
        );
        assert_eq!(err("1..2"), "`1..2` is not a version: it has an empty part");
        assert_eq!(
            err("<=18446744073709551615"),
            "`18446744073709551615`: a version number is too large"
        );
        assert_eq!(
            err("99999999999999999999"),
            "`99999999999999999999`: a version number is too large"
        );
    }
}
