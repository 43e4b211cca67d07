#!/usr/bin/env bash
# Accepted webhooks per second on SQLite, with receipts and idempotency keys persisted, measured with
# wrk on loopback against a release build. Every request is a distinct delivery to the built-in echo
# integration, so each one creates a work item (and its run goes on in the background).
#
#   benches/webhook_load/run.sh [seconds] [connections]
#
# NITEJAR_BIN=<path> measures another build (e.g. an earlier commit's) instead of building this one.
# "accepted" means stored with its queued run and its receipt; the runs go on after wrk stops.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}; conns=${2:-32}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
bin=${NITEJAR_BIN:-}
if [ -z "$bin" ]; then cargo build --release -q -p nitejar-server; bin=./target/release/nitejar; fi
data=$(mktemp -d); port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
ENCRYPTION_KEY=$(python3 -c 'import os; print(os.urandom(32).hex())') NITEJAR_DATA_DIR="$data" PORT=$port \
  NITEJAR_BIND=127.0.0.1 RUST_LOG=warn "$bin" serve 2>"$data/server.log" &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$data/nitejar.db" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1]); now = int(time.time())
c.execute("INSERT INTO integrations (id,type,name,config,scope,enabled,created_at,updated_at) VALUES ('load-echo','echo','load','{}','global',1,?,?)", (now, now))
c.commit()
PY
wrk -t2 -c"$conns" -d"${secs}s" --latency -s benches/webhook_load/unique_echo.lua \
  "http://127.0.0.1:$port/api/webhooks/plugins/echo/load-echo"
sleep 2
python3 - "$data/nitejar.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print("work items stored:", c.execute("select count(*) from work_items").fetchone()[0])
print("idempotency keys stored:", c.execute("select count(*) from idempotency_keys").fetchone()[0])
print("ingress receipts stored:", c.execute("select count(*) from plugin_events where kind='webhook_ingress'").fetchone()[0])
print("jobs completed so far:", c.execute("select count(*) from jobs where status='COMPLETED'").fetchone()[0])
if c.execute("select count(*) from sqlite_master where name='runs'").fetchone()[0]:
    print("runs still queued:", c.execute("select count(*) from runs").fetchone()[0])
PY
