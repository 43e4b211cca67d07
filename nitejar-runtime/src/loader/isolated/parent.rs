//! The server's side of a plugin's process: start it, call it, serve its host calls, and contain
//! what goes wrong.
//!
//! - A call waits for its answer until the call's deadline (plus [`GRACE`]); past it the call
//!   fails with a timeout and the process is killed — its threads and processor time come back —
//!   and started again for the next call.
//! - A process that dies (a crash, a signal, a limit) fails every call in flight with the reason,
//!   leaves a `crashed` receipt naming the signal or exit code, and is started again on the next
//!   call after a back-off that doubles with each death in a row (from [`FIRST_BACKOFF`] to
//!   [`MAX_BACKOFF`]). The crash-loop guard counts the crashes and the failed calls, and
//!   auto-disables the plugin as for any failing plugin.
//! - Host calls run on a thread of their own in the server, through the call's scope (the
//!   permission gate, the deadline, the run context), exactly as for a library loaded in-process.
//! - The process starts with an empty environment: the server's secrets (`ENCRYPTION_KEY`, the
//!   admin token, `NITEJAR_SECRET_*`) are not in it; a plugin reads its declared secrets through
//!   the host.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use nitejar_sdk::abi::{level_from_u8, PluginError};
use nitejar_sdk::host::LogLevel;
use nitejar_sdk::HostError;
use serde_json::json;

use super::frame::{self, Kind};
use super::LoadRequest;
use crate::host::HostServices;
use crate::registry::PluginMeta;
use nitejar_store::receipts::{ExecutionMode, Receipt, ReceiptKind, ReceiptStatus};

/// How long a caller polls for its answer before it sleeps.
const ANSWER_SPIN: Duration = Duration::from_micros(40);

/// How long past a call's deadline its answer is still waited for.
pub(crate) const GRACE: Duration = Duration::from_millis(50);
/// The back-off after a first death.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest back-off.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How many of the process's last standard-error lines a load failure quotes.
const STDERR_TAIL: usize = 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How to start a plugin's process.
#[derive(Clone, Debug)]
pub struct PluginHostCommand {
    /// The program: the `nitejar` binary.
    pub program: PathBuf,
    /// Its arguments (`__plugin-host`).
    pub args: Vec<String>,
}

/// What a call's answer was.
enum Answer {
    Ok(String),
    Err(PluginError),
}

/// Host calls of a plugin's process are served by this (the loader's call table).
pub(crate) type ServeHostCall = dyn Fn(u64, &str, &str) -> Result<String, HostError> + Send + Sync;

/// A plugin's process, started again after it dies. See the module docs.
pub(crate) struct ChildProcess {
    meta: Arc<PluginMeta>,
    command: PluginHostCommand,
    request: Vec<u8>,
    load_timeout: Duration,
    services: Arc<dyn HostServices>,
    serve: Arc<ServeHostCall>,
    state: Mutex<State>,
    me: Weak<ChildProcess>,
}

enum State {
    Running(Arc<Live>),
    Down {
        since: Instant,
        reason: String,
        deaths: u32,
    },
    Stopped,
}

struct Live {
    pid: u32,
    child: Mutex<Child>,
    writer: Mutex<BufWriter<ChildStdin>>,
    pending: Mutex<HashMap<u64, mpsc::SyncSender<Answer>>>,
    /// Set when the server killed it on purpose (a timeout, shutdown): no crash receipt.
    killed: Mutex<Option<String>>,
    gone: AtomicBool,
    started: Instant,
    deaths_before: u32,
}

impl ChildProcess {
    /// Starts the process and loads the plugin in it; an error names why it could not.
    pub(crate) fn start(
        meta: Arc<PluginMeta>,
        command: PluginHostCommand,
        request: &LoadRequest,
        load_timeout: Duration,
        services: Arc<dyn HostServices>,
        serve: Arc<ServeHostCall>,
    ) -> Result<Arc<ChildProcess>, String> {
        let request = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let process = Arc::new_cyclic(|me| ChildProcess {
            meta,
            command,
            request,
            load_timeout,
            services,
            serve,
            state: Mutex::new(State::Stopped),
            me: me.clone(),
        });
        let live = process.spawn(0)?;
        *lock(&process.state) = State::Running(live);
        Ok(process)
    }

    fn spawn(&self, deaths_before: u32) -> Result<Arc<Live>, String> {
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .env_clear()
            // The server's allocator reserves address space in 1 GiB arenas by default, which
            // alone would spend the process's address-space limit.
            .env("MIMALLOC_ARENA_RESERVE", "64MiB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "could not start the plugin's process ({}): {e}",
                    self.command.program.display()
                )
            })?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the plugin's process has no standard streams".into());
        };
        let live = Arc::new(Live {
            pid,
            child: Mutex::new(child),
            writer: Mutex::new(BufWriter::new(stdin)),
            pending: Mutex::new(HashMap::new()),
            killed: Mutex::new(None),
            gone: AtomicBool::new(false),
            started: Instant::now(),
            deaths_before,
        });
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        self.copy_stderr(stderr, tail.clone());
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<String, String>>(1);
        let (me, reader_live) = (self.me.clone(), live.clone());
        let started = std::thread::Builder::new()
            .name("nitejar-plugin-process".into())
            .spawn(move || read_frames(me, reader_live, stdout, ready_tx));
        if let Err(e) = started {
            live.kill("could not start its reader");
            return Err(format!(
                "could not start a thread for the plugin's process: {e}"
            ));
        }
        let loaded = frame::write(
            &mut *lock(&live.writer),
            Kind::Load,
            0,
            0,
            "",
            &self.request,
        )
        .map_err(|e| format!("the plugin's process did not take its load request: {e}"))
        .and_then(|()| match ready_rx.recv_timeout(self.load_timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "its process did not finish loading within {} ms (NITEJAR_PLUGIN_LOAD_TIMEOUT_MS); it was stopped",
                self.load_timeout.as_millis()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err("its process ended while loading".into())
            }
        });
        match loaded {
            Ok(applied) => {
                tracing::info!(
                    plugin.id = %self.meta.id,
                    plugin.version = %self.meta.version,
                    pid,
                    "plugin process started; kernel controls: {applied}"
                );
                Ok(live)
            }
            Err(reason) => {
                live.kill(&reason);
                // The exit status and the last lines it wrote say more than "it ended".
                let status = lock(&live.child).wait().ok().map(|s| describe_exit(&s));
                std::thread::sleep(Duration::from_millis(20));
                let lines: Vec<String> = lock(&tail).iter().cloned().collect();
                let mut message = reason;
                if let Some(status) = status.filter(|_| !message.contains("within")) {
                    message.push_str(&format!(" ({status})"));
                }
                if !lines.is_empty() {
                    message.push_str(&format!("; it wrote: {}", lines.join(" | ")));
                }
                Err(message)
            }
        }
    }

    /// Copies the process's standard error to the plugin's log, keeping the last lines.
    fn copy_stderr(&self, stderr: std::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
        let (meta, services) = (self.meta.clone(), self.services.clone());
        let _ = std::thread::Builder::new()
            .name("nitejar-plugin-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    {
                        let mut tail = lock(&tail);
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line.clone());
                    }
                    services.log(&meta, LogLevel::Warn, &format!("[stderr] {line}"));
                }
            });
    }

    /// The running process, started again if it died and its back-off is over.
    fn live(&self) -> Result<Arc<Live>, String> {
        let mut state = lock(&self.state);
        match &*state {
            State::Running(live) if !live.gone.load(Ordering::Acquire) => Ok(live.clone()),
            State::Running(live) => {
                // Died, and the reader has not said so yet.
                let deaths = live.deaths_before + 1;
                *state = State::Down {
                    since: Instant::now(),
                    reason: "it ended".into(),
                    deaths,
                };
                Err("the plugin's process ended; it is started again shortly".into())
            }
            State::Down {
                since,
                reason,
                deaths,
            } => {
                let wait = backoff(*deaths);
                let left = wait.saturating_sub(since.elapsed());
                if !left.is_zero() {
                    return Err(format!(
                        "the plugin's process {reason}; it is started again in {} ms",
                        left.as_millis()
                    ));
                }
                let deaths = *deaths;
                drop(state);
                let live = self.spawn(deaths)?;
                let mut state = lock(&self.state);
                if matches!(*state, State::Stopped) {
                    live.kill("the plugin was stopped");
                    return Err("the plugin was stopped".into());
                }
                *state = State::Running(live.clone());
                Ok(live)
            }
            State::Stopped => Err("the plugin was stopped".into()),
        }
    }

    /// Calls `method` as call `id`, waiting at most `wait` (plus [`GRACE`]).
    pub(crate) fn call(
        &self,
        id: u64,
        method: &str,
        payload: &str,
        remaining_ms: u64,
        wait: Option<Duration>,
    ) -> Result<String, PluginError> {
        let live = self
            .live()
            .map_err(|e| PluginError::new(PluginError::FAILED, e))?;
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&live.pending).insert(id, tx);
        let sent = frame::write(
            &mut *lock(&live.writer),
            Kind::Call,
            id,
            remaining_ms,
            method,
            payload.as_bytes(),
        );
        if let Err(e) = sent {
            lock(&live.pending).remove(&id);
            return Err(PluginError::new(
                PluginError::FAILED,
                format!("the plugin's process is gone: {e}"),
            ));
        }
        // Most answers come within microseconds: catch them without going to sleep.
        let mut early = None;
        crate::host::executor::poll_until(Instant::now() + ANSWER_SPIN, || match rx.try_recv() {
            Ok(answer) => {
                early = Some(answer);
                true
            }
            Err(mpsc::TryRecvError::Empty) => false,
            Err(mpsc::TryRecvError::Disconnected) => true,
        });
        let answer = match (early, wait) {
            (Some(answer), _) => Ok(answer),
            (None, Some(wait)) => rx.recv_timeout(wait + GRACE),
            (None, None) => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match answer {
            Ok(Answer::Ok(text)) => Ok(text),
            Ok(Answer::Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                lock(&live.pending).remove(&id);
                let ms = wait.unwrap_or_default().as_millis();
                let reason = format!("`{method}` did not answer within {ms} ms");
                live.kill(&reason);
                Err(PluginError::new(
                    PluginError::FAILED,
                    format!("{reason}; the plugin's process was stopped (its threads and processor time are back) and is started again for the next call"),
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(PluginError::new(
                PluginError::FAILED,
                "the plugin's process ended during the call".to_string(),
            )),
        }
    }

    /// Stops the process for good (the plugin instance is dropped).
    pub(crate) fn stop(&self) {
        let previous = std::mem::replace(&mut *lock(&self.state), State::Stopped);
        if let State::Running(live) = previous {
            live.kill("the plugin was stopped");
        }
    }

    /// The reader saw the process end.
    fn ended(&self, live: &Arc<Live>, status: Option<std::process::ExitStatus>) {
        let reason = status
            .as_ref()
            .map(describe_exit)
            .unwrap_or_else(|| "ended".into());
        let killed = lock(&live.killed).clone();
        let lost: Vec<_> = lock(&live.pending).drain().collect();
        let message = match &killed {
            Some(why) => format!("the plugin's process was stopped: {why}"),
            None => format!("the plugin's process {reason}"),
        };
        for (_, tx) in &lost {
            let _ = tx.send(Answer::Err(PluginError::new(
                PluginError::FAILED,
                message.clone(),
            )));
        }
        let deaths = live.deaths_before + 1;
        {
            let mut state = lock(&self.state);
            let current = matches!(&*state, State::Running(l) if Arc::ptr_eq(l, live));
            if current {
                // A process that ran a good while before dying starts a fresh back-off.
                let deaths = if live.started.elapsed() > MAX_BACKOFF * 2 {
                    1
                } else {
                    deaths
                };
                *state = State::Down {
                    since: Instant::now(),
                    reason: match &killed {
                        Some(why) => format!("was stopped ({why})"),
                        None => reason.clone(),
                    },
                    deaths,
                };
            }
        }
        if killed.is_some() {
            return;
        }
        tracing::error!(
            plugin.id = %self.meta.id,
            plugin.version = %self.meta.version,
            pid = live.pid,
            "{message}; {} call(s) were in flight",
            lost.len()
        );
        let (signal, code) = exit_parts(status.as_ref());
        let receipt = Receipt::new(
            self.meta.id.clone(),
            Some(self.meta.version.clone()),
            ReceiptKind::Crashed,
            ReceiptStatus::Error,
        )
        .with_execution_mode(ExecutionMode::Isolated)
        .with_detail(json!({
            "error": message,
            "pid": live.pid,
            "signal": signal,
            "exitCode": code,
            "callsInFlight": lost.len(),
            "restartBackoffMs": backoff(deaths).as_millis() as u64,
        }));
        self.services.receipt(receipt);
    }
}

impl Live {
    fn kill(&self, why: &str) {
        lock(&self.killed).get_or_insert_with(|| why.to_string());
        let _ = lock(&self.child).kill();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn backoff(deaths: u32) -> Duration {
    let factor = 1u32 << deaths.saturating_sub(1).min(10);
    (FIRST_BACKOFF * factor).min(MAX_BACKOFF)
}

/// Reads the process's frames until it ends.
fn read_frames(
    process: Weak<ChildProcess>,
    live: Arc<Live>,
    stdout: std::process::ChildStdout,
    ready: mpsc::SyncSender<Result<String, String>>,
) {
    let mut input = BufReader::new(stdout);
    let mut ready = Some(ready);
    loop {
        let mut frame = match frame::read(&mut input) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                live.kill(&format!("it wrote an unreadable frame: {e}"));
                break;
            }
        };
        match frame.kind {
            Kind::Ready => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(frame.into_text()));
                }
            }
            Kind::LoadFailed => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(frame.into_text()));
                }
            }
            Kind::ReplyOk | Kind::ReplyErr => {
                let waiting = lock(&live.pending).remove(&frame.id);
                if let Some(tx) = waiting {
                    let answer = if frame.kind == Kind::ReplyOk {
                        Answer::Ok(frame.into_text())
                    } else {
                        let kind = std::mem::take(&mut frame.method);
                        Answer::Err(PluginError::new(&kind, frame.into_text()))
                    };
                    let _ = tx.send(answer);
                }
            }
            Kind::HostCall => {
                let Some(process) = process.upgrade() else {
                    break;
                };
                let live = live.clone();
                // Host calls block on I/O: each on a thread of its own.
                let _ = std::thread::Builder::new()
                    .name("nitejar-plugin-host-call".into())
                    .spawn(move || {
                        let (id, aux) = (frame.id, frame.aux);
                        let method = std::mem::take(&mut frame.method);
                        let payload = frame.into_text();
                        let (kind, body) = match (process.serve)(aux, &method, &payload) {
                            Ok(text) => (Kind::HostOk, text),
                            Err(e) => (
                                Kind::HostErr,
                                serde_json::to_string(&e).unwrap_or_else(|_| e.to_string()),
                            ),
                        };
                        let _ = frame::write(
                            &mut *lock(&live.writer),
                            kind,
                            id,
                            0,
                            "",
                            body.as_bytes(),
                        );
                    });
            }
            Kind::Log => {
                if let Some(process) = process.upgrade() {
                    let level = level_from_u8(u8::try_from(frame.aux).unwrap_or(u8::MAX));
                    let target = std::mem::take(&mut frame.method);
                    let text = frame.into_text();
                    let message = if target.is_empty() {
                        text
                    } else {
                        format!("[{target}] {text}")
                    };
                    process.services.log(&process.meta, level, &message);
                }
            }
            _ => {}
        }
    }
    live.gone.store(true, Ordering::Release);
    let status = lock(&live.child).wait().ok();
    if let Some(ready) = ready.take() {
        let why = status.as_ref().map(describe_exit).unwrap_or_default();
        let _ = ready.send(Err(format!("its process ended while loading ({why})")));
        return;
    }
    if let Some(process) = process.upgrade() {
        process.ended(&live, status);
    }
}

/// "was killed by SIGSEGV", "exited with code 3".
pub(crate) fn describe_exit(status: &std::process::ExitStatus) -> String {
    match exit_parts(Some(status)) {
        (Some(signal), _) => format!("was killed by {signal}{}", signal_hint(&signal)),
        (None, Some(code)) => format!("exited with code {code}"),
        _ => "ended".into(),
    }
}

fn signal_hint(signal: &str) -> &'static str {
    match signal {
        "SIGXCPU" => " (its processor-time limit)",
        "SIGSEGV" | "SIGBUS" => " (a memory fault in its code)",
        "SIGABRT" => " (it aborted, e.g. out of memory under its limit, or a failed assertion)",
        "SIGSYS" => " (a system call its sandbox refuses)",
        _ => "",
    }
}

fn exit_parts(status: Option<&std::process::ExitStatus>) -> (Option<String>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return (None, None);
    };
    let name = |n: i32| match n {
        4 => "SIGILL".to_string(),
        6 => "SIGABRT".into(),
        7 => "SIGBUS".into(),
        8 => "SIGFPE".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        15 => "SIGTERM".into(),
        24 => "SIGXCPU".into(),
        31 => "SIGSYS".into(),
        n => format!("signal {n}"),
    };
    (status.signal().map(name), status.code())
}
