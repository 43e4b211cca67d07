//! Loading real plugin libraries: several plugins and several versions of one plugin in one
//! process, ABI checks, manifest checks.

use std::path::Path;
use std::sync::Arc;

use nitejar_core::hooks::DispatchContext;
use nitejar_core::host::NoServices;
use nitejar_core::loader::{self, LoadError, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::receipts::{MemorySink, ReceiptKind, ReceiptStatus};
use nitejar_core::registry::ActivePlugin;
use nitejar_core::runtime::Runtime;
use nitejar_sdk::hooks::{ResponsePreDeliver, ToolPreExec};
use nitejar_suite::plugins::{install_package, library};
use serde_json::json;

fn package(dir: &Path) -> PluginPackage {
    let valid = validate_package_dir(dir, &ValidateOptions::new())
        .unwrap_or_else(|e| panic!("{} has an invalid manifest:\n{e}", dir.display()));
    PluginPackage::new(dir, valid.manifest)
}

fn load(dir: &Path) -> Result<ActivePlugin, LoadError> {
    loader::load(&package(dir), Arc::new(NoServices))
}

fn tool(name: &str) -> ToolPreExec {
    let mut call = ToolPreExec::default();
    call.tool_name = name.into();
    call
}

fn response(text: &str) -> ResponsePreDeliver {
    let mut response = ResponsePreDeliver::default();
    response.content = text.into();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plugins_work_side_by_side() {
    let data = tempfile::tempdir().unwrap();
    let webhook = install_package(
        data.path(),
        "examples/signed-webhook",
        "signed_webhook",
        |_| {},
    );
    let guard = install_package(data.path(), "examples/policy-guard", "policy_guard", |_| {});
    let sink = MemorySink::new();
    let runtime = Runtime::builder().sink(sink.clone()).build();
    runtime.activate(load(&webhook).unwrap()).unwrap();
    runtime.activate(load(&guard).unwrap()).unwrap();

    let out = runtime
        .dispatch(&DispatchContext::for_work_item("wi-1"), tool("shell"))
        .await;
    let blocked = out.blocked.expect("the guard blocks the shell tool");
    assert_eq!(&*blocked.plugin_id, "dev.nitejar.examples.policy-guard");
    assert!(
        blocked.reason.contains("`shell` is blocked"),
        "{}",
        blocked.reason
    );

    let test = runtime
        .call_integration(
            "signed-webhook",
            "test_connection",
            &DispatchContext::default(),
            std::time::Duration::from_secs(5),
            |integration, host| {
                integration.test_connection(
                    &json!({"secret": "s", "callbackUrl": "https://hooks.example.com/x"}),
                    host,
                )
            },
        )
        .await
        .unwrap();
    assert!(test.ok);
    assert_eq!(
        test.detail.as_deref(),
        Some("responses go to https://hooks.example.com/x")
    );
    let kinds: Vec<_> = sink.receipts().iter().map(|r| (r.kind, r.status)).collect();
    assert_eq!(
        kinds,
        [
            (ReceiptKind::Hook, ReceiptStatus::Blocked),
            (ReceiptKind::Integration, ReceiptStatus::Ok)
        ]
    );

    let loaded = loader::loaded_libraries();
    for dir in [&webhook, &guard] {
        assert!(
            loaded
                .iter()
                .any(|l| l.path.starts_with(dir.canonicalize().unwrap()) && l.size_bytes > 0),
            "{} is not listed as loaded",
            dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_versions_of_one_plugin_switch_back_and_forth() {
    let data = tempfile::tempdir().unwrap();
    let v1 = install_package(
        data.path(),
        "tests/fixtures/plugins/greeter-v1",
        "greeter_v1",
        |_| {},
    );
    let v2 = install_package(
        data.path(),
        "tests/fixtures/plugins/greeter-v2",
        "greeter_v2",
        |_| {},
    );
    let v1 = load(&v1).unwrap();
    let v2 = load(&v2).unwrap();
    assert_eq!(v1.meta().id, v2.meta().id);

    let sink = MemorySink::new();
    let runtime = Runtime::builder().sink(sink.clone()).build();
    let ctx = DispatchContext::default();
    for (active, expected) in [(&v1, "v1"), (&v2, "v2"), (&v1, "v1"), (&v2, "v2")] {
        runtime.activate(active.clone()).unwrap();
        let out = runtime.dispatch(&ctx, response("hello")).await;
        assert_eq!(out.payload.content, format!("hello (greeter {expected})"));
    }
    let versions: Vec<String> = sink
        .receipts()
        .iter()
        .map(|r| r.plugin_version.as_deref().unwrap_or_default().to_string())
        .collect();
    assert_eq!(versions, ["1.0.0", "2.0.0", "1.0.0", "2.0.0"]);

    // Both versions stay mapped: that is the leak doctor reports until a restart.
    let loaded = loader::loaded_libraries();
    let greeters: Vec<_> = loaded
        .iter()
        .filter(|l| {
            l.plugin_id == "dev.nitejar.fixtures.greeter"
                && l.path.starts_with(data.path().canonicalize().unwrap())
        })
        .map(|l| l.version.as_str())
        .collect();
    assert_eq!(greeters, ["1.0.0", "2.0.0"]);
}

fn copy_library(lib: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("lib{lib}.so"));
    std::fs::copy(library(lib), &path).unwrap();
    (dir, path)
}

#[test]
fn a_library_of_another_abi_major_is_refused_briefly() {
    let (_dir, path) = copy_library("foreign_abi");
    let err = loader::open(&path).unwrap_err();
    assert!(
        matches!(err, LoadError::AbiMajor { ref found, expected: 1, .. } if found == "2"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("built against Nitejar plugin ABI 2, but this server loads ABI 1"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn a_library_with_another_layout_is_refused_with_its_error_lines_only() {
    let (_dir, path) = copy_library("skewed_abi");
    let err = loader::open(&path).unwrap_err();
    let LoadError::Incompatible { ref errors, .. } = err else {
        panic!("expected an incompatible layout, got {err:?}");
    };
    let message = err.to_string();
    assert!(
        message.contains("is incompatible with this server's plugin ABI 1"),
        "{message}"
    );
    assert!(!errors.is_empty());
    assert!(
        errors
            .lines()
            .all(|l| l.starts_with("Error:") || l.starts_with("(and ")),
        "{errors}"
    );
    assert!(message.lines().count() <= 12, "too long:\n{message}");
}

#[test]
fn a_file_that_is_not_a_plugin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libnot.so");
    std::fs::write(&path, b"not a library").unwrap();
    assert!(matches!(loader::open(&path), Err(LoadError::Open { .. })));
}

#[test]
fn what_the_library_exports_must_match_contributes() {
    let data = tempfile::tempdir().unwrap();
    let dir = install_package(data.path(), "examples/policy-guard", "policy_guard", |m| {
        m["contributes"] = json!({ "hooks": ["tool.pre_exec"], "skills": ["house-rules"] });
    });
    let err = load(&dir).err().expect("refused");
    let message = err.to_string();
    assert!(
        message.contains(
            "/contributes/hooks: the plugin library registers a handler for `response.pre_deliver`"
        ),
        "{message}"
    );
    assert!(message.contains("/contributes/skills/0: neither the plugin library nor the package provides the skill `house-rules`"), "{message}");

    // A declared skill the code does not provide may be a file of the package. (Another data
    // directory: a loaded library's file is never overwritten.)
    let data = tempfile::tempdir().unwrap();
    let dir = install_package(data.path(), "examples/policy-guard", "policy_guard", |m| {
        m["contributes"]["skills"] = json!(["house-rules"]);
    });
    std::fs::create_dir_all(dir.join("skills/house-rules")).unwrap();
    std::fs::write(dir.join("skills/house-rules/SKILL.md"), "Be brief.\n").unwrap();
    let active = load(&dir).unwrap();
    assert_eq!(active.skills().len(), 1);
    assert_eq!(active.skills()[0].id, "house-rules");
}

#[test]
fn the_embedded_manifest_must_be_the_packages() {
    let data = tempfile::tempdir().unwrap();
    let dir = install_package(
        data.path(),
        "tests/fixtures/plugins/greeter-v1",
        "greeter_v2",
        |_| {},
    );
    let err = load(&dir).err().expect("refused");
    assert!(matches!(err, LoadError::ManifestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("embeds the manifest of `dev.nitejar.fixtures.greeter@2.0.0`, but the package is `dev.nitejar.fixtures.greeter@1.0.0`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_config_reaches_the_plugin() {
    let data = tempfile::tempdir().unwrap();
    let dir = install_package(data.path(), "examples/policy-guard", "policy_guard", |_| {});
    let refused = loader::load(
        &package(&dir).with_config(json!({ "blockedTools": "shell" })),
        Arc::new(NoServices),
    );
    let err = refused.err().expect("a bad config is refused");
    assert!(matches!(err, LoadError::Instantiate { .. }));
    assert!(
        err.to_string()
            .contains("the plugin's config does not fit at `blockedTools`"),
        "{err}"
    );

    let active = loader::load(
        &package(&dir).with_config(json!({ "blockedTools": ["deploy"] })),
        Arc::new(NoServices),
    )
    .unwrap();
    let runtime = Runtime::builder().build();
    runtime.activate(active).unwrap();
    let ctx = DispatchContext::default();
    assert!(runtime.dispatch(&ctx, tool("deploy")).await.is_blocked());
    assert!(!runtime.dispatch(&ctx, tool("shell")).await.is_blocked());
}
