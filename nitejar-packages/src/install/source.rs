//! Where a package comes from, and how an operator writes it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::InstallError;

/// A package source.
#[derive(Clone, PartialEq, Eq)]
pub enum InstallSource {
    /// A package directory on this machine: copied into the version directory, never run in place.
    Path(PathBuf),
    /// A `.tgz` file on this machine (with or without npm's `package/` prefix).
    Archive(PathBuf),
    /// An uploaded `.tgz`: its file name (for the record) and bytes.
    Upload {
        /// The file name it was uploaded as.
        name: String,
        /// The archive.
        bytes: Vec<u8>,
    },
    /// An uploaded `.tgz` the server has already written to a file it owns (under
    /// `plugins/_staging`): recorded exactly like [`Upload`](Self::Upload), but unpacked by
    /// streaming from the file, so a garbage or oversized upload is refused without being read into
    /// memory.
    ///
    /// ```no_run
    /// # use nitejar_packages::install::{InstallSource, Installer, Layout};
    /// let installer = Installer::new(Layout::new("/var/lib/nitejar"));
    /// let staged = installer.stage(InstallSource::UploadFile {
    ///     name: "jira-1.0.0.tgz".into(),
    ///     path: "/var/lib/nitejar/plugins/_staging/upload-x1y2z3".into(),
    /// })?;
    /// assert_eq!(staged.source_kind, "upload");
    /// # Ok::<(), nitejar_packages::install::InstallError>(())
    /// ```
    UploadFile {
        /// The file name it was uploaded as.
        name: String,
        /// Where the server wrote it. The caller owns the file and removes it after the install.
        path: PathBuf,
    },
    /// A package in an npm registry.
    Npm(NpmSpec),
    /// A git repository.
    Git(GitSpec),
}

impl fmt::Debug for InstallSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallSource::Upload { name, bytes } => f
                .debug_struct("Upload")
                .field("name", name)
                .field("bytes", &bytes.len())
                .finish(),
            InstallSource::UploadFile { name, path } => f
                .debug_struct("UploadFile")
                .field("name", name)
                .field("path", path)
                .finish(),
            InstallSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            InstallSource::Archive(p) => f.debug_tuple("Archive").field(p).finish(),
            InstallSource::Npm(s) => f.debug_tuple("Npm").field(s).finish(),
            InstallSource::Git(s) => f.debug_tuple("Git").field(s).finish(),
        }
    }
}

/// `name`, `name@version`, `name@range` or `name@tag`, as npm writes them (`@scope/name` too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpmSpec {
    /// The package name.
    pub name: String,
    /// The version, range or dist-tag; `None` for the `latest` tag.
    pub request: Option<String>,
}

/// A git URL and the branch, tag or commit to install (`None`: the remote's default branch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSpec {
    /// `https://…`, `http://…` or `file://…` (a `git+` prefix is removed).
    pub url: String,
    /// What follows `#` in the source.
    pub reference: Option<String>,
}

impl InstallSource {
    /// Reads a source as an operator writes it on the command line:
    ///
    /// - a `git+…` URL, a `file://` URL, or an `http(s)://` URL → git (`#ref` picks a branch, tag or
    ///   commit);
    /// - an existing file ending in `.tgz` or `.tar.gz` → that archive;
    /// - an existing directory, or anything starting with `/`, `./` or `../` → a local path;
    /// - anything else → an npm package spec.
    pub fn detect(text: &str) -> Result<InstallSource, InstallError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(InstallError::Source(
                "the source is empty; give a path, a .tgz file, an npm package or a git URL".into(),
            ));
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("git+")
            || lower.starts_with("file://")
            || lower.starts_with("https://")
            || lower.starts_with("http://")
            || lower.starts_with("ssh://")
            || lower.starts_with("git://")
        {
            return GitSpec::parse(text).map(InstallSource::Git);
        }
        let path = Path::new(text);
        if (lower.ends_with(".tgz") || lower.ends_with(".tar.gz")) && path.is_file() {
            return Ok(InstallSource::Archive(path.to_path_buf()));
        }
        if path.is_dir() {
            return Ok(InstallSource::Path(path.to_path_buf()));
        }
        if text.starts_with('/')
            || text.starts_with("./")
            || text.starts_with("../")
            || text.starts_with('~')
        {
            return Err(InstallError::Source(format!(
                "{text} does not exist; give an existing package directory or .tgz file"
            )));
        }
        NpmSpec::parse(text).map(InstallSource::Npm)
    }

    /// Whether fetching it reads the server's own filesystem: a local directory or archive, or a git
    /// repository at a `file://` URL. `saas_locked` refuses these before fetching anything.
    pub fn reads_server_files(&self) -> bool {
        match self {
            InstallSource::Path(_) | InstallSource::Archive(_) => true,
            InstallSource::Git(spec) => {
                let url = spec.url.trim().to_ascii_lowercase();
                let url = url.strip_prefix("git+").unwrap_or(&url);
                !(url.starts_with("https://") || url.starts_with("http://"))
            }
            _ => false,
        }
    }

    /// `local`, `upload`, `npm` or `git`: the `plugins.source_kind` of what this installs.
    pub fn kind(&self) -> &'static str {
        match self {
            InstallSource::Path(_) => "local",
            InstallSource::Archive(_)
            | InstallSource::Upload { .. }
            | InstallSource::UploadFile { .. } => "upload",
            InstallSource::Npm(_) => "npm",
            InstallSource::Git(_) => "git",
        }
    }
}

impl fmt::Display for InstallSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallSource::Path(p) | InstallSource::Archive(p) => write!(f, "{}", p.display()),
            InstallSource::Upload { name, .. } | InstallSource::UploadFile { name, .. } => {
                write!(f, "upload {name}")
            }
            InstallSource::Npm(spec) => write!(f, "{spec}"),
            InstallSource::Git(spec) => write!(f, "{spec}"),
        }
    }
}

impl NpmSpec {
    /// Reads `name[@request]`.
    pub fn parse(text: &str) -> Result<NpmSpec, InstallError> {
        let text = text.trim();
        let text = text.strip_prefix("npm:").unwrap_or(text);
        let split = text
            .char_indices()
            .filter(|(i, c)| *c == '@' && *i > 0)
            .map(|(i, _)| i)
            .next_back();
        let (name, request) = match split {
            Some(at) => (&text[..at], Some(text[at + 1..].trim())),
            None => (text, None),
        };
        let request = request.filter(|r| !r.is_empty()).map(str::to_string);
        if !valid_npm_name(name) {
            return Err(InstallError::Source(format!(
                "`{text}` is not a path, an archive, a git URL or an npm package name; npm names are lower case, like `nitejar-plugin-jira` or `@acme/jira`"
            )));
        }
        Ok(NpmSpec {
            name: name.to_string(),
            request,
        })
    }
}

fn valid_npm_name(name: &str) -> bool {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~".contains(c))
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, package)) => ok_part(scope) && ok_part(package),
            None => false,
        },
        None => ok_part(name),
    }
}

impl fmt::Display for NpmSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.request {
            Some(r) => write!(f, "{}@{r}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl GitSpec {
    /// Reads `[git+]<url>[#ref]`.
    pub fn parse(text: &str) -> Result<GitSpec, InstallError> {
        let text = text.trim();
        let without = match text.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("git+") => &text[4..],
            _ => text,
        };
        let (url, reference) = match without.split_once('#') {
            Some((u, r)) => (u, Some(r.trim()).filter(|r| !r.is_empty())),
            None => (without, None),
        };
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("ssh://") || lower.starts_with("git://") || lower.starts_with("git@") {
            return Err(InstallError::Source(format!(
                "{url}: only https://, http:// and file:// git URLs are supported (this build has no ssh or git:// transport); use the repository's https URL"
            )));
        }
        if !(lower.starts_with("https://")
            || lower.starts_with("http://")
            || lower.starts_with("file://"))
        {
            return Err(InstallError::Source(format!(
                "{text} is not a git URL; write https://…, file://… or git+https://… with an optional #branch, #tag or #commit"
            )));
        }
        Ok(GitSpec {
            url: url.to_string(),
            reference: reference.map(str::to_string),
        })
    }
}

impl fmt::Display for GitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Some(r) => write!(f, "{}#{r}", self.url),
            None => f.write_str(&self.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart() {
        let npm = |t: &str| match InstallSource::detect(t).unwrap() {
            InstallSource::Npm(s) => (s.name, s.request),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(npm("jira"), ("jira".into(), None));
        assert_eq!(npm("jira@1.2.3"), ("jira".into(), Some("1.2.3".into())));
        assert_eq!(
            npm("@acme/jira@^1"),
            ("@acme/jira".into(), Some("^1".into()))
        );
        assert_eq!(npm("@acme/jira"), ("@acme/jira".into(), None));
        assert_eq!(
            npm("jira@>=1.0.0 <2"),
            ("jira".into(), Some(">=1.0.0 <2".into()))
        );
        let git = |t: &str| match InstallSource::detect(t).unwrap() {
            InstallSource::Git(s) => (s.url, s.reference),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(
            git("git+https://example.com/a.git#v1"),
            ("https://example.com/a.git".into(), Some("v1".into()))
        );
        assert_eq!(git("file:///tmp/repo"), ("file:///tmp/repo".into(), None));
        assert!(InstallSource::detect("git+ssh://x/y").is_err());
        assert!(InstallSource::detect("./nope").is_err());
        assert!(InstallSource::detect("Not A Name").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            InstallSource::detect(dir.path().to_str().unwrap()).unwrap(),
            InstallSource::Path(_)
        ));
        let tgz = dir.path().join("x.tgz");
        std::fs::write(&tgz, b"").unwrap();
        assert!(matches!(
            InstallSource::detect(tgz.to_str().unwrap()).unwrap(),
            InstallSource::Archive(_)
        ));
    }
}
