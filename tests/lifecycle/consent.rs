//! Consent per version: a refused upgrade leaves nothing of its version behind; a version becomes
//! current and runs only with its consent on record; what a version adds — permissions, hooks,
//! integration types, skills — is what an upgrade asks consent for; a plugin enabled before consents
//! were recorded keeps running.

use nitejar_core::hooks::DispatchContext;
use nitejar_core::install::archive::ArchiveFile;
use nitejar_core::install::InstallSource;
use nitejar_core::lifecycle::{EnableRequest, LifecycleError};
use nitejar_sdk::hooks::ResponsePreDeliver;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{greeter, package_files, tgz, Env, GREETER};
use crate::testdb::TestDb;

async fn answer(env: &Env) -> String {
    let payload = {
        let mut response = ResponsePreDeliver::default();
        response.content = "hi".into();
        response
    };
    env.runtime
        .dispatch(&DispatchContext::default(), payload)
        .await
        .payload
        .content
}

fn upload(files: &[ArchiveFile]) -> InstallSource {
    InstallSource::Upload {
        name: "greeter.tgz".into(),
        bytes: tgz(files),
    }
}

/// Greeter v2 asking for more than v1: a network host, a secret, process spawning, and a skill.
fn greedy_v2() -> Vec<ArchiveFile> {
    package_files(
        "tests/fixtures/plugins/greeter-v2",
        "greeter_v2",
        |m| {
            m["permissions"] = json!({
                "network": ["api.example.com"],
                "secrets": ["API_TOKEN"],
                "allowProcessSpawn": true
            });
            m["contributes"]["skills"] = json!(["triage"]);
        },
        &[(
            "skills/triage/SKILL.md",
            b"---\nname: Triage\ndescription: Sort the inbox.\n---\nSort it.\n",
        )],
    )
}

fn consent_diff(err: &LifecycleError) -> (Vec<String>, Vec<String>) {
    match err {
        LifecycleError::ConsentRequired {
            diff: Some(diff), ..
        } => (diff.added.clone(), diff.removed.clone()),
        other => panic!("expected a consent request with a diff, got {other}"),
    }
}

async fn a_refused_upgrade_leaves_nothing_and_cannot_be_rolled_back_to(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    env.manager.install(upload(&greeter(1))).await.unwrap();
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();

    let err = env
        .manager
        .upgrade(
            GREETER,
            Some(upload(&greedy_v2())),
            EnableRequest::default(),
        )
        .await
        .unwrap_err();
    let (added, removed) = consent_diff(&err);
    assert_eq!(
        added,
        [
            "network:api.example.com",
            "process.spawn",
            "secret:API_TOKEN",
            "skill:triage"
        ]
    );
    assert!(removed.is_empty());
    let text = err.to_string();
    assert!(
        text.contains("+ process.spawn") && text.contains("+ skill:triage"),
        "{text}"
    );

    // Nothing of 2.0.0: no version row, no directory, no stored package; 1.0.0 still runs.
    assert!(env
        .store
        .get_plugin_version(GREETER, "2.0.0")
        .await
        .unwrap()
        .is_none());
    assert!(!env.manager.layout().version_dir(GREETER, "2.0.0").exists());
    assert!(env
        .store
        .get_plugin_artifact(GREETER, "2.0.0")
        .await
        .unwrap()
        .is_none());
    assert_eq!(answer(&env).await, "hi (greeter v1)");
    let err = env
        .manager
        .rollback(GREETER, "2.0.0", true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LifecycleError::VersionNotInstalled { .. }),
        "{err}"
    );

    // With consent to the difference: installed, current, running, its consent on record.
    let up = env
        .manager
        .upgrade(
            GREETER,
            Some(upload(&greedy_v2())),
            EnableRequest::accept_all(),
        )
        .await
        .unwrap();
    assert!(up.activated);
    assert_eq!(answer(&env).await, "hi (greeter v2)");
    let consent = env
        .store
        .get_consent(GREETER, "2.0.0")
        .await
        .unwrap()
        .expect("consent on record");
    assert_eq!(consent.basis, "accepted");
    assert!(consent.consented.contains(&"process.spawn".to_string()));
}

async fn a_version_without_consent_is_not_rolled_back_to_without_it(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    // Never enabled: 1.0.0 and then 2.0.0 are installed without consent (nothing can run).
    env.manager.install(upload(&greeter(1))).await.unwrap();
    env.manager
        .upgrade(
            GREETER,
            Some(upload(&greedy_v2())),
            EnableRequest::default(),
        )
        .await
        .unwrap();
    assert!(env
        .store
        .get_consent(GREETER, "2.0.0")
        .await
        .unwrap()
        .is_none());
    // Enabling 2.0.0 records its consent; 1.0.0 has none.
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    assert_eq!(answer(&env).await, "hi (greeter v2)");
    let err = env
        .manager
        .rollback(GREETER, "1.0.0", false)
        .await
        .unwrap_err();
    let (added, removed) = consent_diff(&err);
    assert!(added.is_empty(), "1.0.0 asks for less: {added:?}");
    assert!(removed.contains(&"process.spawn".to_string()));
    assert_eq!(
        env.manager.layout().current_version(GREETER).as_deref(),
        Some("2.0.0"),
        "nothing changed"
    );
    assert_eq!(answer(&env).await, "hi (greeter v2)");
    let refused = env.receipts_of(GREETER, "rollback").await;
    assert_eq!(refused[0].0, "denied", "{refused:?}");

    env.manager.rollback(GREETER, "1.0.0", true).await.unwrap();
    assert_eq!(answer(&env).await, "hi (greeter v1)");
    assert_eq!(
        env.store
            .get_consent(GREETER, "1.0.0")
            .await
            .unwrap()
            .map(|c| c.basis),
        Some("accepted".to_string())
    );
}

async fn an_upgrade_that_adds_nothing_carries_the_consent_over(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    env.manager.install(upload(&greeter(1))).await.unwrap();
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    let up = env
        .manager
        .upgrade(GREETER, Some(upload(&greeter(2))), EnableRequest::default())
        .await
        .unwrap();
    assert!(up.consent_diff.added.is_empty(), "{:?}", up.consent_diff);
    let consent = env
        .store
        .get_consent(GREETER, "2.0.0")
        .await
        .unwrap()
        .expect("consent");
    assert_eq!(consent.basis, "carried_over");
    // And back to 1.0.0 needs nothing new either: its own consent is on record.
    env.manager.rollback(GREETER, "1.0.0", false).await.unwrap();
    assert_eq!(answer(&env).await, "hi (greeter v1)");
}

async fn a_plugin_enabled_before_consents_were_recorded_keeps_running(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    env.manager.install(upload(&greeter(1))).await.unwrap();
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    // As an earlier release left it: enabled, no consent rows.
    db.exec("DELETE FROM plugin_consents").await;
    let env = env.restart(|_| {}).await;
    let report = env.manager.boot().await;
    assert!(
        report.loaded.iter().any(|l| l.starts_with(GREETER)),
        "{report:?}"
    );
    assert_eq!(answer(&env).await, "hi (greeter v1)");
    assert_eq!(
        env.store
            .get_consent(GREETER, "1.0.0")
            .await
            .unwrap()
            .map(|c| c.basis),
        Some("existing".to_string())
    );
    // But once a plugin has consents on record, a version without one does not run at boot.
    db.exec("DELETE FROM plugin_consents").await;
    db.exec(&format!(
        "INSERT INTO plugin_consents (plugin_id, version, checksum, consented_json, basis, accepted_at) \
         VALUES ('{GREETER}', '0.0.1', 'x', '[]', 'accepted', 1)"
    ))
    .await;
    let env = env.restart(|_| {}).await;
    let report = env.manager.boot().await;
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.id == GREETER && e.reason.contains("consent")),
        "{report:?}"
    );
    assert_eq!(answer(&env).await, "hi", "not running");
}

on_both_backends!(
    a_refused_upgrade_leaves_nothing_and_cannot_be_rolled_back_to,
    a_version_without_consent_is_not_rolled_back_to_without_it,
    an_upgrade_that_adds_nothing_carries_the_consent_over,
    a_plugin_enabled_before_consents_were_recorded_keeps_running,
);
