//! The scope of one plugin call: an owned handle on its identity, deadline, cancellation, services
//! and run context.
//!
//! The execution host *enters* the scope of every offloaded call (and of every call into a plugin
//! loaded from a library) on the thread that runs it. Code that forwards a call across a boundary
//! reads it back with [`CallScope::current`]: the loader's proxies hand it to the library's host
//! object, so a host call the plugin makes later — from the same thread or one of its own — is
//! checked against the right deadline and cancellation, and the permission gate writes its receipts
//! with the call's work item, job and hook.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_sdk::host::{HttpRequest, HttpResponse, LogLevel, ProcessOutput, ProcessRequest};
use nitejar_sdk::{HookName, Host, HostError};

use super::{Cancellation, HostServices};
use crate::plugin_meta::PluginMeta;

thread_local! {
    static CURRENT: RefCell<Option<CallScope>> = const { RefCell::new(None) };
}

/// An owned handle on one plugin call. Cheap to clone (a few reference counts).
#[derive(Clone)]
pub struct CallScope {
    plugin: Arc<PluginMeta>,
    deadline: Option<Instant>,
    cancellation: Arc<Cancellation>,
    services: Arc<dyn HostServices>,
    work_item_id: Option<Arc<str>>,
    job_id: Option<Arc<str>>,
    hook: Option<HookName>,
}

impl CallScope {
    /// The scope of a call of `plugin`.
    pub fn new(
        plugin: Arc<PluginMeta>,
        deadline: Option<Instant>,
        cancellation: Arc<Cancellation>,
        services: Arc<dyn HostServices>,
    ) -> Self {
        CallScope {
            plugin,
            deadline,
            cancellation,
            services,
            work_item_id: None,
            job_id: None,
            hook: None,
        }
    }

    /// Sets the work item and job the call belongs to.
    pub fn with_run(mut self, work_item_id: Option<Arc<str>>, job_id: Option<Arc<str>>) -> Self {
        self.work_item_id = work_item_id;
        self.job_id = job_id;
        self
    }

    /// Sets the hook event the call handles.
    pub fn with_hook(mut self, hook: HookName) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The scope entered on this thread, if any.
    pub fn current() -> Option<CallScope> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Runs `f` with this scope entered on the current thread; the previous one (if any) is back
    /// when `f` returns or unwinds.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<CallScope>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let _restore = Restore(previous);
        f()
    }

    /// The plugin the call belongs to.
    pub fn plugin(&self) -> &Arc<PluginMeta> {
        &self.plugin
    }

    /// The call's cancellation flag.
    pub fn cancellation(&self) -> &Arc<Cancellation> {
        &self.cancellation
    }

    /// The services behind the call's host.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// The work item of the call, if it has one.
    pub fn work_item_id(&self) -> Option<&Arc<str>> {
        self.work_item_id.as_ref()
    }

    /// The job of the call, if it has one.
    pub fn job_id(&self) -> Option<&Arc<str>> {
        self.job_id.as_ref()
    }

    /// The hook event of the call, for hook calls.
    pub fn hook(&self) -> Option<HookName> {
        self.hook
    }

    /// Time left before the deadline (zero once it passed); `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn check_live(&self) -> Result<(), HostError> {
        if self.cancellation.is_cancelled() {
            return Err(HostError::Cancelled);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(HostError::Timeout),
            _ => Ok(()),
        }
    }
}

impl Host for CallScope {
    fn http(&self, request: &HttpRequest) -> Result<HttpResponse, HostError> {
        self.check_live()?;
        self.services.http(&self.plugin, self.deadline, request)
    }
    fn secret(&self, name: &str) -> Result<String, HostError> {
        self.check_live()?;
        self.services.secret(&self.plugin, name)
    }
    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        self.check_live()?;
        self.services.read_file(&self.plugin, path)
    }
    fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), HostError> {
        self.check_live()?;
        self.services.write_file(&self.plugin, path, contents)
    }
    fn spawn_process(&self, request: &ProcessRequest) -> Result<ProcessOutput, HostError> {
        self.check_live()?;
        self.services
            .spawn_process(&self.plugin, self.deadline, request)
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.services.log(&self.plugin, level, message);
    }
    fn is_cancelled(&self) -> bool {
        self.cancellation.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::NoServices;
    use crate::plugin_meta::PluginOrigin;

    #[test]
    fn entering_nests_and_restores() {
        let meta = PluginMeta::new("com.example.a", "1.0.0", PluginOrigin::ThirdParty);
        let outer = CallScope::new(
            meta.clone(),
            None,
            Cancellation::new(),
            Arc::new(NoServices),
        )
        .with_hook(HookName::ToolPreExec);
        let inner = CallScope::new(meta, None, Cancellation::new(), Arc::new(NoServices));
        assert!(CallScope::current().is_none());
        outer.enter(|| {
            assert_eq!(
                CallScope::current().and_then(|s| s.hook()),
                Some(HookName::ToolPreExec)
            );
            inner.enter(|| assert_eq!(CallScope::current().and_then(|s| s.hook()), None));
            assert!(CallScope::current().is_some_and(|s| s.hook().is_some()));
        });
        assert!(CallScope::current().is_none());
    }
}
