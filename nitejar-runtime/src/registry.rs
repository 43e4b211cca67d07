//! Registries: what the active plugins contribute, indexed for dispatch.
//!
//! A [`Registry`] is an immutable snapshot built from the set of active plugins: integrations by
//! `type`, hook chains sorted for dispatch, skills. When the set changes, a new snapshot is built
//! beside the old one and swapped in atomically (see [`crate::runtime::Runtime`]); a dispatch holds
//! the snapshot it started with, takes no lock, and never sees a half-built set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nitejar_sdk::hooks::HookEvent;
use nitejar_sdk::{Integration, IntegrationDescriptor, Plugin, SkillContribution};

use crate::hooks::{ChainSource, HandlerEntry, HookContribution, HookTable, HookTableBuilder};
use crate::host::ExecPolicy;

pub use crate::plugin_meta::{PluginMeta, PluginOrigin};

impl PluginOrigin {
    /// Where calls of such a plugin run by default: built-ins inline, everything else offloaded.
    pub fn default_policy(self) -> ExecPolicy {
        match self {
            PluginOrigin::Builtin => ExecPolicy::Inline,
            PluginOrigin::ThirdParty => ExecPolicy::Offload,
        }
    }
}

/// An active plugin: who it is, where its calls run, and what it contributes.
#[derive(Clone)]
pub struct ActivePlugin {
    meta: Arc<PluginMeta>,
    policy: ExecPolicy,
    integrations: Vec<Arc<dyn Integration>>,
    hooks: Vec<HookContribution>,
    skills: Vec<SkillContribution>,
    package_dir: Option<Arc<Path>>,
}

impl ActivePlugin {
    /// An active plugin from its typed SDK description, with its origin's default execution policy.
    pub fn from_plugin(meta: Arc<PluginMeta>, plugin: &Plugin) -> Self {
        ActivePlugin {
            policy: meta.origin.default_policy(),
            meta,
            integrations: plugin.integrations().to_vec(),
            hooks: plugin
                .hooks()
                .iter()
                .cloned()
                .map(HookContribution::Typed)
                .collect(),
            skills: plugin.skills().to_vec(),
            package_dir: None,
        }
    }

    /// An active plugin from parts (used by the loader for plugins whose handlers speak JSON).
    pub fn from_parts(
        meta: Arc<PluginMeta>,
        integrations: Vec<Arc<dyn Integration>>,
        hooks: Vec<HookContribution>,
        skills: Vec<SkillContribution>,
    ) -> Self {
        ActivePlugin {
            policy: meta.origin.default_policy(),
            meta,
            integrations,
            hooks,
            skills,
            package_dir: None,
        }
    }

    /// Sets the package directory the plugin was loaded from: file skills
    /// ([`nitejar_sdk::SkillSource::File`]) are read below it.
    pub fn with_package_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.package_dir = Some(Arc::from(dir.into()));
        self
    }

    /// The package directory, when the plugin came from one.
    pub fn package_dir(&self) -> Option<&Path> {
        self.package_dir.as_deref()
    }

    /// Overrides where the plugin's calls run.
    pub fn with_policy(mut self, policy: ExecPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Who the plugin is.
    pub fn meta(&self) -> &Arc<PluginMeta> {
        &self.meta
    }

    /// Where its calls run.
    pub fn policy(&self) -> ExecPolicy {
        self.policy
    }

    /// Its integrations.
    pub fn integrations(&self) -> &[Arc<dyn Integration>] {
        &self.integrations
    }

    /// Its hook handlers, in registration order.
    pub fn hooks(&self) -> &[HookContribution] {
        &self.hooks
    }

    /// Its skills.
    pub fn skills(&self) -> &[SkillContribution] {
        &self.skills
    }
}

/// An integration type in the registry.
#[derive(Clone)]
pub struct IntegrationEntry {
    pub plugin: Arc<PluginMeta>,
    pub policy: ExecPolicy,
    pub descriptor: IntegrationDescriptor,
    pub integration: Arc<dyn Integration>,
}

/// A skill in the registry.
#[derive(Clone, Debug)]
pub struct SkillEntry {
    pub plugin: Arc<PluginMeta>,
    pub skill: SkillContribution,
    /// The plugin's package directory (where file skills are read), when it has one.
    pub package_dir: Option<Arc<Path>>,
}

/// Why a set of plugins cannot be registered together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A third-party plugin contributes an integration type that a built-in owns.
    #[error("plugin `{plugin}` contributes integration type `{kind}`, which belongs to built-in `{builtin}`; a third-party plugin cannot replace a built-in integration — rename the type")]
    BuiltinTypeClaimed {
        plugin: String,
        kind: String,
        builtin: String,
    },
    /// Two active plugins contribute the same integration type.
    #[error("plugins `{first}` and `{second}` both contribute integration type `{kind}`; disable one of them")]
    DuplicateType {
        kind: String,
        first: String,
        second: String,
    },
    /// One plugin contributes the same skill id twice.
    #[error("plugin `{plugin}` contributes skill `{skill}` twice")]
    DuplicateSkill { plugin: String, skill: String },
}

/// A snapshot of every active plugin's contributions.
pub struct Registry {
    plugins: BTreeMap<Arc<str>, ActivePlugin>,
    integrations: HashMap<String, IntegrationEntry>,
    hooks: HookTable,
    skills: Vec<SkillEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry {
            plugins: BTreeMap::new(),
            integrations: HashMap::new(),
            hooks: HookTableBuilder::new().build(),
            skills: Vec::new(),
        }
    }

    /// Builds a registry from active plugins. `reserved_types` maps integration types owned by
    /// built-ins (whether or not they are active) to the built-in's id; a third-party plugin can never
    /// claim one.
    pub fn build<'a>(
        plugins: impl IntoIterator<Item = &'a ActivePlugin>,
        reserved_types: &HashMap<String, String>,
    ) -> Result<Registry, RegistryError> {
        let mut by_id: BTreeMap<Arc<str>, ActivePlugin> = BTreeMap::new();
        for p in plugins {
            by_id.insert(p.meta.id.clone(), p.clone());
        }
        let mut integrations: HashMap<String, IntegrationEntry> = HashMap::new();
        let mut hooks = HookTableBuilder::new();
        let mut skills = Vec::new();
        // BTreeMap order makes conflicts and table contents independent of activation order.
        for plugin in by_id.values() {
            for integration in &plugin.integrations {
                let descriptor = integration.descriptor();
                let kind = descriptor.kind.clone();
                if plugin.meta.origin != PluginOrigin::Builtin {
                    if let Some(owner) = reserved_types.get(&kind) {
                        return Err(RegistryError::BuiltinTypeClaimed {
                            plugin: plugin.meta.id.to_string(),
                            kind,
                            builtin: owner.clone(),
                        });
                    }
                }
                if let Some(existing) = integrations.get(&kind) {
                    return Err(RegistryError::DuplicateType {
                        kind,
                        first: existing.plugin.id.to_string(),
                        second: plugin.meta.id.to_string(),
                    });
                }
                integrations.insert(
                    kind,
                    IntegrationEntry {
                        plugin: plugin.meta.clone(),
                        policy: plugin.policy,
                        descriptor,
                        integration: integration.clone(),
                    },
                );
            }
            for contribution in &plugin.hooks {
                hooks.add(&plugin.meta, plugin.policy, contribution);
            }
            let mut seen = BTreeSet::new();
            for skill in &plugin.skills {
                if !seen.insert(skill.id.as_str()) {
                    return Err(RegistryError::DuplicateSkill {
                        plugin: plugin.meta.id.to_string(),
                        skill: skill.id.clone(),
                    });
                }
                skills.push(SkillEntry {
                    plugin: plugin.meta.clone(),
                    skill: skill.clone(),
                    package_dir: plugin.package_dir.clone(),
                });
            }
        }
        Ok(Registry {
            plugins: by_id,
            integrations,
            hooks: hooks.build(),
            skills,
        })
    }

    /// The active plugins, by id.
    pub fn plugins(&self) -> impl Iterator<Item = &ActivePlugin> {
        self.plugins.values()
    }

    /// An active plugin.
    pub fn plugin(&self, id: &str) -> Option<&ActivePlugin> {
        self.plugins.get(id)
    }

    /// The integration of this type.
    pub fn integration(&self, kind: &str) -> Option<&IntegrationEntry> {
        self.integrations.get(kind)
    }

    /// Every integration type, sorted by type.
    pub fn integrations(&self) -> Vec<&IntegrationEntry> {
        let mut all: Vec<_> = self.integrations.values().collect();
        all.sort_by(|a, b| a.descriptor.kind.cmp(&b.descriptor.kind));
        all
    }

    /// The hook chains.
    pub fn hooks(&self) -> &HookTable {
        &self.hooks
    }

    /// Every contributed skill.
    pub fn skills(&self) -> &[SkillEntry] {
        &self.skills
    }
}

impl<E: HookEvent> ChainSource<E> for Registry {
    fn entries(&self) -> &[HandlerEntry<E>] {
        self.hooks.chain::<E>()
    }
}
