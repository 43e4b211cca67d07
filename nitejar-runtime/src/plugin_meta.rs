//! Who a plugin is — id, version, origin, where its code runs — shared by its handlers, its calls
//! and its receipts. Its own module so that the dispatcher and the execution host, which need it,
//! do not depend on the registry (which depends on them).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use nitejar_store::receipts::ExecutionMode;

/// Where a plugin comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginOrigin {
    /// Compiled into this binary (registered through [`crate::builtin::BUILTIN_PLUGINS`]).
    Builtin,
    /// Installed by an operator; its code is loaded from outside the binary.
    ThirdParty,
}

/// Who a plugin is: id, version, origin. Shared by every handler and receipt of the plugin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginMeta {
    pub id: Arc<str>,
    pub version: Arc<str>,
    pub origin: PluginOrigin,
    /// Where its code runs.
    pub execution: ExecutionMode,
}

impl PluginMeta {
    /// Plugin metadata (code in the server's process).
    pub fn new(id: &str, version: &str, origin: PluginOrigin) -> Arc<Self> {
        Self::with_execution(id, version, origin, ExecutionMode::InProcess)
    }

    /// Plugin metadata, code running as `execution` says.
    pub fn with_execution(
        id: &str,
        version: &str,
        origin: PluginOrigin,
        execution: ExecutionMode,
    ) -> Arc<Self> {
        Arc::new(PluginMeta {
            id: id.into(),
            version: version.into(),
            origin,
            execution,
        })
    }
}

impl fmt::Display for PluginMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}
