#!/usr/bin/env bash
# What a traced server pays, in requests per second against the same server untraced, in one
# run, rounds alternating: redis-server under redis-benchmark with 2 and 12 functions probed,
# nginx (a master and its worker) under ab with 22, each started by `spanprobe run -- SERVER`;
# and an untraced redis-server's throughput while `spanprobe run -- sleep` traces the same
# binary for its command only (the default) and in every process (`--attach multi`). Spans go
# to /dev/null by the stdout exporter: the cost measured is the traced process's and the
# machine's. Prints Markdown tables. Usage: scripts/bench-servers.sh SPANPROBE [ROUNDS]
set -euo pipefail
spanprobe=$(realpath "$1")
rounds=${2:-3}
work=$(mktemp -d)
port=7379
http_port=7380
cleanup() {
  pkill -f "redis-server 127.0.0.1:$port" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

redis_functions=(processCommand call lookupKeyRead lookupKeyWrite dbAdd setKey getCommand
  setCommand addReply readQueryFromClient processInputBuffer createStringObject)
nginx_functions=(ngx_http_parse_request_line ngx_http_parse_header_line ngx_http_process_request
  ngx_http_handler ngx_http_core_run_phases ngx_http_core_generic_phase
  ngx_http_core_find_config_phase ngx_http_core_content_phase ngx_http_send_header
  ngx_http_output_filter ngx_http_write_filter ngx_http_finalize_request ngx_http_free_request
  ngx_http_create_request ngx_http_send_response ngx_http_core_rewrite_phase
  ngx_http_core_post_rewrite_phase ngx_http_core_access_phase ngx_http_run_posted_requests
  ngx_http_init_connection ngx_http_map_uri_to_path ngx_http_update_location_config)

# config NAME BINARY FUNCTION...: a config probing the functions, spans to standard error;
# with NAME ending in -quiet, every call unsampled (the probes run, nothing is sent).
config() {
  local name=$1 binary=$2 extra=""
  shift 2
  [[ $name == *-quiet ]] && extra=", sample_rate: 0"
  {
    printf 'exporter:\n  stdout: {}\nprobes:\n  - binary: %s\n    functions:\n' "$binary"
    for f in "$@"; do printf '      - { symbol: %s%s }\n' "$f" "$extra"; done
  } > "$work/$name.yaml"
}
config redis2 /usr/bin/redis-server processCommand call
config redis12 /usr/bin/redis-server "${redis_functions[@]}"
config redis12-quiet /usr/bin/redis-server "${redis_functions[@]}"
config nginx22 /usr/sbin/nginx "${nginx_functions[@]}"

cat > "$work/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$http_port; location / { return 200 "ok\n"; } }
}
EOF

redis=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no)
nginx=(nginx -c "$work/nginx.conf" -e "$work/error.log")

# wait_for PROBE: waits up to 10 s for the command PROBE to succeed.
wait_for() {
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "not ready: $*" >&2
  return 1
}
redis_up() { wait_for redis-cli -p "$port" ping; }
nginx_up() { wait_for curl -sf "http://127.0.0.1:$http_port/"; }

# The mean of redis-benchmark's SET and GET requests per second.
redis_load() {
  redis-benchmark -p "$port" -t set,get -n 100000 -c 50 -q 2>/dev/null |
    tr '\r' '\n' | awk '/requests per second/ { sum += $2; n++ } END { printf "%.0f", sum / n }'
}
nginx_load() {
  ab -q -n 20000 -c 20 "http://127.0.0.1:$http_port/" 2>/dev/null |
    awk '/Requests per second/ { printf "%.0f", $4 }'
}

# server KIND CONFIG: starts the server of KIND (redis or nginx) under `spanprobe run` with
# CONFIG, or untraced for `-`, loads it, stops it; prints requests per second.
server() {
  local kind=$1 config=$2 command pid result
  if [ "$kind" = redis ]; then command=("${redis[@]}"); else command=("${nginx[@]}"); fi
  if [ "$config" = - ]; then
    "${command[@]}" >/dev/null 2>&1 &
  else
    "$spanprobe" run -c "$work/$config.yaml" -o /dev/null -- "${command[@]}" \
      >/dev/null 2>"$work/spanprobe.log" &
  fi
  pid=$!
  "${kind}_up"
  result=$("${kind}_load")
  kill -INT "$pid"
  wait "$pid" || true
  echo "$result"
}

# alongside ATTACH...: an untraced redis-server's requests per second while `spanprobe run
# ATTACH -- sleep` traces redis-server (empty ATTACH: no spanprobe at all).
alongside() {
  local pid tracer="" result
  "${redis[@]}" >/dev/null 2>&1 &
  pid=$!
  redis_up
  if [ $# -gt 0 ] && [ "$1" != none ]; then
    "$spanprobe" run -c "$work/redis12.yaml" -o /dev/null "$@" -- sleep 120 \
      >/dev/null 2>"$work/alongside.log" &
    tracer=$!
    wait_for grep -q attached "$work/alongside.log"
  fi
  result=$(redis_load)
  [ -n "$tracer" ] && { kill -INT "$tracer"; wait "$tracer" || true; }
  kill "$pid"
  wait "$pid" || true
  echo "$result"
}

declare -A sums
add() { sums[$1]=$(awk -v a="${sums[$1]:-0}" -v b="$2" 'BEGIN { print a + b }'); }
for _ in $(seq "$rounds"); do
  add redis "$(server redis -)"
  add redis2 "$(server redis redis2)"
  add redis12 "$(server redis redis12)"
  add redis12q "$(server redis redis12-quiet)"
  add nginx "$(server nginx -)"
  add nginx22 "$(server nginx nginx22)"
  add alone "$(alongside none)"
  add command "$(alongside)"
  add every "$(alongside --attach multi)"
done
mean() { awk -v s="${sums[$1]}" -v n="$rounds" 'BEGIN { printf "%.0f", s / n }'; }
ratio() { awk -v a="${sums[$1]}" -v b="${sums[$2]}" 'BEGIN { printf "%.2f", a / b }'; }

echo "| server | probed | requests/s untraced | requests/s traced | traced ÷ untraced |"
echo "|---|---|---|---|---|"
echo "| redis-server (\`redis-benchmark -t set,get -c 50\`) | 2 functions | $(mean redis) | $(mean redis2) | $(ratio redis2 redis) |"
echo "| redis-server | 12 functions | $(mean redis) | $(mean redis12) | $(ratio redis12 redis) |"
echo "| redis-server | 12 functions, \`sample_rate: 0\` (the probes run, nothing is sent) | $(mean redis) | $(mean redis12q) | $(ratio redis12q redis) |"
echo "| nginx, a master and one worker (\`ab -c 20\`) | 22 functions | $(mean nginx) | $(mean nginx22) | $(ratio nginx22 nginx) |"
echo
echo "| an untraced redis-server while \`spanprobe run -- sleep\` traces redis-server's 12 functions | requests/s | ÷ no spanprobe |"
echo "|---|---|---|"
echo "| no spanprobe | $(mean alone) | 1 |"
echo "| probes in the command's processes only (the default) | $(mean command) | $(ratio command alone) |"
echo "| probes in every process (\`--attach multi\`, as before) | $(mean every) | $(ratio every alone) |"
