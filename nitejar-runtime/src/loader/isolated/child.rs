//! The plugin's process: `nitejar __plugin-host`, one plugin version, serving the server's calls.
//!
//! It reads frames on standard input and writes them on what was standard output (the plugin's
//! own prints go to standard error, which the server copies to the plugin's log). It exits when
//! the server's end of the stream closes. It loads the library the first frame names (checking
//! its ABI and identity exactly as the server would), then runs each call on the thread that read
//! it (another thread reads meanwhile). A
//! plugin's host calls are frames to the server, which runs them through the permission gate with
//! the call's deadline and cancellation; the answer comes back on the same stream.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use nitejar_sdk::abi::{CallCtx, HostObject, HostObject_TO, PluginBox};
use nitejar_sdk::HostError;

use super::frame::{self, Kind};
use super::LoadRequest;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The stream to the server; one frame at a time.
struct Out(Mutex<BufWriter<File>>);

impl Out {
    fn send(&self, kind: Kind, id: u64, aux: u64, method: &str, payload: &[u8]) {
        if frame::write(&mut *lock(&self.0), kind, id, aux, method, payload).is_err() {
            // The server is gone: nothing left to do for it.
            std::process::exit(0);
        }
    }
}

/// Host calls waiting for the server's answer, and the calls the server gave up on.
#[derive(Default)]
struct Waiting {
    host_calls: Mutex<HashMap<u64, mpsc::Sender<Result<String, String>>>>,
    cancelled: Mutex<HashSet<u64>>,
}

struct ChildBridge {
    out: Arc<Out>,
    waiting: Arc<Waiting>,
    next: AtomicU64,
}

impl HostObject for ChildBridge {
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        self.out.send(
            Kind::Log,
            0,
            u64::from(level),
            target.as_str(),
            message.as_str().as_bytes(),
        );
    }

    fn is_cancelled(&self, call_id: u64) -> bool {
        lock(&self.waiting.cancelled).contains(&call_id)
    }

    fn host_call(
        &self,
        call_id: u64,
        method: RStr<'_>,
        payload_json: RStr<'_>,
    ) -> RResult<RString, RString> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        lock(&self.waiting.host_calls).insert(id, tx);
        self.out.send(
            Kind::HostCall,
            id,
            call_id,
            method.as_str(),
            payload_json.as_str().as_bytes(),
        );
        match rx.recv() {
            Ok(Ok(text)) => ROk(RString::from(text)),
            Ok(Err(error)) => RErr(RString::from(error)),
            Err(_) => RErr(RString::from(
                serde_json::to_string(&HostError::Cancelled).unwrap_or_default(),
            )),
        }
    }
}

/// The threads that read frames and run calls: whoever reads a call runs it at once (no hand-off
/// on the call's path), and makes sure another thread is reading meanwhile — host answers for the
/// running call must still be read. A thread that finishes its call goes back to reading.
struct Readers {
    input: Mutex<BufReader<File>>,
    /// Threads reading or waiting to read (not running a call).
    idle: AtomicUsize,
    plugin: PluginBox,
    out: Arc<Out>,
    waiting: Arc<Waiting>,
}

impl Readers {
    fn serve(self: &Arc<Self>) -> ! {
        loop {
            let frame = frame::read(&mut *lock(&self.input));
            let frame = match frame {
                Ok(Some(frame)) => frame,
                // The server closed the stream or is gone.
                Ok(None) | Err(_) => std::process::exit(0),
            };
            match frame.kind {
                Kind::Call => {
                    if self.idle.fetch_sub(1, Ordering::AcqRel) == 1 {
                        // This was the last reader: start another before running the call.
                        self.idle.fetch_add(1, Ordering::AcqRel);
                        let readers = self.clone();
                        std::thread::spawn(move || readers.serve());
                    }
                    self.call(frame);
                    self.idle.fetch_add(1, Ordering::AcqRel);
                }
                Kind::HostOk | Kind::HostErr => {
                    let waiting = lock(&self.waiting.host_calls).remove(&frame.id);
                    if let Some(tx) = waiting {
                        let ok = frame.kind == Kind::HostOk;
                        let text = frame.into_text();
                        let _ = tx.send(if ok { Ok(text) } else { Err(text) });
                    }
                }
                Kind::Cancel => {
                    lock(&self.waiting.cancelled).insert(frame.id);
                }
                _ => {}
            }
        }
    }

    fn call(&self, call: frame::Frame) {
        let ctx = CallCtx {
            call_id: call.id,
            remaining_ms: call.aux,
        };
        // The server sends its own strings: valid UTF-8, checked without a copy.
        let payload = match std::str::from_utf8(&call.payload) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&call.payload),
        };
        match self
            .plugin
            .call(RStr::from(call.method.as_str()), RStr::from(&*payload), ctx)
            .into_result()
        {
            Ok(text) => self
                .out
                .send(Kind::ReplyOk, call.id, 0, "", text.as_bytes()),
            Err(e) => self.out.send(
                Kind::ReplyErr,
                call.id,
                0,
                e.kind.as_str(),
                e.message.as_bytes(),
            ),
        }
    }
}

/// Runs the plugin host on this process's standard streams; returns the exit code.
pub fn run() -> i32 {
    let (input, output) = match take_streams() {
        Ok(streams) => streams,
        Err(e) => {
            eprintln!("nitejar plugin host: {e}");
            return 2;
        }
    };
    let mut input = BufReader::new(input);
    let out = Arc::new(Out(Mutex::new(BufWriter::new(output))));
    let request: LoadRequest = match frame::read(&mut input) {
        Ok(Some(f)) if f.kind == Kind::Load => match serde_json::from_slice(&f.payload) {
            Ok(request) => request,
            Err(e) => {
                out.send(
                    Kind::LoadFailed,
                    0,
                    0,
                    "",
                    format!("unreadable load request: {e}").as_bytes(),
                );
                return 2;
            }
        },
        _ => {
            eprintln!("nitejar plugin host: the first frame must be a load request");
            return 2;
        }
    };
    // The kernel's controls, before any of the plugin's code runs (and before this process has a
    // second thread, which `apply` requires).
    let applied = match confine(&request) {
        Ok(applied) => applied,
        Err(e) => {
            out.send(Kind::LoadFailed, 0, 0, "", e.as_bytes());
            return 3;
        }
    };
    let waiting = Arc::new(Waiting::default());
    let bridge = ChildBridge {
        out: out.clone(),
        waiting: waiting.clone(),
        next: AtomicU64::new(1),
    };
    let host = HostObject_TO::from_value(bridge, TD_Opaque);
    let plugin = match super::super::instantiate_in_child(&request, host) {
        Ok(plugin) => plugin,
        Err(e) => {
            out.send(Kind::LoadFailed, 0, 0, "", e.as_bytes());
            return 3;
        }
    };
    out.send(Kind::Ready, 0, 0, "", applied.as_bytes());
    let readers = Arc::new(Readers {
        input: Mutex::new(input),
        idle: AtomicUsize::new(1),
        plugin,
        out,
        waiting,
    });
    readers.serve()
}

/// Applies the sandbox of this plugin version; the report of what the kernel holds, as JSON.
fn confine(request: &LoadRequest) -> Result<String, String> {
    use crate::sandbox::{Sandbox, SandboxPolicy};
    let mut policy = SandboxPolicy::for_plugin(&request.dir, &request.data_dir)
        .map_err(|e| format!("could not prepare its sandbox: {e}"))?;
    policy.memory_bytes = request.limits.memory_mib.saturating_mul(1 << 20);
    policy.cpu_seconds = request.limits.cpu_seconds;
    let applied = Sandbox::apply(&policy, super::REQUIRED_CONTROLS).map_err(|e| {
        format!("it cannot run isolated on this system, its sandbox could not be applied: {e}")
    })?;
    Ok(serde_json::to_string(&applied).unwrap_or_default())
}

/// The protocol's streams: standard input, and standard output moved to a descriptor of its own
/// (standard output then writes to standard error, so a plugin's prints cannot corrupt a frame).
/// When the server dies its end of the streams closes, and this process exits (not the kernel's
/// parent-death signal: that follows the server's *thread* that started the process, and the
/// server's threads come and go).
fn take_streams() -> std::io::Result<(File, File)> {
    use std::os::fd::{AsFd, OwnedFd};
    let protocol: OwnedFd = rustix::io::dup(std::io::stdout().as_fd())?;
    rustix::stdio::dup2_stdout(std::io::stderr().as_fd())?;
    let input: OwnedFd = rustix::io::dup(std::io::stdin().as_fd())?;
    let _ = std::io::stdout().flush();
    Ok((File::from(input), File::from(protocol)))
}
