//! Upgrade → rollback → upgrade with the hooks observed switching version, a second process (the
//! CLI) whose changes a running server picks up by reconciling, uninstall with and without purges,
//! and integration rows untouched by every one of these operations.

use nitejar_core::hooks::DispatchContext;
use nitejar_core::install::InstallSource;
use nitejar_core::lifecycle::{EnableRequest, LifecycleError, PluginState, UninstallOptions};
use nitejar_sdk::hooks::ResponsePreDeliver;

use crate::on_both_backends;
use crate::support::{
    greeter, integrations_hash, package_files, seed_integrations, tgz, Env, GREETER,
};
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

fn upload(version: u8) -> InstallSource {
    InstallSource::Upload {
        name: format!("greeter-{version}.tgz"),
        bytes: tgz(&greeter(version)),
    }
}

async fn upgrade_rollback_upgrade(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    seed_integrations(&env.store).await;
    let before = integrations_hash(&env.store).await;
    let unchanged = || async {
        assert_eq!(
            integrations_hash(&env.store).await,
            before,
            "integration rows changed"
        )
    };

    env.manager.install(upload(1)).await.unwrap();
    unchanged().await;
    assert_eq!(answer(&env).await, "hi", "installed, not enabled");
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    unchanged().await;
    assert_eq!(answer(&env).await, "hi (greeter v1)");

    let up = env
        .manager
        .upgrade(GREETER, Some(upload(2)), EnableRequest::default())
        .await
        .unwrap();
    assert!(up.activated && up.added_permissions.is_empty());
    assert_eq!(
        answer(&env).await,
        "hi (greeter v2)",
        "the registry swapped without a restart"
    );
    assert_eq!(
        env.manager.layout().current_version(GREETER).as_deref(),
        Some("2.0.0")
    );
    assert!(
        env.manager.layout().version_dir(GREETER, "1.0.0").is_dir(),
        "the old version stays"
    );
    unchanged().await;

    env.manager.rollback(GREETER, "1.0.0", false).await.unwrap();
    assert_eq!(answer(&env).await, "hi (greeter v1)");
    assert_eq!(
        env.manager.layout().current_version(GREETER).as_deref(),
        Some("1.0.0")
    );
    unchanged().await;

    env.manager
        .upgrade(GREETER, Some(upload(2)), EnableRequest::default())
        .await
        .unwrap();
    assert_eq!(answer(&env).await, "hi (greeter v2)");
    let err = env
        .manager
        .upgrade(GREETER, Some(upload(1)), EnableRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::NotAnUpgrade { .. }), "{err}");
    let err = env
        .manager
        .rollback(GREETER, "9.9.9", false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("installed versions: 1.0.0, 2.0.0"),
        "{err}"
    );
    unchanged().await;

    let kinds: Vec<String> = env
        .receipts(GREETER)
        .await
        .into_iter()
        .map(|r| format!("{}:{}", r.kind, r.status))
        .collect();
    for expected in [
        "install:ok",
        "enable:ok",
        "upgrade:ok",
        "rollback:ok",
        "upgrade:error",
        "rollback:error",
        "load:ok",
    ] {
        assert!(
            kinds.contains(&expected.to_string()),
            "no {expected} in {kinds:?}"
        );
    }

    env.manager.disable(GREETER).await.unwrap();
    assert_eq!(answer(&env).await, "hi", "disabled at once");
    unchanged().await;
    let kept = env
        .manager
        .uninstall(GREETER, UninstallOptions::default())
        .await
        .unwrap();
    assert!(!kept.purged_files && !kept.purged_data);
    assert!(env.manager.layout().version_dir(GREETER, "2.0.0").is_dir());
    assert!(env.manager.layout().current_version(GREETER).is_none());
    let row = env
        .store
        .get_plugin(GREETER)
        .await
        .unwrap()
        .expect("row kept");
    assert!(row.current_version.is_none() && !row.enabled);
    assert!(!env.receipts(GREETER).await.is_empty(), "receipts kept");
    unchanged().await;
    let purged = env
        .manager
        .uninstall(
            GREETER,
            UninstallOptions {
                purge_files: true,
                purge_data: true,
            },
        )
        .await
        .unwrap();
    assert!(purged.receipts_deleted > 5);
    assert!(!env.manager.layout().plugin_dir(GREETER).exists());
    assert!(env.store.get_plugin(GREETER).await.unwrap().is_none());
    assert_eq!(
        env.receipts(GREETER).await.len(),
        1,
        "only the uninstall receipt itself"
    );
    unchanged().await;
    assert_eq!(env.store.list_integrations(None).await.unwrap().len(), 2);
}

/// The CLI is another process on the same data directory and database; the server notices.
async fn a_running_server_picks_up_cli_changes(db: TestDb) {
    let server = Env::new(&db, |_| {}).await;
    server.manager.boot().await;
    let cli = Env::with(
        tempfile::tempdir().unwrap(),
        server.store.clone(),
        server.options.clone(),
    )
    .await;
    cli.manager.install(upload(1)).await.unwrap();
    cli.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    assert_eq!(answer(&server).await, "hi");
    let report = server.manager.reconcile().await.unwrap();
    assert_eq!(report.activated, vec![format!("{GREETER}@1.0.0")]);
    assert_eq!(answer(&server).await, "hi (greeter v1)");
    assert!(
        server.manager.reconcile().await.unwrap().is_empty(),
        "nothing more to do"
    );
    cli.manager
        .upgrade(GREETER, Some(upload(2)), EnableRequest::default())
        .await
        .unwrap();
    server.manager.reconcile().await.unwrap();
    assert_eq!(answer(&server).await, "hi (greeter v2)");
    cli.manager.disable(GREETER).await.unwrap();
    server.manager.reconcile().await.unwrap();
    assert_eq!(answer(&server).await, "hi");
    let listed = server.manager.list().await.unwrap();
    let greeter = listed.iter().find(|p| p.id == GREETER).unwrap();
    assert_eq!(greeter.state, PluginState::Disabled);
    assert!(listed.iter().any(|p| p.id == "builtin.echo" && p.builtin));
}

on_both_backends!(
    upgrade_rollback_upgrade,
    a_running_server_picks_up_cli_changes,
    a_failed_upgrade_leaves_nothing_behind
);

/// An upgrade whose new version fails to load leaves nothing of it: no version row to roll back
/// to, no version directory, no consent, `current` and the running version unchanged. A fixed build
/// of the same version at the same library path cannot be loaded by this process (the operating
/// system hands back the library already opened there), and says so instead of loading the old one.
async fn a_failed_upgrade_leaves_nothing_behind(db: TestDb) {
    let env = Env::new(&db, |_| {}).await;
    env.manager.install(upload(1)).await.unwrap();
    env.manager
        .enable(GREETER, EnableRequest::accept_all())
        .await
        .unwrap();
    // 2.0.0's manifest with 1.0.0's library: it loads, then is refused (it embeds 1.0.0).
    let broken = InstallSource::Upload {
        name: "greeter-2-broken.tgz".into(),
        bytes: tgz(&package_files(
            "tests/fixtures/plugins/greeter-v2",
            "greeter_v1",
            |_| {},
            &[],
        )),
    };
    let refused = env
        .manager
        .upgrade(GREETER, Some(broken), EnableRequest::accept_all())
        .await
        .expect_err("the broken build does not load");
    assert!(matches!(refused, LifecycleError::Load { .. }), "{refused}");

    let left_clean = || async {
        let versions: Vec<String> = env
            .store
            .list_plugin_versions(GREETER)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(versions, ["1.0.0"], "no 2.0.0 to roll back to");
        assert!(!env.manager.layout().version_dir(GREETER, "2.0.0").exists());
        assert_eq!(
            env.manager.layout().current_version(GREETER).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(answer(&env).await, "hi (greeter v1)", "v1 still runs");
    };
    left_clean().await;

    let fixed = env
        .manager
        .upgrade(GREETER, Some(upload(2)), EnableRequest::accept_all())
        .await
        .expect_err("another build at the same path needs a restart");
    assert!(refused_stale(&fixed), "{fixed}");
    left_clean().await;
}

fn refused_stale(e: &LifecycleError) -> bool {
    matches!(e, LifecycleError::StaleLibrary { .. })
}
