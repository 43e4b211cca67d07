//! Skills of a real plugin library: a skill the manifest declares and the package holds as
//! `skills/<id>/SKILL.md` reaches the skill index (with its supporting files), `use_skill` receipts
//! it on the plugin, and it leaves when the plugin is disabled.

use std::sync::Arc;

use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::host::NoServices;
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::receipts::{MemorySink, ReceiptKind, ReceiptStatus};
use nitejar_core::runner::tools::{Tool, ToolContext};
use nitejar_core::runtime::Runtime;
use nitejar_core::skills::{Skills, SkillsConfig, UseSkill};
use nitejar_suite::plugins::install_package;
use serde_json::json;

const PLUGIN: &str = "dev.nitejar.examples.policy-guard";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packaged_skill_of_a_loaded_plugin_is_indexed_used_and_withdrawn() {
    let data = tempfile::tempdir().unwrap();
    let dir = install_package(data.path(), "examples/policy-guard", "policy_guard", |m| {
        m["contributes"]["skills"] = json!(["house-rules"]);
    });
    std::fs::create_dir_all(dir.join("skills/house-rules/examples")).unwrap();
    std::fs::write(
        dir.join("skills/house-rules/SKILL.md"),
        "---\nname: House rules\ndescription: How we answer.\n---\nBe brief.\n",
    )
    .unwrap();
    std::fs::write(dir.join("skills/house-rules/examples/good.md"), "Short.\n").unwrap();
    let valid = validate_package_dir(&dir, &ValidateOptions::new()).unwrap();
    let active = loader::load(
        &PluginPackage::new(&dir, valid.manifest),
        Arc::new(NoServices),
    )
    .expect("load");

    let sink = MemorySink::new();
    let runtime = Arc::new(Runtime::builder().sink(sink.clone()).build());
    runtime.activate(active).unwrap();
    let key = Key::generate().unwrap();
    let db = data.path().join("nitejar.db").display().to_string();
    let store = nitejar_core::store::open(&db, Cipher::new(&key))
        .await
        .unwrap();
    let skills =
        Arc::new(Skills::new(store.clone(), SkillsConfig::default()).with_runtime(runtime.clone()));

    let index = skills.index().await.unwrap();
    let id = format!("plugin:{PLUGIN}/house-rules");
    let skill = index.get(&id).expect("the packaged skill is indexed");
    assert_eq!(skill.name, "House rules");
    assert_eq!(skill.description.as_deref(), Some("How we answer."));
    assert_eq!(skill.files.len(), 1);
    assert_eq!(skill.files[0].path, "examples/good.md");

    let tool = UseSkill::new(skills.clone());
    // A run without the skill assigned does not find it (scopes are a boundary) ...
    let unassigned = ToolContext {
        work_item_id: "wi-1".into(),
        job_id: "job-1".into(),
        ..Default::default()
    };
    let out = tool
        .call(&unassigned, &json!({"name": "house rules"}))
        .await;
    assert!(!out.success);
    assert!(
        out.output.contains("This run has no skills"),
        "{}",
        out.output
    );
    // ... a run it is assigned to does.
    let ctx = ToolContext {
        skills: vec![nitejar_sdk::hooks::PromptSkill::new(
            id.clone(),
            skill.name.clone(),
            skill.description.clone(),
        )],
        ..unassigned
    };
    let out = tool.call(&ctx, &json!({"name": "house rules"})).await;
    assert!(out.success, "{}", out.output);
    assert!(out.output.contains("Be brief."), "{}", out.output);
    let out = tool
        .call(
            &ctx,
            &json!({"name": "house rules", "file": "examples/good.md"}),
        )
        .await;
    assert_eq!(out.output, "Short.\n");
    let receipts: Vec<_> = sink
        .receipts()
        .into_iter()
        .filter(|r| r.kind == ReceiptKind::Skill && r.status == ReceiptStatus::Ok)
        .collect();
    assert_eq!(
        receipts.len(),
        2,
        "the two uses by the run it is assigned to"
    );
    assert!(receipts.iter().all(|r| &*r.plugin_id == PLUGIN
        && r.plugin_version.as_deref() == Some("0.1.0")
        && r.status == ReceiptStatus::Ok
        && r.work_item_id.as_deref() == Some("wi-1")));

    runtime.deactivate(PLUGIN);
    let out = tool.call(&ctx, &json!({"name": &id})).await;
    assert!(!out.success);
    assert_eq!(
        out.output,
        "skill `House rules` belongs to a plugin that is not active"
    );
    let row = store
        .get_skill(&id)
        .await
        .unwrap()
        .expect("the mirror row stays");
    assert_eq!(row.metadata["active"], false);
}
