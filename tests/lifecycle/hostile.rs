//! Hostile archives, one test per attack: each is refused with a clear error, nothing is written
//! outside staging, and a failed install leaves no trace but its receipt.

use std::io::Write;

use nitejar_core::install::{InstallError, InstallSource, Installer, Layout, Limits};
use nitejar_suite::plugins::crate_manifest;

use crate::on_both_backends;
use crate::support::{greeter, tgz, Env, GREETER};
use crate::testdb::TestDb;

/// A raw tar entry: the name is written into the header as it is, bypassing the tar crate's own
/// checks (an attacker's archive is not made with them).
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: Option<&'a str>,
    data: &'a [u8],
}

fn archive(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut tar = Vec::new();
    let manifest =
        serde_json::to_vec(&crate_manifest("tests/fixtures/plugins/greeter-v1")).unwrap();
    let mut all = vec![Raw {
        name: "package/nitejar.plugin.json",
        kind: tar::EntryType::Regular,
        link: None,
        data: &manifest,
    }];
    all.extend(entries.iter().map(|e| Raw {
        name: e.name,
        kind: e.kind,
        link: e.link,
        data: e.data,
    }));
    for e in &all {
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            if let Some(link) = e.link {
                old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
        }
        header.set_entry_type(e.kind);
        header.set_size(e.data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(e.data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn stage(bytes: Vec<u8>, limits: Limits) -> (tempfile::TempDir, InstallError) {
    let data = tempfile::tempdir().unwrap();
    let err = stage_in(&data, bytes, limits);
    (data, err)
}

/// Stages `bytes` with the data directory `data`; the refusal. Staging is left empty.
fn stage_in(data: &tempfile::TempDir, bytes: Vec<u8>, limits: Limits) -> InstallError {
    let installer = Installer::new(Layout::new(data.path())).with_limits(limits);
    let err = installer
        .stage(InstallSource::Upload {
            name: "evil.tgz".into(),
            bytes,
        })
        .expect_err("the archive must be refused");
    let staging = data.path().join("plugins/_staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging is cleaned up: {left:?}");
    err
}

/// Where a staged archive's entries are unpacked, relative to the data directory
/// (`plugins/_staging/stage-…/package`, then the archive's own `package/`): `UP` climbs from there
/// back to the data directory, where the attacks below aim at its `outside` directory.
const UP: &str = "package/../../../../..";

/// Stages an archive holding `entry`, in which `{outside}` stands for the absolute path of a
/// directory `outside` beside the data directory's `plugins` (and `{up}` for [`UP`]): it must be
/// refused with `expect`, and nothing may have reached `outside`.
fn refused(entry: Raw<'_>, expect: &str) {
    let data = tempfile::tempdir().unwrap();
    let outside = data.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let place = |text: &str| {
        text.replace("{outside}", &outside.display().to_string())
            .replace("{up}", UP)
    };
    let name = place(entry.name);
    let link = entry.link.map(place);
    let bytes = archive(&[Raw {
        name: &name,
        kind: entry.kind,
        link: link.as_deref(),
        data: entry.data,
    }]);
    let err = stage_in(&data, bytes, Limits::default());
    assert!(matches!(err, InstallError::Refused { .. }), "{err}");
    assert!(err.to_string().contains(expect), "{err}");
    let reached: Vec<_> = std::fs::read_dir(&outside).unwrap().flatten().collect();
    assert!(reached.is_empty(), "written outside staging: {reached:?}");
}

/// The attacks aim where they claim: a path built like theirs, written without the installer's
/// checks, lands in `outside`.
#[test]
fn the_attacks_aim_at_the_outside_directory() {
    let data = tempfile::tempdir().unwrap();
    let unpacked = data.path().join("plugins/_staging/stage-x/package");
    std::fs::create_dir_all(unpacked.join("package")).unwrap();
    std::fs::create_dir(data.path().join("outside")).unwrap();
    std::fs::write(unpacked.join(format!("{UP}/outside/evil")), b"x").unwrap();
    assert!(data.path().join("outside/evil").exists());
}

#[test]
fn absolute_paths_are_refused() {
    refused(
        Raw {
            name: "{outside}/evil",
            kind: tar::EntryType::Regular,
            link: None,
            data: b"x",
        },
        "absolute path",
    );
}

#[test]
fn parent_components_are_refused() {
    refused(
        Raw {
            name: "{up}/outside/evil",
            kind: tar::EntryType::Regular,
            link: None,
            data: b"x",
        },
        "`..`",
    );
}

#[test]
fn links_leaving_the_tree_are_refused() {
    refused(
        Raw {
            name: "package/out",
            kind: tar::EntryType::Symlink,
            link: Some("{outside}"),
            data: b"",
        },
        "absolute path",
    );
    refused(
        Raw {
            name: "package/up",
            kind: tar::EntryType::Symlink,
            link: Some("../../../../../outside"),
            data: b"",
        },
        "goes up through `..`",
    );
}

#[test]
fn hard_links_are_refused() {
    refused(
        Raw {
            name: "package/evil",
            kind: tar::EntryType::Link,
            link: Some("{outside}/evil"),
            data: b"",
        },
        "hard link",
    );
}

#[test]
fn device_files_are_refused() {
    refused(
        Raw {
            name: "package/sda",
            kind: tar::EntryType::Block,
            link: None,
            data: b"",
        },
        "device file",
    );
    refused(
        Raw {
            name: "package/tty",
            kind: tar::EntryType::Char,
            link: None,
            data: b"",
        },
        "device file",
    );
}

#[test]
fn fifos_are_refused() {
    refused(
        Raw {
            name: "package/pipe",
            kind: tar::EntryType::Fifo,
            link: None,
            data: b"",
        },
        "FIFO",
    );
}

#[test]
fn too_many_bytes_are_refused() {
    let big = vec![7u8; 64 * 1024];
    let limits = Limits {
        max_bytes: 32 * 1024,
        ..Limits::default()
    };
    let (_, err) = stage(
        archive(&[Raw {
            name: "package/big.bin",
            kind: tar::EntryType::Regular,
            link: None,
            data: &big,
        }]),
        limits,
    );
    assert!(matches!(err, InstallError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains("NITEJAR_PLUGIN_MAX_BYTES"),
        "{err}"
    );
}

#[test]
fn too_many_files_are_refused() {
    let names: Vec<String> = (0..20).map(|i| format!("package/f{i}")).collect();
    let entries: Vec<Raw<'_>> = names
        .iter()
        .map(|n| Raw {
            name: n,
            kind: tar::EntryType::Regular,
            link: None,
            data: b"x",
        })
        .collect();
    let limits = Limits {
        max_files: 10,
        ..Limits::default()
    };
    let (_, err) = stage(archive(&entries), limits);
    assert!(
        matches!(err, InstallError::TooManyFiles { limit: 10 }),
        "{err}"
    );
}

#[test]
fn decompression_bombs_are_refused_while_streaming() {
    // 1 GiB of zeros compresses to about 1 MiB; it must be stopped long before it is inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut header = tar::Header::new_gnu();
    header.set_path("package/zeros.bin").unwrap();
    header.set_size(1 << 30);
    header.set_cksum();
    gz.write_all(header.as_bytes()).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        gz.write_all(&chunk).unwrap();
    }
    let bomb = gz.finish().unwrap();
    let started = std::time::Instant::now();
    let limits = Limits {
        max_bytes: 2 << 30,
        max_archive_bytes: 2 << 30,
        ..Limits::default()
    };
    let (data, err) = stage(bomb, limits);
    assert!(matches!(err, InstallError::Bomb { .. }), "{err}");
    assert!(err.to_string().contains("decompression bomb"), "{err}");
    assert!(started.elapsed().as_secs() < 30);
    drop(data);
}

#[test]
fn not_an_archive_is_refused() {
    let (_, err) = stage(b"this is not gzip".to_vec(), Limits::default());
    assert!(err.to_string().contains("not a readable .tgz"), "{err}");
}

/// Through the lifecycle: refused, receipted, nothing left (no rows, no directories).
async fn a_refused_install_leaves_only_its_receipt(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    let evil = archive(&[Raw {
        name: "package/../../evil",
        kind: tar::EntryType::Regular,
        link: None,
        data: b"x",
    }]);
    let err = env
        .manager
        .install(InstallSource::Upload {
            name: "evil.tgz".into(),
            bytes: evil,
        })
        .await
        .unwrap_err();
    assert!(err.is_refusal(), "{err}");
    assert!(env
        .store
        .list_plugins()
        .await
        .unwrap()
        .iter()
        .all(|p| p.source_kind == "builtin"));
    let plugins = env.manager.layout().plugins_dir().to_path_buf();
    let left: Vec<String> = std::fs::read_dir(&plugins)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.iter().all(|n| n.starts_with('_')), "{left:?}");
    assert_eq!(
        std::fs::read_dir(plugins.join("_staging")).unwrap().count(),
        0
    );
    let receipts = env.receipts_of("nitejar.install", "install").await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].0, "denied");
    // A good package still installs afterwards.
    env.manager
        .install(InstallSource::Upload {
            name: "g.tgz".into(),
            bytes: tgz(&greeter(1)),
        })
        .await
        .unwrap();
    assert!(env.store.get_plugin(GREETER).await.unwrap().is_some());
}

on_both_backends!(a_refused_install_leaves_only_its_receipt);
