//! Batches: consecutive handlers of one library plugin in one `hooks.<event>` call.
//!
//! The host sends the handlers' indices, what is left of the budget and the payload (its cached
//! encoding); the plugin answers one duration per handler that ran, how the last one ended if not
//! with `continue`, and the changed fields once (see [`nitejar_sdk::abi::HookBatchAnswer`]). Every
//! handler is judged here by the same rules as a handler called alone: its timeout is
//! `min(own timeout, budget left when it started)`, counted on the batch's clock from the offsets
//! the answer gives; a late answer is a `timeout` and its change is not applied. The answer of
//! most batches — every handler went on in time and changed nothing — is recognised as such
//! ([`all_continued`]) and its handlers recorded `ok` without being judged one by one: what
//! judging would give them.
//!
//! Changes travel once per batch: the patch of the event's mutable fields after the handlers that
//! changed something. It is applied when the last of those is settled. If the host refuses it
//! (a field outside the mutation policy), every handler of the batch that reported a change is
//! `denied` and nothing of it is applied — the host cannot tell which of them wrote the field.
//! Plugins built with the SDK cannot answer such a patch: their changes are typed.

use std::sync::Arc;
use std::time::Duration;

use nitejar_sdk::abi::{json, BatchEnd, HookBatchAnswer, HookBatchCall};
use nitejar_sdk::hooks::HookEvent;
use nitejar_sdk::HookResult;
use serde::Deserialize;

use super::judge::{judge, refused, Answer, EventJson, Judged, Request};
use super::{DispatchContext, HandlerEntry, HandlerImpl, HookBatchCalls};
use crate::host::ExecPolicy;

/// The batch calls of the handler at `from`, and where its batch ends: the handlers from `from`
/// on that belong to the same plugin instance and run under `policy`. `None` when the handler
/// cannot go in a batch (typed, or a plugin that does not take batches) or would be alone in it:
/// one handler is one call either way, and `hook.<event>` needs no batch bookkeeping (its
/// deadline is the call's).
pub(super) fn segment<E: HookEvent>(
    entries: &[HandlerEntry<E>],
    from: usize,
    policy: ExecPolicy,
) -> Option<(Arc<dyn HookBatchCalls>, usize)> {
    let calls = batch_calls(&entries[from])?;
    if !calls.batches() {
        return None;
    }
    let end = entries[from..]
        .iter()
        .position(|e| e.policy != policy || !batch_calls(e).is_some_and(|c| same(c, calls)))
        .map_or(entries.len(), |p| from + p);
    (end - from >= 2).then(|| (calls.clone(), end))
}

fn batch_calls<E: HookEvent>(entry: &HandlerEntry<E>) -> Option<&Arc<dyn HookBatchCalls>> {
    match &entry.handler {
        HandlerImpl::Json(h) => h.batch().map(|(calls, _)| calls),
        HandlerImpl::Typed(_) => None,
    }
}

fn same(a: &Arc<dyn HookBatchCalls>, b: &Arc<dyn HookBatchCalls>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// The payload of the `hooks.<event>` call for handlers `from..end`, with `budget` left, written
/// after the payload's JSON.
pub(super) fn request<'j, E: HookEvent>(
    entries: &[HandlerEntry<E>],
    from: usize,
    end: usize,
    budget: Duration,
    ctx: &DispatchContext,
    json: &'j mut EventJson,
) -> Request<'j> {
    let handlers: Vec<usize> = entries[from..end]
        .iter()
        .map(|e| match &e.handler {
            HandlerImpl::Json(h) => h.batch().map_or(0, |(_, index)| index),
            HandlerImpl::Typed(_) => 0,
        })
        .collect();
    json.request(|out| {
        HookBatchCall::finish(
            out,
            &handlers,
            budget_us(budget),
            ctx.work_item_id.as_deref(),
            ctx.job_id.as_deref(),
            ctx.agent_id.as_deref(),
        )
    })
}

/// The budget as the batch is told it: whole microseconds, rounded down, so that the batch never
/// believes it has more than the host gives it.
pub(super) fn budget_us(budget: Duration) -> u64 {
    u64::try_from(budget.as_micros()).unwrap_or(u64::MAX)
}

/// One handler of a batch, judged.
pub(super) struct Settled<P> {
    pub(super) index: usize,
    pub(super) judged: Judged<P>,
    /// How long it ran (measured by the plugin).
    pub(super) duration: Duration,
    /// When it ended, after the batch started.
    pub(super) ended: Duration,
}

/// The handler a running batch is in, from `hooks.progress`.
pub(super) struct Running {
    pub(super) index: usize,
    /// How long it has been running.
    pub(super) elapsed: Duration,
    /// Its timeout, capped by the budget left when it started.
    pub(super) timeout: Duration,
}

impl Running {
    /// Whether the batch counts it late already (and will stop after it).
    pub(super) fn overdue(&self) -> bool {
        self.elapsed > self.timeout
    }
}

/// What a batch answered, judged.
pub(super) struct Report<P> {
    /// The handlers that ran, in order.
    pub(super) settled: Vec<Settled<P>>,
    /// Only from `hooks.progress`: the handler running now.
    pub(super) running: Option<Running>,
}

/// A batch answer read in one pass, the changes straight into the event's patch type.
#[derive(Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de>"))]
struct TypedAnswer<'a, P> {
    #[serde(default)]
    ns: Vec<u64>,
    #[serde(default)]
    changed: Vec<usize>,
    #[serde(default, borrow)]
    end: Option<BatchEnd<'a>>,
    #[serde(default)]
    changes: Option<P>,
    #[serde(default)]
    running_ns: Option<u64>,
}

/// The changes of an answer: read, or refused (why).
enum Changes<P> {
    Read(Option<P>),
    Refused(String),
}

/// Reads an answer; only one whose changes the event's patch type refuses is read twice (to tell
/// a refused change from an unreadable answer).
fn parse<'a, E: HookEvent>(
    text: &'a str,
) -> Result<(TypedAnswer<'a, ()>, Changes<E::Patch>), String> {
    match plain::<E::Patch>(text) {
        Some((head, changes)) => Ok((head, Changes::Read(changes))),
        None => parse_full::<E>(text),
    }
}

/// [`parse`] without the shortcut for plain answers.
fn parse_full<'a, E: HookEvent>(
    text: &'a str,
) -> Result<(TypedAnswer<'a, ()>, Changes<E::Patch>), String> {
    if let Ok(typed) = json::from_str::<TypedAnswer<'a, E::Patch>>(text) {
        let TypedAnswer {
            ns,
            changed,
            end,
            changes,
            running_ns,
        } = typed;
        let head = TypedAnswer {
            ns,
            changed,
            end,
            changes: None,
            running_ns,
        };
        return Ok((head, Changes::Read(changes)));
    }
    let answer: HookBatchAnswer<'a> = serde_json::from_str(text)
        .map_err(|e| format!("answered its batch of handlers unreadably: {e}"))?;
    let changes = match answer
        .changes
        .map(|raw| serde_json::from_str::<E::Patch>(raw.get()))
    {
        Some(Err(e)) => Changes::Refused(refused::<E>(e)),
        Some(Ok(patch)) => Changes::Read(Some(patch)),
        None => Changes::Read(None),
    };
    let head = TypedAnswer {
        ns: answer.ns,
        changed: answer.changed,
        end: answer.end,
        changes: None,
        running_ns: answer.running_ns,
    };
    Ok((head, changes))
}

/// The answer of a batch whose handlers all went on, exactly as the SDK writes it:
/// `{"ns":[…],"changed":[…]}` with plain integers, and `,"changes":<patch>` before the closing
/// brace if some changed the payload. The integers are read without serde and the patch alone, as
/// the full reader would read them; `None` for any other text, which the full reader reads.
fn plain<'a, P: Deserialize<'a>>(text: &'a str) -> Option<(TypedAnswer<'a, ()>, Option<P>)> {
    let rest = text.strip_prefix(r#"{"ns":["#)?;
    let (ns, rest) = json::plain_integers(rest)?;
    let rest = rest.strip_prefix(r#","changed":["#)?;
    let (changed, rest) = json::plain_integers(rest)?;
    let changes = match rest {
        "}" => None,
        // Anything after the patch (another field) makes it unreadable alone.
        _ => {
            let patch = rest.strip_prefix(r#","changes":"#)?.strip_suffix('}')?;
            json::from_str::<Option<P>>(patch).ok()?
        }
    };
    let head = TypedAnswer {
        ns,
        changed: changed.into_iter().map(|n| n as usize).collect(),
        end: None,
        changes: None,
        running_ns: None,
    };
    Some((head, changes))
}

/// Reads and judges the answer of `hooks.<event>` (or `hooks.progress`) for handlers `from..end`
/// sent with `budget_us`. An `Err` is an unreadable answer.
pub(super) fn read<E: HookEvent>(
    entries: &[HandlerEntry<E>],
    from: usize,
    end: usize,
    budget_us: u64,
    text: &str,
) -> Result<Report<E::Patch>, String> {
    let (answer, changes) = parse::<E>(text)?;
    if answer.ns.len() > end - from {
        return Err(format!(
            "answered {} outcomes for a batch of {} handlers",
            answer.ns.len(),
            end - from
        ));
    }
    let budget = budget_us.saturating_mul(1000);
    let timeout_of =
        |index: usize, at: u64| Duration::from_nanos(timeout_ns(entries, index, budget, at));
    let last = answer.ns.len().checked_sub(1);
    let mut settled = Vec::with_capacity(answer.ns.len());
    let mut at = 0u64;
    for (pos, &ns) in answer.ns.iter().enumerate() {
        let index = from + pos;
        let timeout = timeout_of(index, at);
        let result = match (&answer.end, Some(pos) == last) {
            (Some(BatchEnd::Block { reason }), true) => {
                Answer::Result(HookResult::Block(reason.to_string()))
            }
            (Some(BatchEnd::Panic { error }), true) => Answer::Error(format!("panicked: {error}")),
            (Some(BatchEnd::Error { error }), true) => Answer::Error(error.to_string()),
            _ => Answer::Result(HookResult::Continue),
        };
        let late = Duration::from_nanos(ns) > timeout;
        settled.push(Settled {
            index,
            judged: judge::<E>(&entries[index].options, result, late.then_some(timeout)),
            duration: Duration::from_nanos(ns),
            ended: Duration::from_nanos(at.saturating_add(ns)),
        });
        at = at.saturating_add(ns);
    }
    apply_changes::<E>(entries, &answer.changed, changes, &mut settled);
    let running = match (answer.running_ns, &answer.end) {
        (Some(ns), None) if from + answer.ns.len() < end => {
            let index = from + answer.ns.len();
            Some(Running {
                index,
                elapsed: Duration::from_nanos(ns),
                timeout: timeout_of(index, at),
            })
        }
        _ => None,
    };
    Ok(Report { settled, running })
}

/// How long handler `index` may take, in nanoseconds, when it starts `at` nanoseconds into a batch
/// given `budget` nanoseconds: its own timeout, capped by what is left of the budget.
fn timeout_ns<E: HookEvent>(
    entries: &[HandlerEntry<E>],
    index: usize,
    budget: u64,
    at: u64,
) -> u64 {
    let own = u64::from(entries[index].options.timeout_ms).saturating_mul(1_000_000);
    own.min(budget.saturating_sub(at))
}

/// The durations of a batch in which every handler `from..end` answered `continue` in time,
/// exactly as the SDK writes that answer (`{"ns":[…],"changed":[]}`); `None` for any other
/// answer, which [`read`] judges. [`read`] would judge each of these handlers `ok`, with no detail,
/// no change and no block: the caller records them so without judging them one by one.
pub(super) fn all_continued<E: HookEvent>(
    entries: &[HandlerEntry<E>],
    from: usize,
    end: usize,
    budget_us: u64,
    text: &str,
) -> Option<Vec<u64>> {
    let rest = text.strip_prefix(r#"{"ns":["#)?;
    let (ns, rest) = json::plain_integers(rest)?;
    if rest != r#","changed":[]}"# || ns.len() != end - from {
        return None;
    }
    let budget = budget_us.saturating_mul(1000);
    let mut at = 0u64;
    for (pos, &n) in ns.iter().enumerate() {
        if n > timeout_ns(entries, from + pos, budget, at) {
            return None;
        }
        at = at.saturating_add(n);
    }
    Some(ns)
}

/// Hands the batch's patch to the last handler that changed something, or refuses it for all of
/// them.
fn apply_changes<E: HookEvent>(
    entries: &[HandlerEntry<E>],
    changed: &[usize],
    changes: Changes<E::Patch>,
    settled: &mut [Settled<E::Patch>],
) {
    // Only handlers whose answer was accepted changed the payload the plugin went on with.
    let changed: Vec<usize> = changed
        .iter()
        .copied()
        .filter(|&pos| {
            pos < settled.len()
                && settled[pos].judged.status == nitejar_store::receipts::ReceiptStatus::Ok
        })
        .collect();
    let Some(&last) = changed.iter().max() else {
        return;
    };
    match changes {
        Changes::Read(Some(patch)) => {
            // The plugin sends the batch's changes once: each handler that changed something is
            // told the fields of all of them together, the last one applies them.
            if changed.len() > 1 {
                let mut detail = super::judge::change_detail(&patch);
                detail["combined_with_batch"] = serde_json::Value::Bool(true);
                for &pos in &changed {
                    settled[pos].judged.detail = Some(detail.clone());
                }
            }
            settled[last].judged.change = Some(patch);
        }
        Changes::Refused(reason) => deny::<E>(entries, settled, &changed, reason),
        Changes::Read(None) => {
            let reason = "the plugin reported changes but did not send them".to_string();
            deny::<E>(entries, settled, &changed, reason);
        }
    }
}

fn deny<E: HookEvent>(
    entries: &[HandlerEntry<E>],
    settled: &mut [Settled<E::Patch>],
    changed: &[usize],
    reason: String,
) {
    for &pos in changed {
        let s = &mut settled[pos];
        s.judged = judge::<E>(
            &entries[s.index].options,
            Answer::Denied(reason.clone()),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_sdk::hooks::{ToolPreExec, ToolPreExecPatch};

    /// What an answer reads as: durations, changed positions, whether it has an end, the changes
    /// (or why they were refused) and `running_ns`; or why it is unreadable.
    type Read = Result<(Vec<u64>, Vec<usize>, bool, Option<String>, Option<u64>), String>;

    fn summary(read: Result<(TypedAnswer<'_, ()>, Changes<ToolPreExecPatch>), String>) -> Read {
        read.map(|(head, changes)| {
            let changes = match changes {
                Changes::Read(patch) => patch.map(|p| format!("{p:?}")),
                Changes::Refused(reason) => Some(format!("refused: {reason}")),
            };
            (
                head.ns,
                head.changed,
                head.end.is_some(),
                changes,
                head.running_ns,
            )
        })
    }

    /// Every text one byte short of `text`.
    fn one_byte_short(text: &str) -> impl Iterator<Item = String> + '_ {
        (0..text.len()).map(|i| format!("{}{}", &text[..i], &text[i + 1..]))
    }

    #[test]
    fn the_plain_answer_is_read_as_the_full_reader_reads_it_or_left_to_it() {
        let mut texts: Vec<String> = [
            r#"{"ns":[],"changed":[]}"#,
            r#"{"ns":[0],"changed":[]}"#,
            r#"{"ns":[1834,160,110,100,90],"changed":[]}"#,
            r#"{"ns":[5,6],"changed":[1]}"#,
            r#"{"ns":[9999999999999999999],"changed":[]}"#,
            r#"{"ns":[18446744073709551615],"changed":[]}"#,
            r#"{"ns":[18446744073709551616],"changed":[]}"#,
            r#"{"ns":[01],"changed":[]}"#,
            r#"{"ns":[1,],"changed":[]}"#,
            r#"{"ns":[,1],"changed":[]}"#,
            r#"{"ns":[1.5],"changed":[]}"#,
            r#"{"ns":[1e3],"changed":[]}"#,
            r#"{"ns":[-1],"changed":[]}"#,
            r#"{"ns":[1 ,2],"changed":[]}"#,
            r#"{"ns":[1],"changed":[]} "#,
            r#"{"ns":[1],"changed":[],"running_ns":7}"#,
            r#"{"ns":[1],"changed":[],"end":{"action":"block","reason":"no"}}"#,
            r#"{"changed":[],"ns":[1]}"#,
            r#"{"ns":[1]}"#,
            r#"{"ns":[1],"changed":[]"#,
            r#"{"ns":[1],"changed":[]}}"#,
            // With changes.
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1}}"#,
            r#"{"ns":[1,2],"changed":[0,1],"changes":{"tool_input":{"a":"}\"}","b":[1,{}]}}}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":"\u00e9\n"}}"#,
            r#"{"ns":[1],"changed":[0],"changes":null}"#,
            r#"{"ns":[1],"changed":[0],"changes": {"tool_input":1} }"#,
            r#"{"ns":[1],"changed":[0],"changes":{}}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1}}}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1},"end":null}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1},"running_ns":3}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1},"changes":{"tool_input":2}}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1,"tool_input":2}}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_name":"rm"}}"#,
            r#"{"ns":[1],"changed":[0],"changes":[1,2]}"#,
            r#"{"ns":[1],"changed":[0],"changes":}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1}"#,
            r#"{"ns":[1],"changed":[0],"changes":{"tool_input":1}}  "#,
        ]
        .map(String::from)
        .to_vec();
        // Every text one byte short of a plain answer, with and without changes, too.
        for plain_text in [
            r#"{"ns":[12,3],"changed":[0]}"#,
            r#"{"ns":[12,3],"changed":[0],"changes":{"tool_input":[1]}}"#,
        ] {
            texts.extend(one_byte_short(plain_text));
        }
        let (mut taken, mut with_changes) = (0, 0);
        for text in &texts {
            if let Some((_, changes)) = plain::<ToolPreExecPatch>(text) {
                taken += 1;
                with_changes += usize::from(changes.is_some());
            }
            // Whatever the plain reader takes or leaves, the answer reads as the full reader says.
            assert_eq!(
                summary(parse::<ToolPreExec>(text)),
                summary(parse_full::<ToolPreExec>(text)),
                "{text}"
            );
        }
        assert!(taken >= 12, "the plain reader took only {taken} texts");
        assert!(
            with_changes >= 5,
            "the plain reader took only {with_changes} patches"
        );
    }

    fn entries(timeouts_ms: &[u32]) -> Vec<HandlerEntry<ToolPreExec>> {
        let plugin = crate::plugin_meta::PluginMeta::new(
            "p",
            "1.0.0",
            crate::plugin_meta::PluginOrigin::ThirdParty,
        );
        timeouts_ms
            .iter()
            .map(|&timeout_ms| HandlerEntry {
                plugin: plugin.clone(),
                options: nitejar_sdk::hooks::HookOptions::new().timeout_ms(timeout_ms),
                policy: crate::host::ExecPolicy::Inline,
                handler: HandlerImpl::Typed(Arc::new(|_, _| HookResult::Continue)),
            })
            .collect()
    }

    #[test]
    fn an_answer_taken_as_all_continued_is_judged_so_by_the_full_reader() {
        // Handler 0 of the chain is another plugin's; the batch is handlers 1..4 (1 ms, 2 ms,
        // 1 ms), with a budget of 3 ms.
        let entries = entries(&[5, 1, 2, 1]);
        let (from, end, budget_us) = (1, 4, 3_000);
        let mut texts: Vec<String> = [
            r#"{"ns":[10,20,30],"changed":[]}"#,
            r#"{"ns":[1000000,999999,1],"changed":[]}"#,
            // Late against its own timeout, or against what the budget left it.
            r#"{"ns":[1000001,20,30],"changed":[]}"#,
            r#"{"ns":[10,1999999,1000000],"changed":[]}"#,
            r#"{"ns":[0,2000000,1000000],"changed":[]}"#,
            // Fewer or more outcomes than handlers, changes, an end, progress, other spellings.
            r#"{"ns":[10,20],"changed":[]}"#,
            r#"{"ns":[10,20,30,40],"changed":[]}"#,
            r#"{"ns":[10,20,30],"changed":[1],"changes":{"tool_input":1}}"#,
            r#"{"ns":[10,20,30],"changed":[],"end":{"action":"block","reason":"no"}}"#,
            r#"{"ns":[10,20,30],"changed":[],"running_ns":5}"#,
            r#"{"ns":[10,20,30],"changed":[] }"#,
            r#"{"changed":[],"ns":[10,20,30]}"#,
            r#"{"ns":[10,20,30]}"#,
        ]
        .map(String::from)
        .to_vec();
        texts.extend(one_byte_short(r#"{"ns":[10,20,30],"changed":[]}"#));
        let mut taken = 0;
        for text in &texts {
            let fast = all_continued(&entries, from, end, budget_us, text);
            let full = read(&entries, from, end, budget_us, text);
            // Whatever the shortcut takes, the full reader judges all three `ok`, unchanged and
            // on time, with the same durations.
            let all_ok = full.as_ref().is_ok_and(|r| {
                r.running.is_none()
                    && r.settled.len() == end - from
                    && r.settled.iter().all(|s| {
                        s.judged.status == nitejar_store::receipts::ReceiptStatus::Ok
                            && s.judged.detail.is_none()
                            && s.judged.change.is_none()
                            && s.judged.block.is_none()
                    })
            });
            // What the shortcut leaves, the full reader judges.
            if let Some(ns) = fast {
                taken += 1;
                assert!(all_ok, "{text}");
                let report = full.unwrap();
                let durations: Vec<u64> = report
                    .settled
                    .iter()
                    .map(|s| s.duration.as_nanos() as u64)
                    .collect();
                assert_eq!(durations, ns, "{text}");
                let indices: Vec<usize> = report.settled.iter().map(|s| s.index).collect();
                assert_eq!(indices, (from..end).collect::<Vec<_>>(), "{text}");
            }
        }
        // The first two, and the deletions that leave a shorter duration (`[1,20,30]`, …).
        assert!(taken >= 7, "the shortcut took only {taken} texts");
        for text in &texts[..2] {
            assert!(
                all_continued(&entries, from, end, budget_us, text).is_some(),
                "{text}"
            );
        }
    }
}
