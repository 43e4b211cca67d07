//! Support for the skill tests: skill directories on disk, a SQLite store, plugins with skills.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_core::skills::{SkillLimits, Skills, SkillsConfig};
use nitejar_core::store::Store;
use nitejar_sdk::{Plugin, SkillContribution};

use crate::testdb::TestDb;

/// Writes `text` to `root/relative`, creating directories.
pub fn write(root: &Path, relative: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dirs");
    }
    std::fs::write(&path, text).expect("write");
    path
}

/// A `SKILL.md` with frontmatter.
pub fn skill_md(name: &str, description: &str) -> String {
    format!(
        "---\nname: {name}\ndescription: {description}\n---\n# {name}\n\nDo the {name} thing.\n"
    )
}

/// A SQLite store in a temp dir (the `TestDb` keeps the dir alive).
pub async fn sqlite() -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::sqlite();
    let store = db.open().await;
    (db, store)
}

/// A skill service over `roots` with default limits.
pub fn service(store: &Arc<dyn Store>, roots: &[&Path]) -> Skills {
    service_with(store, roots, SkillLimits::default())
}

/// A skill service over `roots` with these limits.
pub fn service_with(store: &Arc<dyn Store>, roots: &[&Path], limits: SkillLimits) -> Skills {
    Skills::new(
        store.clone(),
        SkillsConfig {
            roots: roots.iter().map(|r| r.to_path_buf()).collect(),
            limits,
        },
    )
}

/// An active third-party plugin `id`@`version` contributing `skills`, loaded from `package`.
pub fn plugin_with_skills(
    id: &str,
    version: &str,
    package: Option<&Path>,
    skills: Vec<SkillContribution>,
) -> ActivePlugin {
    let mut builder = Plugin::builder();
    for s in skills {
        builder = builder.skill(s);
    }
    let plugin = builder.build();
    let active = ActivePlugin::from_plugin(
        PluginMeta::new(id, version, PluginOrigin::ThirdParty),
        &plugin,
    );
    match package {
        Some(dir) => active.with_package_dir(dir),
        None => active,
    }
}
