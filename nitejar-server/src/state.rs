//! What every request handler reaches: the engine's handles and the server's own (its
//! configuration, the admin credential, metrics). A leaf of the server's modules: the HTTP
//! adapters depend on it, it depends on none of them but the few it holds.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use nitejar_core::changes::ChangeFeed;
use nitejar_core::ingress::Ingress;
use nitejar_core::integrations::Integrations;
use nitejar_core::lifecycle::PluginManager;
use nitejar_core::runner::queue::RunQueue;
use nitejar_core::runtime::Runtime;
use nitejar_core::skills::Skills;
use nitejar_core::store::{DbReceiptSink, Store};

use crate::auth::AdminAuth;
use crate::config::Config;
use crate::metrics::Metrics;

/// What every request handler can reach.
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub ingress: Ingress,
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub auth: Arc<AdminAuth>,
    pub metrics: Arc<Metrics>,
    /// Install, enable, disable, upgrade, rollback, uninstall.
    pub plugins: Arc<PluginManager>,
    /// The skill index and its operations (the skills API and pages).
    pub skills: Arc<Skills>,
    /// The runs of this process (and the queue behind them).
    pub runs: Arc<RunQueue>,
    /// The receipt writer (its backlog, for `/readyz`).
    pub receipts: Arc<DbReceiptSink>,
    /// Set once the registry is built (`/readyz`).
    pub ready: AtomicBool,
    /// Integration rows (create, change, enable, hand over, test, delete).
    pub integrations: Arc<Integrations>,
    /// How this server follows the database (`/readyz`).
    pub changes: Arc<ChangeFeed>,
}
