//! A fake npm registry: one package at a time, behind the bearer token `t0ken` (what
//! `NITEJAR_NPM_TOKEN` and npm's `_authToken` send).

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

use super::*;

/// A local npm registry: `GET /<name>` answers the packument of what [`Registry::serve`] was given
/// (404 before), `GET /tarballs/<file>` the tarball; everything else is a 404, as the registry
/// answers an unknown name. It requires the bearer token `t0ken`, as a private registry would.
pub struct Registry {
    pub http: LocalHttp,
    package: Arc<Mutex<Option<Published>>>,
}

/// A package the registry serves: its name, version and tarball.
type Published = (String, String, Vec<u8>);

impl Registry {
    pub fn start() -> Registry {
        let package: Arc<Mutex<Option<Published>>> = Arc::default();
        let served = package.clone();
        let http = LocalHttp::start(move |r| {
            if r.header("authorization") != Some("Bearer t0ken") {
                return Reply::text(401, "unauthorized");
            }
            let host = r.header("host").unwrap_or("127.0.0.1").to_string();
            let Ok(guard) = served.lock() else {
                return Reply::text(500, "poisoned");
            };
            let Some((name, version, bytes)) = guard.as_ref() else {
                return json_reply(404, &json!({"error": "Not found"}));
            };
            let file = format!("{name}-{version}.tgz");
            if r.path == format!("/{name}") {
                let integrity = format!(
                    "sha512-{}",
                    base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(bytes))
                );
                json_reply(
                    200,
                    &json!({
                        "name": name,
                        "dist-tags": { "latest": version },
                        "versions": { version.as_str(): {
                            "name": name, "version": version,
                            "dist": {
                                "tarball": format!("http://{host}/tarballs/{file}"),
                                "integrity": integrity,
                            }
                        } }
                    }),
                )
            } else if r.path == format!("/tarballs/{file}") {
                Reply {
                    status: 200,
                    headers: vec![("content-type".into(), "application/octet-stream".into())],
                    body: bytes.clone(),
                }
            } else {
                json_reply(404, &json!({"error": "Not found"}))
            }
        });
        Registry { http, package }
    }

    pub fn serve(&self, name: &str, version: &str, tarball: Vec<u8>) {
        if let Ok(mut package) = self.package.lock() {
            *package = Some((name.into(), version.into(), tarball));
        }
    }
}
