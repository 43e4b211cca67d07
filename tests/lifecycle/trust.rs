//! Trust modes: consent, acknowledgements, signatures (valid, wrong key, tampered), the allowlist,
//! saas_locked.

use nitejar_core::install::archive::ArchiveFile;
use nitejar_core::install::digest::FileKind;
use nitejar_core::install::{digest_dir, InstallSource};
use nitejar_core::lifecycle::{
    Acknowledge, EnableRequest, LifecycleError, TrustEntryKind, TRUST_RECEIPT_ID,
};
use nitejar_core::trust::{TrustMode, TrustPolicy};

use crate::on_both_backends;
use crate::support::{package_files, tgz, write_dir, Env};
use crate::testdb::TestDb;

const PROBE: &str = "dev.nitejar.fixtures.probe";

fn probe() -> Vec<ArchiveFile> {
    package_files(
        "tests/fixtures/plugins/probe",
        "probe",
        |_| {},
        &[("assets/readme.txt", b"hi")],
    )
}

/// The package's digest, computed as the installer computes it.
fn digest_of(files: &[ArchiveFile]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), files);
    digest_dir(dir.path()).unwrap()
}

/// The files with `nitejar.plugin.sig` signed by `key`.
fn signed(files: &[ArchiveFile], key: &minisign::KeyPair) -> Vec<ArchiveFile> {
    let digest = digest_of(files);
    let sig = minisign::sign(
        Some(&key.pk),
        &key.sk,
        digest.as_bytes(),
        Some("test"),
        None,
    )
    .unwrap();
    let mut out = files.to_vec();
    out.push(ArchiveFile {
        path: "nitejar.plugin.sig".into(),
        kind: FileKind::File,
        contents: sig.to_string().into_bytes(),
    });
    out
}

fn public(key: &minisign::KeyPair) -> String {
    key.pk.to_base64()
}

fn upload(files: &[ArchiveFile]) -> InstallSource {
    InstallSource::Upload {
        name: "probe.tgz".into(),
        bytes: tgz(files),
    }
}

fn guarded(keys: &[String], allow: &str) -> TrustPolicy {
    TrustPolicy::new(TrustMode::SelfHostGuarded)
        .with_keys(TrustPolicy::parse_keys(&keys.join(",")).unwrap())
        .with_allowlist(TrustPolicy::parse_allowlist(allow).unwrap())
}

async fn consent_and_acknowledgements(db: TestDb) {
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let env = Env::new(&db, |o| o.policy = guarded(&[public(&key)], "")).await;
    env.manager
        .install(upload(&signed(&probe(), &key)))
        .await
        .unwrap();
    // Consent is never implied.
    let err = env
        .manager
        .enable(PROBE, EnableRequest::default())
        .await
        .unwrap_err();
    let LifecycleError::ConsentRequired { text, .. } = &err else {
        panic!("{err}")
    };
    assert!(text.contains("In-process (No hard sandbox)"), "{text}");
    assert!(text.contains("network:127.0.0.1"), "{text}");
    assert!(text.contains(
        "Partially enforced in current execution mode; plugin code still runs in-process."
    ));
    // Guarded: every declared permission acknowledged.
    let some = EnableRequest {
        accept_consent: true,
        acknowledge: Acknowledge::These(vec!["network:127.0.0.1".into()]),
    };
    let err = env.manager.enable(PROBE, some).await.unwrap_err();
    let LifecycleError::AcknowledgementMissing { missing, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        missing,
        &[
            "fs.read:assets".to_string(),
            "secret:PROBE_TOKEN".to_string()
        ]
    );
    let unknown = EnableRequest {
        accept_consent: true,
        acknowledge: Acknowledge::These(vec!["process.spawn".into()]),
    };
    assert!(matches!(
        env.manager.enable(PROBE, unknown).await,
        Err(LifecycleError::UnknownAcknowledgement { .. })
    ));
    let rest = EnableRequest {
        accept_consent: true,
        acknowledge: Acknowledge::These(vec!["fs.read:assets".into(), "secret:PROBE_TOKEN".into()]),
    };
    let outcome = env.manager.enable(PROBE, rest).await.unwrap();
    assert_eq!(outcome.acknowledged.len(), 3);
    assert!(
        env.runtime.registry().integration("probe").is_some(),
        "enabled = registered at once"
    );
    let acks = env.store.list_disclosure_acks(PROBE).await.unwrap();
    assert_eq!(acks.iter().filter(|a| a.acknowledged).count(), 3);
    let enables = env.receipts_of(PROBE, "enable").await;
    let statuses: Vec<&str> = enables.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["ok", "error", "denied", "denied"],
        "every refusal is receipted"
    );
    assert_eq!(enables[0].1["consent"], "accepted");
    env.manager.disable(PROBE).await.unwrap();
    assert!(
        env.runtime.registry().integration("probe").is_none(),
        "disabled = unregistered at once"
    );
}

async fn signatures_and_allowlist(db: TestDb) {
    let trusted = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let all = EnableRequest::accept_all;

    // A valid signature by a trusted key.
    let env = Env::new(&db, |o| o.policy = guarded(&[public(&trusted)], "")).await;
    let outcome = env
        .manager
        .install(upload(&signed(&probe(), &trusted)))
        .await
        .unwrap();
    assert_eq!(outcome.trust_level, "trusted");
    env.manager.enable(PROBE, all()).await.unwrap();
    purge(&env).await;

    // Signed by a key that is not trusted: installs, cannot be enabled, and says why.
    let env = Env::new(&db, |o| o.policy = guarded(&[public(&trusted)], "")).await;
    let outcome = env
        .manager
        .install(upload(&signed(&probe(), &stranger)))
        .await
        .unwrap();
    assert!(outcome
        .enable_blocker
        .as_deref()
        .unwrap_or("")
        .contains("not in NITEJAR_PLUGIN_TRUSTED_KEYS"));
    let err = env.manager.enable(PROBE, all()).await.unwrap_err();
    assert!(matches!(err, LifecycleError::Trust { .. }), "{err}");
    assert!(
        err.to_string().contains("NITEJAR_PLUGIN_ALLOWLIST"),
        "{err}"
    );
    assert!(env.runtime.registry().plugin(PROBE).is_none());
    purge(&env).await;

    // A file changed after signing: refused at install, in any mode.
    let mut tampered = signed(&probe(), &trusted);
    if let Some(f) = tampered.iter_mut().find(|f| f.path == "assets/readme.txt") {
        f.contents = b"changed".to_vec();
    }
    let env = Env::new(&db, |o| o.policy = guarded(&[public(&trusted)], "")).await;
    let err = env.manager.install(upload(&tampered)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not match the package contents"),
        "{err}"
    );
    assert!(env.store.get_plugin(PROBE).await.unwrap().is_none());
    assert_eq!(env.receipts_of(PROBE, "install").await[0].0, "denied");

    // Unsigned but allowlisted (by id, then pinned to its digest).
    let digest = digest_of(&probe());
    for entry in [PROBE.to_string(), format!("{PROBE}@{digest}")] {
        let env = Env::new(&db, |o| o.policy = guarded(&[], &entry)).await;
        env.manager.install(upload(&probe())).await.unwrap();
        let enabled = env.manager.enable(PROBE, all()).await.unwrap();
        assert_eq!(
            serde_json::to_value(&enabled.trust).unwrap()["basis"],
            "allowlist"
        );
        purge(&env).await;
    }
    // Pinned to another digest: not allowed.
    let env = Env::new(&db, |o| {
        o.policy = guarded(&[], &format!("{PROBE}@sha256:{}", "0".repeat(64)))
    })
    .await;
    env.manager.install(upload(&probe())).await.unwrap();
    assert!(env.manager.enable(PROBE, all()).await.is_err());
    purge(&env).await;

    // saas_locked: no uploads at all, even signed by a platform key.
    let env = Env::new(&db, |o| {
        o.policy = TrustPolicy::new(TrustMode::SaasLocked)
            .with_keys(TrustPolicy::parse_keys(&public(&trusted)).unwrap())
    })
    .await;
    let err = env
        .manager
        .install(upload(&signed(&probe(), &trusted)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("saas_locked"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &probe());
    let err = env
        .manager
        .install(InstallSource::Path(dir.path().to_path_buf()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refuses sources on the server's own disk"),
        "{err}"
    );
    // Nor a git repository on the server's disk, which is refused before anything is read: a
    // `file://` repository that does not even exist gets the same answer.
    for url in [
        format!("file://{}", dir.path().display()),
        "git+file:///nonexistent/repo.git".to_string(),
    ] {
        let err = env
            .manager
            .install(InstallSource::Git(nitejar_core::install::GitSpec {
                url: url.clone(),
                reference: None,
            }))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("refuses sources on the server's own disk"),
            "{url}: {err}"
        );
    }
}

/// The same build installed unsigned, then again signed by a trusted key: the signature is kept and
/// the plugin is trusted, without an uninstall (guarded mode refused it before).
async fn a_signed_reinstall_of_an_installed_version_is_recognised(db: TestDb) {
    let trusted = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let env = Env::new(&db, |o| o.policy = guarded(&[public(&trusted)], "")).await;
    let first = env.manager.install(upload(&probe())).await.unwrap();
    assert_eq!(first.trust_level, "untrusted", "{first:?}");
    let err = env
        .manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::Trust { .. }), "{err}");

    let again = env
        .manager
        .install(upload(&signed(&probe(), &trusted)))
        .await
        .unwrap();
    assert!(again.already_installed);
    assert_eq!(again.trust_level, "trusted");
    let row = env.store.get_plugin(PROBE).await.unwrap().expect("row");
    assert_eq!(row.trust_level, "trusted");
    assert!(env
        .manager
        .layout()
        .version_dir(PROBE, "1.0.0")
        .join("nitejar.plugin.sig")
        .is_file());
    env.manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap();
    assert!(env.runtime.registry().plugin(PROBE).is_some());
}

/// Trust settings stored by another process (the CLI, another server) apply without a restart: an
/// enable judges with them at once; a reconciliation takes out a plugin whose key was removed
/// (its error says why, kind `trust`) and brings it back when the key is trusted again, its error
/// cleared. Every change is receipted with who made it.
async fn stored_trust_settings_apply_without_a_restart(db: TestDb) {
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let server = Env::new(&db, |o| o.policy = guarded(&[], "")).await;
    server
        .manager
        .install(upload(&signed(&probe(), &key)))
        .await
        .unwrap();
    let err = server
        .manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::Trust { .. }), "{err}");

    let cli = Env::with(
        tempfile::tempdir().unwrap(),
        server.store.clone(),
        server.options.clone(),
    )
    .await;
    let added = cli
        .manager
        .add_trust_entry(TrustEntryKind::Key, &public(&key), "CLI (ops)")
        .await
        .unwrap();
    assert_eq!(added.revision, 1);
    let enabled = server
        .manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&enabled.trust).unwrap()["basis"],
        "signature"
    );
    assert!(server.runtime.registry().plugin(PROBE).is_some());

    // Removed elsewhere: the server's next reconciliation takes the plugin out, and says why.
    let key_id = added.ident.to_lowercase();
    cli.manager
        .remove_trust_entry(TrustEntryKind::Key, &key_id, "CLI (ops)")
        .await
        .unwrap();
    let report = server.manager.reconcile().await.unwrap();
    assert_eq!(report.deactivated, [PROBE.to_string()]);
    assert!(server.runtime.registry().plugin(PROBE).is_none());
    let row = server.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert!(row.enabled, "still the operator's choice");
    assert_eq!(row.last_error_kind.as_deref(), Some("trust"));
    assert!(
        row.last_load_error
            .as_deref()
            .unwrap_or("")
            .contains("not signed by a trusted key"),
        "{row:?}"
    );
    assert!(server.manager.reconcile().await.unwrap().is_empty());

    // Trusted again: it runs again and the stale error is gone.
    cli.manager
        .add_trust_entry(TrustEntryKind::Key, &public(&key), "CLI (ops)")
        .await
        .unwrap();
    let report = server.manager.reconcile().await.unwrap();
    assert_eq!(report.activated, [format!("{PROBE}@1.0.0")]);
    assert!(server.runtime.registry().plugin(PROBE).is_some());
    let row = server.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert_eq!(
        row.last_load_error, None,
        "the error cleared with its cause"
    );
    assert_eq!(row.last_error_kind, None);
    assert_eq!(row.trust_level, "trusted");

    let receipts = cli.receipts_of(TRUST_RECEIPT_ID, "trust").await;
    let actions: Vec<(&str, &str)> = receipts
        .iter()
        .map(|(status, d)| (status.as_str(), d["action"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(actions, [("ok", "add"), ("ok", "remove"), ("ok", "add")]);
    assert_eq!(receipts[0].1["by"], "CLI (ops)");
    assert_eq!(receipts[0].1["publicKey"], public(&key));
}

/// A signed build of an installed version is judged against the keys trusted now (stored ones
/// included), not those of when the server started: signed by a key nobody trusts it is kept but
/// trusts nothing; trusting the key then is enough — no second install — and a plugin a restart had
/// refused runs again. A signature by an unknown key never replaces one by a trusted key.
async fn a_signed_reinstall_is_judged_against_the_current_keys(db: TestDb) {
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let env = Env::new(&db, |o| {
        o.policy = TrustPolicy::new(TrustMode::SelfHostOpen)
    })
    .await;
    env.manager.install(upload(&probe())).await.unwrap();
    env.manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap();
    // Restarted in guarded mode: the unsigned plugin is refused at boot (enabled, in error).
    let env = env.restart(|o| o.policy = guarded(&[], "")).await;
    let boot = env.manager.boot().await;
    assert_eq!(boot.errors.len(), 1, "{boot:?}");
    let sig = env
        .manager
        .layout()
        .version_dir(PROBE, "1.0.0")
        .join("nitejar.plugin.sig");

    let again = env
        .manager
        .install(upload(&signed(&probe(), &key)))
        .await
        .unwrap();
    assert!(again.already_installed);
    assert_eq!(again.trust_level, "untrusted", "the key is not trusted yet");
    assert!(sig.is_file(), "kept for when the key is trusted");
    let signed_by_key = std::fs::read_to_string(&sig).unwrap();
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert_eq!(
        row.last_error_kind.as_deref(),
        Some("trust"),
        "still refused"
    );
    assert!(env.manager.reconcile().await.unwrap().is_empty());
    assert!(env.runtime.registry().plugin(PROBE).is_none());

    // Trusting the key is enough: no second install.
    env.manager
        .add_trust_entry(TrustEntryKind::Key, &public(&key), "test")
        .await
        .unwrap();
    env.manager.reconcile().await.unwrap();
    assert!(env.runtime.registry().plugin(PROBE).is_some());
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert_eq!(
        row.last_load_error, None,
        "the trust refusal no longer holds"
    );
    assert_eq!(row.trust_level, "trusted");

    // The same build signed by a key nobody trusts does not replace the trusted signature.
    let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let again = env
        .manager
        .install(upload(&signed(&probe(), &stranger)))
        .await
        .unwrap();
    assert!(again.already_installed);
    assert_eq!(std::fs::read_to_string(&sig).unwrap(), signed_by_key);
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert_eq!(row.trust_level, "trusted");
    env.manager.reconcile().await.unwrap();
    assert!(env.runtime.registry().plugin(PROBE).is_some());
}

/// A trust refusal recorded under one mode does not outlive it: restarted in a mode that accepts
/// the plugin, it runs and its error is gone.
async fn a_trust_refusal_clears_when_the_mode_changes(db: TestDb) {
    let env = Env::new(&db, |o| {
        o.policy = TrustPolicy::new(TrustMode::SelfHostOpen)
    })
    .await;
    env.manager.install(upload(&probe())).await.unwrap();
    env.manager
        .enable(PROBE, EnableRequest::accept_all())
        .await
        .unwrap();
    let env = env.restart(|o| o.policy = guarded(&[], "")).await;
    assert_eq!(env.manager.boot().await.errors.len(), 1);
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert_eq!(row.last_error_kind.as_deref(), Some("trust"));

    let env = env
        .restart(|o| o.policy = TrustPolicy::new(TrustMode::SelfHostOpen))
        .await;
    let boot = env.manager.boot().await;
    assert!(boot.errors.is_empty(), "{boot:?}");
    assert!(env.runtime.registry().plugin(PROBE).is_some());
    let row = env.store.get_plugin(PROBE).await.unwrap().unwrap();
    assert_eq!(row.last_load_error, None, "the refusal went with its mode");
    assert_eq!(row.last_error_kind, None);
}

async fn purge(env: &Env) {
    let all = nitejar_core::lifecycle::UninstallOptions {
        purge_files: true,
        purge_data: true,
    };
    env.manager.uninstall(PROBE, all).await.unwrap();
}

on_both_backends!(
    consent_and_acknowledgements,
    signatures_and_allowlist,
    a_signed_reinstall_of_an_installed_version_is_recognised,
    stored_trust_settings_apply_without_a_restart,
    a_signed_reinstall_is_judged_against_the_current_keys,
    a_trust_refusal_clears_when_the_mode_changes
);
