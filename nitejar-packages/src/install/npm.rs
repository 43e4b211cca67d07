//! The npm registry protocol, as much of it as installing needs: the package document, a version
//! chosen from it, the tarball, and its `dist.integrity` checked before anything is unpacked.

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use semver::Version;
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::source::NpmSpec;
use super::{InstallError, Limits};
use crate::manifest::EngineRange;

/// The public npm registry.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";

/// Which registry to ask, and how.
#[derive(Clone, PartialEq, Eq)]
pub struct NpmConfig {
    /// The registry's base URL (`NITEJAR_NPM_REGISTRY`).
    pub registry: String,
    /// A bearer token (`NITEJAR_NPM_TOKEN`), sent only to the registry's own host.
    pub token: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
}

impl Default for NpmConfig {
    fn default() -> Self {
        NpmConfig {
            registry: DEFAULT_REGISTRY.to_string(),
            token: None,
            timeout: Duration::from_secs(120),
        }
    }
}

impl std::fmt::Debug for NpmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpmConfig")
            .field("registry", &self.registry)
            .field("token", &self.token.as_ref().map(|_| "••••"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A tarball fetched and verified.
#[derive(Clone)]
pub(crate) struct NpmTarball {
    pub(crate) version: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) integrity: String,
}

#[derive(Deserialize)]
struct Packument {
    #[serde(default, rename = "dist-tags")]
    dist_tags: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    versions: std::collections::BTreeMap<String, VersionDoc>,
}

#[derive(Deserialize)]
struct VersionDoc {
    dist: Dist,
}

#[derive(Deserialize)]
struct Dist {
    tarball: String,
    #[serde(default)]
    integrity: Option<String>,
}

/// Fetches `spec` from the registry: the package document, the chosen version's tarball, checked
/// against its `dist.integrity`.
pub(crate) fn fetch(
    spec: &NpmSpec,
    config: &NpmConfig,
    limits: &Limits,
) -> Result<NpmTarball, InstallError> {
    let client = reqwest::blocking::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("nitejar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| npm_error(format!("the HTTP client did not start: {e}")))?;
    let base = config.registry.trim_end_matches('/');
    let registry_url = reqwest::Url::parse(base).map_err(|e| {
        npm_error(format!(
            "NITEJAR_NPM_REGISTRY `{base}` is not a URL ({e}); set it to e.g. {DEFAULT_REGISTRY}"
        ))
    })?;
    // Scoped names keep their `@` and escape the `/`, as the registry expects.
    let document_url = format!("{base}/{}", spec.name.replace('/', "%2f"));
    let request = client.get(&document_url).header(
        "accept",
        "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8",
    );
    let response = authorised(request, config, &registry_url, &document_url)
        .send()
        .map_err(|e| npm_error(format!("could not reach the registry at {base}: {e}")))?;
    let status = response.status().as_u16();
    match status {
        200 => {}
        404 => {
            return Err(InstallError::NpmNotFound {
                name: spec.name.clone(),
                registry: base.to_string(),
            })
        }
        401 | 403 => {
            return Err(npm_error(format!(
                "the registry {base} refused access to `{}` ({status}); set NITEJAR_NPM_TOKEN to a token that may read it",
                spec.name
            )))
        }
        _ => {
            return Err(npm_error(format!(
                "the registry {base} answered {status} for `{}`",
                spec.name
            )))
        }
    }
    let body = response.bytes().map_err(|e| {
        npm_error(format!(
            "the registry's document for `{}` could not be read: {e}",
            spec.name
        ))
    })?;
    let document: Packument = serde_json::from_slice(&body).map_err(|e| {
        npm_error(format!(
            "the registry's document for `{}` cannot be read: {e}",
            spec.name
        ))
    })?;
    let version = choose_version(spec, &document)?;
    let doc = document.versions.get(&version).ok_or_else(|| {
        npm_error(format!(
            "the registry lists no version {version} of `{}`",
            spec.name
        ))
    })?;
    let integrity = doc.dist.integrity.clone().ok_or_else(|| {
        npm_error(format!(
            "{}@{version} has no dist.integrity in the registry; Nitejar installs only tarballs it can verify",
            spec.name
        ))
    })?;
    let request = client.get(&doc.dist.tarball);
    let response = authorised(request, config, &registry_url, &doc.dist.tarball)
        .send()
        .map_err(|e| npm_error(format!("could not download {}: {e}", doc.dist.tarball)))?;
    if !response.status().is_success() {
        return Err(npm_error(format!(
            "downloading {} answered {}",
            doc.dist.tarball,
            response.status().as_u16()
        )));
    }
    let mut bytes = Vec::new();
    response
        .take(limits.max_archive_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| npm_error(format!("downloading {} failed: {e}", doc.dist.tarball)))?;
    if bytes.len() as u64 > limits.max_archive_bytes {
        return Err(InstallError::TooLarge {
            what: "the archive",
            limit: limits.max_archive_bytes,
        });
    }
    verify_integrity(&integrity, &bytes).map_err(|actual| InstallError::Integrity {
        package: format!("{}@{version}", spec.name),
        expected: integrity.clone(),
        actual,
    })?;
    Ok(NpmTarball {
        version,
        bytes,
        integrity,
    })
}

/// Adds the bearer token when the request goes to the registry's own scheme, host and port.
fn authorised(
    request: reqwest::blocking::RequestBuilder,
    config: &NpmConfig,
    registry: &reqwest::Url,
    url: &str,
) -> reqwest::blocking::RequestBuilder {
    let same_origin = reqwest::Url::parse(url).is_ok_and(|u| {
        u.scheme() == registry.scheme()
            && u.host_str() == registry.host_str()
            && u.port_or_known_default() == registry.port_or_known_default()
    });
    match (&config.token, same_origin) {
        (Some(token), true) => request.bearer_auth(token),
        _ => request,
    }
}

fn choose_version(spec: &NpmSpec, document: &Packument) -> Result<String, InstallError> {
    let request = spec.request.as_deref().unwrap_or("latest");
    if let Some(tagged) = document.dist_tags.get(request) {
        return Ok(tagged.clone());
    }
    if document.versions.contains_key(request) {
        return Ok(request.to_string());
    }
    let range = EngineRange::parse(request).map_err(|e| {
        npm_error(format!(
            "`{request}` is neither a dist-tag of `{}`, one of its versions, nor a version range ({e})",
            spec.name
        ))
    })?;
    document
        .versions
        .keys()
        .filter_map(|v| Version::parse(v).ok())
        .filter(|v| range.matches(v))
        .max()
        .map(|v| v.to_string())
        .ok_or_else(|| InstallError::NpmNoMatchingVersion {
            name: spec.name.clone(),
            request: request.to_string(),
        })
}

/// Checks Subresource Integrity text (`sha512-<base64>`, several hashes separated by spaces):
/// the strongest algorithm present must match. `Err` holds the actual digest in the same form.
pub(crate) fn verify_integrity(integrity: &str, bytes: &[u8]) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut best: Option<(u8, &str, &str)> = None;
    for token in integrity.split_whitespace() {
        let Some((algorithm, value)) = token.split_once('-') else {
            continue;
        };
        let value = value.split('?').next().unwrap_or(value);
        let rank = match algorithm {
            "sha512" => 3,
            "sha384" => 2,
            "sha256" => 1,
            _ => continue,
        };
        if best.is_none_or(|(r, _, _)| rank > r) {
            best = Some((rank, algorithm, value));
        }
    }
    let Some((_, algorithm, expected)) = best else {
        return Err(format!("sha512-{}", b64.encode(Sha512::digest(bytes))));
    };
    let actual = match algorithm {
        "sha512" => b64.encode(Sha512::digest(bytes)),
        "sha384" => b64.encode(Sha384::digest(bytes)),
        _ => b64.encode(Sha256::digest(bytes)),
    };
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{algorithm}-{actual}"))
    }
}

fn npm_error(message: String) -> InstallError {
    InstallError::Npm(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_is_checked_with_the_strongest_hash() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let good = format!("sha512-{}", b64.encode(Sha512::digest(b"pkg")));
        assert!(verify_integrity(&good, b"pkg").is_ok());
        assert_eq!(
            verify_integrity(&good, b"other").unwrap_err().len(),
            good.len()
        );
        let weak_ok_strong_bad = format!(
            "sha256-{} sha512-{}",
            b64.encode(Sha256::digest(b"pkg")),
            b64.encode(Sha512::digest(b"other"))
        );
        assert!(verify_integrity(&weak_ok_strong_bad, b"pkg").is_err());
        assert!(verify_integrity("md5-xyz", b"pkg").is_err());
    }

    #[test]
    fn versions_are_chosen_as_npm_does() {
        let doc: Packument = serde_json::from_str(
            r#"{"dist-tags":{"latest":"1.2.0","next":"2.0.0-beta.1"},
                "versions":{"1.0.0":{"dist":{"tarball":"t"}},"1.2.0":{"dist":{"tarball":"t"}},
                            "1.3.0-rc.1":{"dist":{"tarball":"t"}},"2.0.0-beta.1":{"dist":{"tarball":"t"}}}}"#,
        )
        .unwrap();
        let pick = |r: Option<&str>| {
            choose_version(
                &NpmSpec {
                    name: "x".into(),
                    request: r.map(str::to_string),
                },
                &doc,
            )
        };
        assert_eq!(pick(None).unwrap(), "1.2.0");
        assert_eq!(pick(Some("next")).unwrap(), "2.0.0-beta.1");
        assert_eq!(pick(Some("1.0.0")).unwrap(), "1.0.0");
        assert_eq!(pick(Some("^1")).unwrap(), "1.2.0");
        assert_eq!(pick(Some(">=1.0.0 <1.2.0")).unwrap(), "1.0.0");
        assert!(matches!(
            pick(Some("^3")),
            Err(InstallError::NpmNoMatchingVersion { .. })
        ));
    }
}
