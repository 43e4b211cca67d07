//! The server follows the database: a change to plugins or trust settings, by this process, the CLI
//! or another server, starts a reconciliation ([`PluginManager::reconcile`]) as soon as the change
//! feed sees it; a slow safety-net round runs even when nothing was signalled.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::PluginManager;
use crate::changes::ChangeFeed;
use crate::store::{Revisions, Topic};

/// Rounds running at once at most: a round that waits for a slow plugin's load (up to the load
/// timeout) must not hold up the next, which skips that plugin and applies every other change.
const ROUNDS_AT_ONCE: usize = 2;

/// Reconciles `manager` whenever the plugins' or the trust settings' counter moves in `feed`, and
/// every `safety_net` regardless. Runs until the returned task is aborted. Does not start the feed.
pub fn follow(
    manager: Arc<PluginManager>,
    feed: Arc<ChangeFeed>,
    safety_net: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rx = feed.subscribe();
        let mut seen = *rx.borrow_and_update();
        let rounds = Arc::new(Semaphore::new(ROUNDS_AT_ONCE));
        let last_error = Arc::new(std::sync::Mutex::new(String::new()));
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return; // the feed is gone
                    }
                    let now = *rx.borrow_and_update();
                    if !concerns_plugins(&now, &seen) {
                        continue;
                    }
                    seen = now;
                }
                () = tokio::time::sleep(safety_net) => {}
            }
            // Waits for a free round rather than dropping the signal: what changed is applied by
            // the round that starts once one ends.
            let Ok(permit) = rounds.clone().acquire_owned().await else {
                return;
            };
            let (manager, last_error) = (manager.clone(), last_error.clone());
            tokio::spawn(async move {
                let result = manager.reconcile().await;
                drop(permit);
                let mut last = last_error.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(_) => last.clear(),
                    Err(e) => {
                        let text = e.to_string();
                        if *last != text {
                            tracing::warn!("plugin reconciliation failed: {text}");
                            *last = text;
                        }
                    }
                }
            });
        }
    })
}

/// Whether a move from `before` to `now` concerns what a reconciliation applies.
fn concerns_plugins(now: &Revisions, before: &Revisions) -> bool {
    now.moved_since(before)
        .iter()
        .any(|t| matches!(t, Topic::Plugins | Topic::Trust))
}
