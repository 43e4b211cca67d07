//! A plugin: the integrations, hook handlers and skills it contributes.
//!
//! [`Plugin::builder`] is the Rust counterpart of `definePlugin({ integrations, hooks, skills })`.
//! Built-ins and third-party plugins are written the same way; only how they reach the host differs
//! (a compile-time registration for built-ins, a `cdylib` for third-party plugins).
//!
//! ```
//! use nitejar_sdk::hooks::{HookOptions, HookResult, ResponsePreDeliver, ResponsePreDeliverPatch};
//! use nitejar_sdk::{Plugin, SkillContribution};
//!
//! let plugin = Plugin::builder()
//!     .hook(HookOptions::new(), |_ctx, r: &ResponsePreDeliver| {
//!         HookResult::change(
//!             ResponsePreDeliverPatch::new().content(r.content.replace("password", "********")),
//!         )
//!     })
//!     .skill(SkillContribution::inline("tone", "Tone", "Answer briefly."))
//!     .build();
//! assert_eq!(plugin.contributions().hooks, vec![nitejar_sdk::HookName::ResponsePreDeliver]);
//! ```

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::hooks::{HookContext, HookEvent, HookName, HookOptions, HookRegistration, HookResult};
use crate::integration::Integration;
use crate::skill::SkillContribution;

/// What a plugin contributes, by name: compared with the manifest's `contributes` when it loads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Contributions {
    /// Integration types.
    pub integrations: Vec<String>,
    /// Hook events with at least one handler, in lifecycle order, without repeats.
    pub hooks: Vec<HookName>,
    /// Skill ids.
    pub skills: Vec<String>,
}

impl Contributions {
    /// Contributions by name: integration types, hook events and skill ids. A host compares
    /// what a plugin's code registers with what its manifest declares; the type is
    /// `#[non_exhaustive]`, so this is how the host side builds one.
    ///
    /// ```
    /// use nitejar_sdk::{Contributions, HookName};
    ///
    /// let declared = Contributions::new(vec![], vec![HookName::ToolPreExec], vec!["tone".into()]);
    /// assert_eq!(declared.skills, ["tone"]);
    /// ```
    pub fn new(integrations: Vec<String>, hooks: Vec<HookName>, skills: Vec<String>) -> Self {
        Contributions {
            integrations,
            hooks,
            skills,
        }
    }
}

/// A plugin's contributions.
#[derive(Clone, Default)]
pub struct Plugin {
    integrations: Vec<Arc<dyn Integration>>,
    hooks: Vec<HookRegistration>,
    skills: Vec<SkillContribution>,
}

impl Plugin {
    /// Starts describing a plugin.
    pub fn builder() -> PluginBuilder {
        PluginBuilder::default()
    }

    /// The integrations, in registration order.
    pub fn integrations(&self) -> &[Arc<dyn Integration>] {
        &self.integrations
    }

    /// The hook handlers, in registration order.
    pub fn hooks(&self) -> &[HookRegistration] {
        &self.hooks
    }

    /// The skills, in registration order.
    pub fn skills(&self) -> &[SkillContribution] {
        &self.skills
    }

    /// The integration of this type, if the plugin contributes it.
    pub fn integration(&self, kind: &str) -> Option<&Arc<dyn Integration>> {
        self.integrations
            .iter()
            .find(|i| i.descriptor().kind == kind)
    }

    /// What the plugin contributes, by name.
    pub fn contributions(&self) -> Contributions {
        let mut hooks: Vec<HookName> = self.hooks.iter().map(|h| h.hook()).collect();
        hooks.sort();
        hooks.dedup();
        Contributions {
            integrations: self
                .integrations
                .iter()
                .map(|i| i.descriptor().kind)
                .collect(),
            hooks,
            skills: self.skills.iter().map(|s| s.id.clone()).collect(),
        }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("contributions", &self.contributions())
            .finish()
    }
}

/// Builds a [`Plugin`].
#[derive(Default)]
pub struct PluginBuilder {
    plugin: Plugin,
}

impl PluginBuilder {
    /// Adds an integration.
    pub fn integration(mut self, integration: impl Integration) -> Self {
        self.plugin.integrations.push(Arc::new(integration));
        self
    }

    /// Adds a handler for event `E` (inferred from the handler's payload type).
    pub fn hook<E, F>(mut self, options: HookOptions, handler: F) -> Self
    where
        E: HookEvent,
        F: Fn(&HookContext<'_>, &E) -> HookResult<E::Patch> + Send + Sync + 'static,
    {
        self.plugin
            .hooks
            .push(HookRegistration::new(options, handler));
        self
    }

    /// Adds a handler for event `E` with the default options (priority 0, 1500 ms, `fail_open`).
    pub fn on<E, F>(self, handler: F) -> Self
    where
        E: HookEvent,
        F: Fn(&HookContext<'_>, &E) -> HookResult<E::Patch> + Send + Sync + 'static,
    {
        self.hook(HookOptions::default(), handler)
    }

    /// Adds a skill.
    pub fn skill(mut self, skill: SkillContribution) -> Self {
        self.plugin.skills.push(skill);
        self
    }

    /// Finishes the plugin.
    pub fn build(self) -> Plugin {
        self.plugin
    }
}
