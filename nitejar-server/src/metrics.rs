//! Prometheus metrics, in the text exposition format, counted from receipts.
//!
//! Every plugin action already produces a receipt, so [`MetricsSink`] sits in front of the durable
//! receipt sink and counts what passes: hook calls (outcome and latency per plugin and hook),
//! integration calls, webhook deliveries (by plugin and reason code), lifecycle actions (installs,
//! enables, …) and permission denials. A hand-rolled registry rather than a metrics crate: a few
//! counters and one histogram family, no global state, nothing to configure.
//!
//! `/metrics` is not public: it needs the admin credential or `NITEJAR_METRICS_TOKEN` (a bearer
//! token that opens nothing else), because the numbers name plugins and show traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptSink, SubmitFuture};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];
/// Label sets per family at most, so that a flood of distinct values cannot grow memory unbounded.
const MAX_SERIES: usize = 5000;

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, u64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

/// The metrics of one server.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

/// `# HELP` lines.
const HELP: &[(&str, &str, &str)] = &[
    ("nitejar_hook_calls_total", "counter", "Hook handler calls by plugin, hook and outcome."),
    ("nitejar_hook_duration_seconds", "histogram", "Hook handler latency by plugin and hook."),
    ("nitejar_integration_calls_total", "counter", "Integration calls by plugin, operation and outcome."),
    ("nitejar_webhooks_total", "counter", "Webhook deliveries by plugin and reason code (accepted, duplicate, bad_signature, ...)."),
    ("nitejar_webhook_duration_seconds", "histogram", "Time to answer a webhook delivery."),
    ("nitejar_plugin_actions_total", "counter", "Plugin lifecycle actions (install, enable, disable, upgrade, rollback, uninstall, load, auto_disable) by plugin and outcome."),
    ("nitejar_permission_denials_total", "counter", "Host calls denied by the permission gate, by plugin."),
    ("nitejar_receipts_total", "counter", "Receipts recorded, by kind and status."),
    ("nitejar_admin_auth_failures_total", "counter", "Failed admin credentials (a wrong bearer token or sign-in), by credential."),
    ("nitejar_admin_auth_lockouts_total", "counter", "Client addresses locked out after repeated failed admin credentials."),
    ("nitejar_admin_auth_throttled_total", "counter", "Requests refused with 429 because their address is locked out."),
];

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Families> {
        // Counters stay consistent under a panic elsewhere (each update is one map operation).
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a failed admin credential (`bearer` or `sign_in`).
    pub fn admin_auth_failure(&self, credential: &'static str) {
        let mut f = self.lock();
        inc(
            &mut f,
            "nitejar_admin_auth_failures_total",
            vec![("credential", credential.to_owned())],
        );
    }

    /// Counts an address locked out.
    pub fn admin_auth_lockout(&self) {
        inc(
            &mut self.lock(),
            "nitejar_admin_auth_lockouts_total",
            Vec::new(),
        );
    }

    /// Counts a request refused because its address is locked out.
    pub fn admin_auth_throttled(&self) {
        inc(
            &mut self.lock(),
            "nitejar_admin_auth_throttled_total",
            Vec::new(),
        );
    }

    /// Counts one receipt.
    pub fn observe(&self, r: &Receipt) {
        let mut f = self.lock();
        let plugin = r.plugin_id.to_string();
        let status = r.status.as_str().to_owned();
        let seconds = r.duration_us as f64 / 1_000_000.0;
        inc(
            &mut f,
            "nitejar_receipts_total",
            vec![
                ("kind", r.kind.as_str().to_owned()),
                ("status", status.clone()),
            ],
        );
        match r.kind {
            ReceiptKind::Hook => {
                let hook = r.hook.map(|h| h.as_str()).unwrap_or("unknown").to_owned();
                inc(
                    &mut f,
                    "nitejar_hook_calls_total",
                    vec![
                        ("plugin", plugin.clone()),
                        ("hook", hook.clone()),
                        ("status", status),
                    ],
                );
                observe(
                    &mut f,
                    "nitejar_hook_duration_seconds",
                    vec![("plugin", plugin), ("hook", hook)],
                    seconds,
                );
            }
            ReceiptKind::Integration => {
                let operation = detail_str(r, "operation").unwrap_or("unknown").to_owned();
                inc(
                    &mut f,
                    "nitejar_integration_calls_total",
                    vec![
                        ("plugin", plugin),
                        ("operation", operation),
                        ("status", status),
                    ],
                );
            }
            ReceiptKind::WebhookIngress => {
                // A delivery to a type no plugin provides carries a made-up plugin id; keep such ids
                // out of label values (anyone can post to any URL).
                let plugin = if r.plugin_version.is_some() {
                    plugin
                } else {
                    "none".to_owned()
                };
                let code = detail_str(r, "reason").unwrap_or("unknown").to_owned();
                inc(
                    &mut f,
                    "nitejar_webhooks_total",
                    vec![("plugin", plugin), ("code", code)],
                );
                observe(
                    &mut f,
                    "nitejar_webhook_duration_seconds",
                    Vec::new(),
                    seconds,
                );
            }
            ReceiptKind::PermissionDenied => inc(
                &mut f,
                "nitejar_permission_denials_total",
                vec![("plugin", plugin)],
            ),
            ReceiptKind::Install
            | ReceiptKind::Enable
            | ReceiptKind::Disable
            | ReceiptKind::Upgrade
            | ReceiptKind::Rollback
            | ReceiptKind::Uninstall
            | ReceiptKind::Load
            | ReceiptKind::AutoDisable
            | ReceiptKind::Configure
            | ReceiptKind::Trust
            | ReceiptKind::AgentGrant => inc(
                &mut f,
                "nitejar_plugin_actions_total",
                vec![
                    ("plugin", plugin),
                    ("action", r.kind.as_str().to_owned()),
                    ("status", status),
                ],
            ),
            _ => {}
        }
    }

    /// The text exposition, with `gauges` (name, help, value) appended.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let f = self.lock();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if let Some(series) = f.counters.get(name) {
                for (labels, value) in series {
                    let _ = writeln!(out, "{name}{} {value}", label_text(labels, None));
                }
            }
            if let Some(series) = f.histograms.get(name) {
                for (labels, h) in series {
                    let mut cumulative = 0;
                    for (bound, count) in BUCKETS.iter().zip(h.counts) {
                        cumulative += count;
                        let le = bound.to_string();
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {cumulative}",
                            label_text(labels, Some(&le))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        label_text(labels, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(out, "{name}_sum{} {}", label_text(labels, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", label_text(labels, None), h.count);
                }
            }
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

fn detail_str<'a>(r: &'a Receipt, key: &str) -> Option<&'a str> {
    r.detail.as_ref()?.get(key)?.as_str()
}

fn inc(f: &mut Families, name: &'static str, labels: Labels) {
    let series = f.counters.entry(name).or_default();
    if series.len() >= MAX_SERIES && !series.contains_key(&labels) {
        return;
    }
    *series.entry(labels).or_default() += 1;
}

fn observe(f: &mut Families, name: &'static str, labels: Labels, seconds: f64) {
    let series = f.histograms.entry(name).or_default();
    if series.len() >= MAX_SERIES && !series.contains_key(&labels) {
        return;
    }
    let h = series.entry(labels).or_default();
    if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
        h.counts[i] += 1;
    }
    h.sum += seconds;
    h.count += 1;
}

/// `{a="1",b="2"}` with Prometheus escaping, `le` appended for buckets; empty when no label.
fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A receipt sink that counts every receipt, then hands it to the durable sink.
pub struct MetricsSink {
    pub metrics: Arc<Metrics>,
    pub inner: Arc<dyn ReceiptSink>,
}

impl ReceiptSink for MetricsSink {
    fn submit(&self, batch: Vec<Receipt>) -> SubmitFuture<'_> {
        for r in &batch {
            self.metrics.observe(r);
        }
        self.inner.submit(batch)
    }

    fn flush(&self) -> SubmitFuture<'_> {
        self.inner.flush()
    }

    fn stored(&self, batch: Vec<Receipt>) -> SubmitFuture<'_> {
        for r in &batch {
            self.metrics.observe(r);
        }
        self.inner.stored(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nitejar_core::receipts::{Receipt, ReceiptKind, ReceiptStatus};
    use serde_json::json;

    use super::*;

    #[test]
    fn webhooks_hooks_and_actions_are_counted() {
        let m = Metrics::new();
        let mut hook = Receipt::new(
            Arc::from("com.example.guard"),
            Some(Arc::from("1.0.0")),
            ReceiptKind::Hook,
            ReceiptStatus::Blocked,
        );
        hook.hook = Some(nitejar_sdk::HookName::ToolPreExec);
        hook.duration_us = 1500;
        m.observe(&hook);
        let webhook = Receipt::new(
            Arc::from("integration:nope"),
            None,
            ReceiptKind::WebhookIngress,
            ReceiptStatus::Blocked,
        )
        .with_detail(json!({"reason": "integration_not_found"}));
        m.observe(&webhook);
        m.observe(&Receipt::new(
            Arc::from("com.example.guard"),
            Some(Arc::from("1.0.0")),
            ReceiptKind::Install,
            ReceiptStatus::Ok,
        ));
        let text = m.render(&[("nitejar_active_plugins", "Active plugins.", 2.0)]);
        for line in [
            r#"nitejar_hook_calls_total{plugin="com.example.guard",hook="tool.pre_exec",status="blocked"} 1"#,
            r#"nitejar_hook_duration_seconds_bucket{plugin="com.example.guard",hook="tool.pre_exec",le="0.0025"} 1"#,
            r#"nitejar_hook_duration_seconds_bucket{plugin="com.example.guard",hook="tool.pre_exec",le="0.001"} 0"#,
            r#"nitejar_webhooks_total{plugin="none",code="integration_not_found"} 1"#,
            r#"nitejar_plugin_actions_total{plugin="com.example.guard",action="install",status="ok"} 1"#,
            "nitejar_active_plugins 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
