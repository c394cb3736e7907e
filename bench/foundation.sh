#!/usr/bin/env bash
# Foundation benchmark (issue 2): start-to-ready, idle resident memory, and GraphQL `viewer`
# throughput and latency over loopback with wrk. Prints the figures; record them in
# BENCHMARKS.md. Usage: bench/foundation.sh [sqlite|postgres] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-sqlite}
seconds=${2:-20}
connections=${3:-32}
threads=${WRK_THREADS:-1}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
cargo build --release --locked --quiet
bin=$PWD/target/release/warden

work=$(mktemp -d)
pg_db=""
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "$pg_db" ] && psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
printf '%s\n' "$(openssl rand -hex 32)" > "$work/kek"
printf 'kek_file = "%s"\n[limits]\nper_source_rps = 0\nper_token_rps = 0\n' "$work/kek" > "$work/warden.toml"
db_args=()
if [ "$backend" = postgres ]; then
  pg_db="warden_bench_$$"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pg_db"
  db_args=(--database-url "postgres://postgres@127.0.0.1:5432/$pg_db")
fi

start_server() {
  "$bin" server --config "$work/warden.toml" --data-dir "$work/data" --listen "127.0.0.1:$port" \
    "${db_args[@]}" > "$work/stdout" 2> "$work/server.log" &
  pid=$!
}

wait_ready() {
  until curl -fs "http://127.0.0.1:$port/healthz" > /dev/null; do sleep 0.002; done
}

now_ms() { date +%s%3N; }

echo "== Warden foundation benchmark: backend=$backend, $(nproc) cores, $(uname -r)"

# Start to ready: process start until /healthz answers 200 (database checked), 10 starts.
times=()
for i in $(seq 1 10); do
  t0=$(now_ms); start_server; wait_ready; t1=$(now_ms)
  times+=($((t1 - t0)))
  kill "$pid"; wait "$pid" 2>/dev/null || true; unset pid
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "start to ready (ms, 10 starts, first one migrates): $(echo "$sorted" | tr '\n' ' ')"
echo "start to ready median: $(echo "$sorted" | sed -n 5p) ms, max: $(echo "$sorted" | tail -1) ms"

start_server; wait_ready
sleep 2
echo "idle resident memory: $(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' /proc/$pid/status)"

token=$("$bin" admin --data-dir "$work/data" token create --name bench --role member --ttl 1h 2>/dev/null)
cat > "$work/viewer.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"query":"{ viewer { kind name role } }"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
# Check one request works before measuring.
curl -fs -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"query":"{ viewer { kind name role } }"}' "http://127.0.0.1:$port/graphql" > /dev/null

wrk -t1 -c4 -d2s -s "$work/viewer.lua" "http://127.0.0.1:$port/graphql" > /dev/null  # warm up
echo "GraphQL viewer, wrk -t$threads -c$connections -d${seconds}s:"
wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/viewer.lua" \
  "http://127.0.0.1:$port/graphql" | tee "$work/wrk.out" | grep -E 'Requests/sec|Latency  |50%|90%|99%|requests in|Non-2xx'
echo "resident memory after load: $(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' /proc/$pid/status)"
non2xx=$(grep -c 'Non-2xx' "$work/wrk.out" || true)
[ "$non2xx" = 0 ] || { echo "some requests failed"; exit 1; }
