//! `doctor` finds what a failed install or upgrade left behind (and removes it when asked), stored
//! secrets this ENCRYPTION_KEY cannot decrypt, and a stored config that an upgrade's schema no
//! longer accepts — each with its fix.

use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::install::InstallSource;
use nitejar_core::lifecycle::{EnableRequest, Finding, SettingsChange};
use nitejar_core::store::{SecretValue, SettingsWrite};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{greeter, package_files, tgz, Env, GREETER};
use crate::testdb::TestDb;

const GUARD: &str = "dev.nitejar.examples.policy-guard";

fn upload(name: &str, files: &[nitejar_core::install::archive::ArchiveFile]) -> InstallSource {
    InstallSource::Upload {
        name: name.into(),
        bytes: tgz(files),
    }
}

fn of_check<'a>(findings: &'a [Finding], check: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.check == check).collect()
}

/// An hour ago: older than an install in progress could be.
fn an_hour_ago() -> i64 {
    nitejar_core::receipts::now_ms() - 3_600_000
}

async fn leftovers_of_a_failed_upgrade_are_found_and_removed(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    env.manager
        .install(upload("g1.tgz", &greeter(1)))
        .await
        .unwrap();
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    env.manager
        .upgrade(
            GREETER,
            Some(upload("g2.tgz", &greeter(2))),
            EnableRequest::accept_all(),
        )
        .await
        .unwrap();
    // Both versions are old enough to be judged; 1.0.0 is explained by its install receipt.
    let store = &env.store;
    let mut debris = None;
    for mut v in store.list_plugin_versions(GREETER).await.unwrap() {
        v.installed_at = an_hour_ago();
        store.upsert_plugin_version(&v).await.unwrap();
        debris = Some(v);
    }
    // What an upgrade that died between registering 3.0.0 and switching to it leaves: its row and
    // directory. And a directory without a row.
    let mut debris = debris.expect("a version row");
    debris.version = "3.0.0".into();
    store.upsert_plugin_version(&debris).await.unwrap();
    let layout = env.manager.layout();
    for v in ["3.0.0", "4.0.0"] {
        let dir = layout.version_dir(GREETER, v);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nitejar.plugin.json"), "{}").unwrap();
    }

    let report = env.manager.doctor().await;
    let leftovers = of_check(&report.findings, "leftover");
    assert_eq!(leftovers.len(), 1, "{:#?}", report.findings);
    assert!(leftovers[0].problem.contains(&format!("{GREETER}@3.0.0")));
    assert!(leftovers[0]
        .fix
        .contains("nitejar plugin doctor --remove-leftovers"));
    let orphans = of_check(&report.findings, "orphan");
    assert!(
        orphans.iter().any(|f| f.problem.contains("versions/4.0.0")),
        "{orphans:#?}"
    );

    let removed = env.manager.remove_leftovers().await.unwrap();
    assert_eq!(
        removed,
        [
            format!("{GREETER}@3.0.0"),
            format!("plugins/{GREETER}/versions/4.0.0")
        ]
    );
    assert!(!layout.version_dir(GREETER, "3.0.0").exists());
    assert!(!layout.version_dir(GREETER, "4.0.0").exists());
    let versions: Vec<String> = store
        .list_plugin_versions(GREETER)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, ["1.0.0", "2.0.0"], "what rollback needs is kept");
    let report = env.manager.doctor().await;
    assert!(of_check(&report.findings, "leftover").is_empty());
    assert!(of_check(&report.findings, "orphan").is_empty());
    let uninstalls = env.receipts_of(GREETER, "uninstall").await;
    assert_eq!(uninstalls[0].1["leftover"], true);
}

async fn unreadable_secrets_and_configs_an_upgrade_outgrew_are_found(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    let v1 = package_files("examples/policy-guard", "policy_guard", |_| {}, &[]);
    env.manager.install(upload("guard.tgz", &v1)).await.unwrap();
    env.manager
        .configure(
            GUARD,
            SettingsChange::default().config(json!({ "redact": ["hunter2"] })),
        )
        .await
        .unwrap();
    assert!(of_check(&env.manager.doctor().await.findings, "config").is_empty());

    // A secret stored by a server with another ENCRYPTION_KEY.
    let other = nitejar_core::store::open(db.url(), Cipher::new(&Key::generate().unwrap()))
        .await
        .unwrap();
    other
        .write_plugin_settings(&SettingsWrite {
            plugin_id: GUARD.into(),
            config_json: None,
            set_secrets: vec![SecretValue {
                env_var: "NITEJAR_SECRET_OPENAI_API_KEY".into(),
                name: "OPENAI_API_KEY".into(),
                value: "sk-other-key".into(),
            }],
            clear_secrets: Vec::new(),
        })
        .await
        .unwrap();
    // An upgrade whose settings no longer take `redact`.
    let v2 = package_files(
        "examples/policy-guard",
        "policy_guard",
        |m| {
            m["version"] = json!("0.2.0");
            if let Some(props) = m["config"]["schema"]["properties"].as_object_mut() {
                props.remove("redact");
            }
            if let Some(order) = m["config"]["uiSchema"]["ui:order"].as_array_mut() {
                order.retain(|v| v != "redact");
            }
        },
        &[],
    );
    env.manager
        .upgrade(
            GUARD,
            Some(upload("guard2.tgz", &v2)),
            EnableRequest::accept_all(),
        )
        .await
        .unwrap();

    let report = env.manager.doctor().await;
    let secrets = of_check(&report.findings, "secret");
    let configs = of_check(&report.findings, "config");
    assert_eq!(
        (secrets.len(), configs.len()),
        (1, 1),
        "{:#?}",
        report.findings
    );
    assert!(report.has_errors());
    assert!(!format!("{report:?}").contains("sk-other-key"));
    let shown: Vec<String> = [secrets[0], configs[0]]
        .iter()
        .map(|f| {
            format!(
                "{} [{}]: {}\n  fix: {}",
                f.plugin.as_deref().unwrap_or("-"),
                f.check,
                f.problem,
                f.fix
            )
        })
        .collect();
    insta::assert_snapshot!("doctor_settings_findings", shown.join("\n"));
}

on_both_backends!(
    leftovers_of_a_failed_upgrade_are_found_and_removed,
    unreadable_secrets_and_configs_an_upgrade_outgrew_are_found
);
