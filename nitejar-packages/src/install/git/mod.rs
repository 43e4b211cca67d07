//! Git sources, through libgit2 (`git2`, vendored, without its OpenSSL-based https backend).
//!
//! The repository is cloned into `plugins/_cache/git-<random>`, the requested reference is resolved
//! (a branch, then a tag, then a commit id; the remote's default branch when none is given), its
//! tree checked out, and the files copied into staging under the package rules (`.git` and build
//! output left out). The resolved commit is what the plugin row records as its source, so an
//! install can always be traced to the exact commit. `file://` URLs use libgit2's local transport;
//! `http(s)://` URLs use [`http`], a smart-HTTP transport over reqwest with rustls.

mod http;

use std::path::Path;

use git2::build::{CheckoutBuilder, RepoBuilder};
use git2::{FetchOptions, Oid, Repository};

use super::digest::Listing;
use super::source::GitSpec;
use super::tree::copy_tree;
use super::{InstallError, Limits};

/// A checkout copied into staging.
pub(crate) struct GitCheckout {
    pub(crate) listing: Listing,
    /// The full commit id.
    pub(crate) commit: String,
}

/// Clones `spec` into a directory under `cache_dir`, checks out the requested commit and copies
/// its files into `dest`. The clone is removed afterwards, whatever happens.
pub(crate) fn fetch(
    spec: &GitSpec,
    cache_dir: &Path,
    dest: &Path,
    limits: &Limits,
) -> Result<GitCheckout, InstallError> {
    http::register();
    std::fs::create_dir_all(cache_dir).map_err(InstallError::io("create", cache_dir))?;
    let clone_dir = tempfile::Builder::new()
        .prefix("git-")
        .tempdir_in(cache_dir)
        .map_err(InstallError::io("create a clone directory in", cache_dir))?;
    let repo = RepoBuilder::new()
        .fetch_options(FetchOptions::new())
        .clone(&spec.url, clone_dir.path())
        .map_err(|e| git_error(format!("could not clone {}: {}", spec.url, e.message())))?;
    // Tags that no branch reaches are not fetched by a clone; ask for all of them.
    if let Ok(mut origin) = repo.find_remote("origin") {
        origin
            .fetch(&["+refs/tags/*:refs/tags/*"], None, None)
            .map_err(|e| {
                git_error(format!(
                    "could not fetch the tags of {}: {}",
                    spec.url,
                    e.message()
                ))
            })?;
    }
    let commit = resolve(&repo, spec)?;
    let object = repo
        .find_object(commit, None)
        .map_err(|e| git_error(format!("{commit} cannot be read: {}", e.message())))?;
    repo.checkout_tree(&object, Some(CheckoutBuilder::new().force()))
        .map_err(|e| git_error(format!("could not check out {commit}: {}", e.message())))?;
    let listing = copy_tree(clone_dir.path(), dest, limits)?;
    Ok(GitCheckout {
        listing,
        commit: commit.to_string(),
    })
}

/// The commit `spec.reference` names: a branch, a tag, then a (possibly abbreviated) commit id.
fn resolve(repo: &Repository, spec: &GitSpec) -> Result<Oid, InstallError> {
    let Some(reference) = spec.reference.as_deref() else {
        let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(|e| {
            git_error(format!(
                "{} has no default branch to install: {}; add #<branch>, #<tag> or #<commit>",
                spec.url,
                e.message()
            ))
        })?;
        return Ok(head.id());
    };
    let candidates = [
        format!("refs/remotes/origin/{reference}"),
        format!("refs/tags/{reference}"),
        format!("refs/heads/{reference}"),
    ];
    for name in &candidates {
        if let Ok(found) = repo.find_reference(name) {
            if let Ok(commit) = found.peel_to_commit() {
                return Ok(commit.id());
            }
        }
    }
    repo.revparse_single(reference)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|_| {
            git_error(format!(
                "{} has no branch, tag or commit `{reference}`",
                spec.url
            ))
        })
}

fn git_error(message: String) -> InstallError {
    InstallError::Git(message)
}
