//! What the lifecycle tests share: an engine on a real database and data directory, real plugin
//! packages built from the fixture crates, hashes of the integration rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nitejar_core::engine::Engine;
use nitejar_core::install::archive::{write_tgz, ArchiveFile};
use nitejar_core::install::digest::FileKind;
use nitejar_core::lifecycle::{ManagerOptions, PluginManager};
use nitejar_core::runtime::Runtime;
use nitejar_core::store::{DbReceiptSink, NewIntegration, PageRequest, PluginEventRow, Store};
use nitejar_core::trust::{TrustMode, TrustPolicy};
use nitejar_suite::plugins::{crate_manifest, library};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::testdb::TestDb;

pub const GREETER: &str = "dev.nitejar.fixtures.greeter";

pub struct Env {
    pub data: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub sink: Arc<DbReceiptSink>,
    pub runtime: Arc<Runtime>,
    pub manager: Arc<PluginManager>,
    pub options: ManagerOptions,
}

/// Open mode unless the test says otherwise.
pub fn options(data: &Path) -> ManagerOptions {
    let mut options = ManagerOptions::new(data);
    options.policy = TrustPolicy::new(TrustMode::SelfHostOpen);
    options
}

impl Env {
    pub async fn new(db: &TestDb, edit: impl FnOnce(&mut ManagerOptions)) -> Env {
        nitejar_builtins::link();
        let data = tempfile::tempdir().expect("data dir");
        let mut opts = options(data.path());
        edit(&mut opts);
        let store = db.open().await;
        Env::with(data, store, opts).await
    }

    /// Another process on the same data directory and database (the CLI beside a server, or the
    /// server after a restart).
    pub async fn with(
        data: tempfile::TempDir,
        store: Arc<dyn Store>,
        options: ManagerOptions,
    ) -> Env {
        // Assembled as the server assembles it.
        let engine = Engine::builder_on(store.clone(), options.clone())
            .runs_plugins()
            .open()
            .await
            .expect("engine");
        Env {
            data,
            store,
            sink: engine.receipts,
            runtime: engine.runtime,
            manager: engine.plugins,
            options,
        }
    }

    /// A fresh process on the same data directory and database (a restart).
    pub async fn restart(self, edit: impl FnOnce(&mut ManagerOptions)) -> Env {
        self.sink.shutdown().await;
        let mut options = self.options.clone();
        edit(&mut options);
        Env::with(self.data, self.store, options).await
    }

    pub async fn receipts(&self, id: &str) -> Vec<PluginEventRow> {
        use nitejar_core::receipts::ReceiptSink;
        self.sink.flush().await;
        self.store
            .list_plugin_events(id, PageRequest::first(500))
            .await
            .expect("receipts")
            .items
    }

    /// Receipts of a kind, newest first, as `(status, detail)`.
    pub async fn receipts_of(&self, id: &str, kind: &str) -> Vec<(String, Value)> {
        self.receipts(id)
            .await
            .into_iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.status.clone(), r.detail().unwrap_or(Value::Null)))
            .collect()
    }
}

/// A package's files: the fixture crate's manifest (after `edit`) and its built library at the
/// manifest's `entry`, plus `extra` files.
pub fn package_files(
    crate_dir: &str,
    lib_name: &str,
    edit: impl FnOnce(&mut Value),
    extra: &[(&str, &[u8])],
) -> Vec<ArchiveFile> {
    let mut manifest = crate_manifest(crate_dir);
    edit(&mut manifest);
    let entry = manifest["entry"]
        .as_str()
        .unwrap_or("lib/plugin.so")
        .to_string();
    let lib = std::fs::read(library(lib_name)).expect("built library");
    let mut files = vec![
        ArchiveFile {
            path: "nitejar.plugin.json".into(),
            kind: FileKind::File,
            contents: serde_json::to_vec_pretty(&manifest).expect("json"),
        },
        ArchiveFile {
            path: entry,
            kind: FileKind::Executable,
            contents: lib,
        },
    ];
    for (path, contents) in extra {
        files.push(ArchiveFile {
            path: path.to_string(),
            kind: FileKind::File,
            contents: contents.to_vec(),
        });
    }
    files
}

/// The files as an npm-style `.tgz` (under `package/`).
pub fn tgz(files: &[ArchiveFile]) -> Vec<u8> {
    let mut out = Vec::new();
    write_tgz(files, 1, &mut out).expect("tgz");
    out
}

/// A greeter package of version 1 or 2.
pub fn greeter(version: u8) -> Vec<ArchiveFile> {
    let (dir, lib) = match version {
        1 => ("tests/fixtures/plugins/greeter-v1", "greeter_v1"),
        _ => ("tests/fixtures/plugins/greeter-v2", "greeter_v2"),
    };
    package_files(dir, lib, |_| {}, &[])
}

/// Writes the files as a package directory.
pub fn write_dir(dir: &Path, files: &[ArchiveFile]) -> PathBuf {
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &f.contents).expect("write");
        #[cfg(unix)]
        if f.kind == FileKind::Executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    dir.to_path_buf()
}

/// Creates integration rows, and returns a hash of every integration row as stored.
pub async fn seed_integrations(store: &Arc<dyn Store>) {
    for (kind, name) in [
        ("telegram", "Support bot"),
        ("greeter-type", "Orphan of a plugin"),
    ] {
        let mut config = serde_json::Map::new();
        config.insert("bot_token".into(), "123:abc".into());
        store
            .create_integration(
                NewIntegration::new(kind, name, config),
                &["bot_token".into()],
            )
            .await
            .expect("integration");
    }
}

/// sha256 of every integration row, in id order.
pub async fn integrations_hash(store: &Arc<dyn Store>) -> String {
    let rows = store.list_integrations(None).await.expect("integrations");
    let mut hasher = Sha256::new();
    for row in rows {
        hasher.update(serde_json::to_vec(&row).expect("row json"));
    }
    hex::encode(hasher.finalize())
}
