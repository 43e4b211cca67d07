//! Installing a 10 MB plugin package (an uploaded `.tgz` whose bulk is one file of random,
//! incompressible bytes) against `tar xzf` + `sha256sum` of the same archive: the floor any
//! installer that unpacks and digests has to stand on. Target: install ≤ 2× that floor.
//!
//! The install is the whole pipeline as an operator runs it: read the archive, unpack it into
//! staging under the package rules, validate the manifest, digest every file, apply the trust
//! policy (open mode), write the rows and the stored package to SQLite, rename into the version
//! directory, point `current` at it. Each sample uninstalls (untimed) before the next.
//!
//! `cargo bench --bench install` prints both medians and their ratio after criterion's report.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::install::archive::{write_tgz, ArchiveFile};
use nitejar_core::install::digest::FileKind;
use nitejar_core::install::InstallSource;
use nitejar_core::lifecycle::{ManagerOptions, PluginManager, UninstallOptions};
use nitejar_core::permissions::PermissionGate;
use nitejar_core::receipts::MemorySink;
use nitejar_core::runtime::Runtime;
use nitejar_core::trust::{TrustMode, TrustPolicy};

const BLOB: usize = 10 * 1024 * 1024;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn package() -> Vec<u8> {
    let manifest = br#"{"schemaVersion":1,"id":"dev.bench.blob","name":"Blob","version":"1.0.0",
        "engine":{"nitejar":">=0.1.0 <1.0.0"},"contributes":{"skills":["notes"]}}"#;
    let files = vec![
        ArchiveFile {
            path: "nitejar.plugin.json".into(),
            kind: FileKind::File,
            contents: manifest.to_vec(),
        },
        ArchiveFile {
            path: "skills/notes/SKILL.md".into(),
            kind: FileKind::File,
            contents: b"---\nname: notes\n---\nTake notes.".to_vec(),
        },
        ArchiveFile {
            path: "assets/blob.bin".into(),
            kind: FileKind::File,
            contents: random_bytes(BLOB),
        },
    ];
    let mut out = Vec::new();
    write_tgz(&files, 6, &mut out).expect("tgz");
    out
}

fn median(samples: &Mutex<Vec<Duration>>) -> Duration {
    let mut all = samples.lock().map(|s| s.clone()).unwrap_or_default();
    all.sort();
    all.get(all.len() / 2).copied().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let work = tempfile::tempdir().expect("temp dir");
    let archive: PathBuf = work.path().join("blob-1.0.0.tgz");
    std::fs::write(&archive, package()).expect("write archive");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let data = work.path().join("data");
    let manager = rt.block_on(async {
        let key = Key::parse(&"00".repeat(32)).expect("key");
        let store = nitejar_core::store::open(
            &data.join("nitejar.db").display().to_string(),
            Cipher::new(&key),
        )
        .await
        .expect("store");
        let sink = MemorySink::new();
        let gate = Arc::new(PermissionGate::new(&data, sink.clone()));
        let runtime = Arc::new(Runtime::builder().sink(sink).services(gate.clone()).build());
        let mut options = ManagerOptions::new(&data);
        options.policy = TrustPolicy::new(TrustMode::SelfHostOpen);
        PluginManager::new(store, runtime, gate, options, None)
    });
    let purge = UninstallOptions {
        purge_files: true,
        purge_data: true,
    };

    let installs = Mutex::new(Vec::new());
    let floor = Mutex::new(Vec::new());
    let mut group = c.benchmark_group("install_10mb");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("nitejar_install_upload_tgz", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                rt.block_on(manager.install(InstallSource::Archive(archive.clone())))
                    .expect("install");
                let took = started.elapsed();
                total += took;
                if let Ok(mut s) = installs.lock() {
                    s.push(took);
                }
                rt.block_on(manager.uninstall("dev.bench.blob", purge))
                    .expect("uninstall");
            }
            total
        })
    });
    group.bench_function("tar_xzf_and_sha256sum", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let out = work.path().join("untar");
                std::fs::create_dir_all(&out).expect("mkdir");
                let started = Instant::now();
                run(Command::new("tar")
                    .arg("xzf")
                    .arg(&archive)
                    .arg("-C")
                    .arg(&out));
                run(Command::new("sha256sum").arg(out.join("package/assets/blob.bin")));
                let took = started.elapsed();
                total += took;
                if let Ok(mut s) = floor.lock() {
                    s.push(took);
                }
                std::fs::remove_dir_all(&out).expect("clean");
            }
            total
        })
    });
    group.finish();
    let (a, b) = (median(&installs), median(&floor));
    println!(
        "install of a 10 MB package: median {:.1} ms; tar xzf + sha256sum: median {:.1} ms; ratio {:.2}x (target <= 2x)",
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        a.as_secs_f64() / b.as_secs_f64().max(1e-9)
    );
}

fn run(command: &mut Command) {
    let status = command
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "{command:?} failed");
}

criterion_group!(benches, bench);
criterion_main!(benches);
