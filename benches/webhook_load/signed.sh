#!/usr/bin/env bash
# Accepted webhooks per second through a third-party plugin: `examples/signed-webhook` (HMAC-SHA256
# checked by the plugin's own code on every delivery), in the server's process or isolated in a
# process of its own, measured with wrk on loopback against a release build, SQLite.
#
#   benches/webhook_load/signed.sh in_process|isolated [seconds] [connections]
#
# Every request is a distinct signed delivery (its own id, so its own work item); signatures are
# computed before wrk starts (wrk's Lua has no HMAC). "accepted" means what run.sh means: stored
# with its queued run and its receipt before the answer.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?in_process or isolated}; secs=${2:-10}; conns=${3:-32}
case "$mode" in in_process|isolated) ;; *) echo "the mode is in_process or isolated, not $mode"; exit 1;; esac
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
bin=${NITEJAR_BIN:-}
if [ -z "$bin" ]; then cargo build --release -q -p nitejar-server; bin=./target/release/nitejar; fi
data=$(mktemp -d); port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=bench-admin-token-0123456789
export ENCRYPTION_KEY=$(python3 -c 'import os; print(os.urandom(32).hex())') NITEJAR_DATA_DIR="$data" \
  NITEJAR_PLUGIN_TRUST_MODE=self_host_open NITEJAR_PLUGIN_EXECUTION="$mode" NITEJAR_ADMIN_TOKEN=$token \
  NITEJAR_EGRESS_ALLOW_PRIVATE=127.0.0.0/8
trap 'kill $pid $sink_pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
pid=; sink_pid=
# The answers go to a local callback (this machine may have no way out): the package's declared
# host becomes that address.
sink=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$sink" >/dev/null 2>&1 <<'PY' &
import http.server, sys
class Reply(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"id":"cb"}'
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Reply).serve_forever()
PY
sink_pid=$!
"$bin" plugin pack examples/signed-webhook --out "$data/signed-webhook.tgz" >/dev/null
mkdir "$data/package" && tar xzf "$data/signed-webhook.tgz" -C "$data/package"
python3 - "$data/package" "$sink" <<'PY'
import json, pathlib, sys
path = next(pathlib.Path(sys.argv[1]).rglob("nitejar.plugin.json"))
manifest = json.loads(path.read_text())
manifest["permissions"]["network"] = ["127.0.0.1:%s" % sys.argv[2]]
path.write_text(json.dumps(manifest))
PY
"$bin" plugin install "$(dirname "$(find "$data/package" -name nitejar.plugin.json)")" >/dev/null
"$bin" plugin enable dev.nitejar.examples.signed-webhook --accept-consent --ack-all >/dev/null
PORT=$port NITEJAR_BIND=127.0.0.1 RUST_LOG=warn "$bin" serve 2>"$data/server.log" &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
id=$(curl -sf -X POST "http://127.0.0.1:$port/api/admin/integrations" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d '{"type":"signed-webhook","name":"load","config":{"secret":"whsec-load","callbackUrl":"http://127.0.0.1:'"$sink"'/responses"}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["integration"]["id"])')
# Enough signed deliveries for every request wrk can send in the time (each thread takes its own).
python3 - "$data/deliveries.txt" "$((secs * 40000))" <<'PY'
import hashlib, hmac, sys
path, count = sys.argv[1], int(sys.argv[2])
with open(path, "w") as out:
    for n in range(count):
        body = '{"id":"evt-%d","text":"load %d","conversation":"c%d"}' % (n, n, n % 64)
        sig = hmac.new(b"whsec-load", body.encode(), hashlib.sha256).hexdigest()
        out.write("sha256=%s\t%s\n" % (sig, body))
PY
cat > "$data/signed.lua" <<LUA
deliveries = {}
for line in io.lines("$data/deliveries.txt") do
  local tab = string.find(line, "\t", 1, true)
  table.insert(deliveries, { string.sub(line, tab + 1), string.sub(line, 1, tab - 1) })
end
local thread_id, threads = 0, {}
function setup(thread)
  thread:set("tid", thread_id); thread_id = thread_id + 1; table.insert(threads, thread)
end
function init(args)
  wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"
  accepted, other, next_one = 0, 0, tid + 1
end
function request()
  local d = deliveries[next_one]
  next_one = next_one + 2 -- two wrk threads, each its own half
  wrk.headers["x-signature-256"] = d[2]
  return wrk.format(nil, nil, nil, d[1])
end
function response(status, headers, body)
  if status == 200 and string.find(body, '"accepted"', 1, true) then accepted = accepted + 1 else other = other + 1; if other == 1 then io.stderr:write(status .. " " .. body .. "\n") end end
end
function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("accepted: %d, not accepted: %d\n", a, o))
  io.write(string.format("accepted per second: %.0f\n", a / (summary.duration / 1e6)))
end
LUA
# One delivery first, by hand (it is not counted): the run is meaningless unless it is accepted.
probe=$(python3 - <<'PY'
import hashlib, hmac
body = '{"id":"evt-probe","text":"probe","conversation":"probe"}'
print("sha256=" + hmac.new(b"whsec-load", body.encode(), hashlib.sha256).hexdigest())
print(body)
PY
)
answer=$(curl -s -X POST "http://127.0.0.1:$port/api/webhooks/plugins/signed-webhook/$id" \
  -H 'content-type: application/json' -H "x-signature-256: $(sed -n 1p <<<"$probe")" -d "$(sed -n 2p <<<"$probe")")
case "$answer" in *'"accepted"'*) ;; *) echo "a signed delivery was not accepted: $answer"; exit 1;; esac
wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$data/signed.lua" \
  "http://127.0.0.1:$port/api/webhooks/plugins/signed-webhook/$id"
sleep 1
python3 - "$data/nitejar.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print("work items stored:", c.execute("select count(*) from work_items").fetchone()[0])
PY
grep -E "WARN|ERROR" "$data/server.log" | grep -v "goes back to the queue" | cut -c1-300 | head -8
echo "plugin processes started: $(grep -c 'plugin process started' "$data/server.log" || true)"
