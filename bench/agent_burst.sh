#!/usr/bin/env bash
# Whole-process burst through the live agent: `hubpulse run` follows FILE from its beginning;
# reports the time until every record is committed to the lake, lines/s and peak RSS.
#   HUBPULSE_BIN=target/release/hubpulse bash bench/agent_burst.sh /tmp/hpbench/hub-1g.log
set -euo pipefail
file="$1"
bin="${HUBPULSE_BIN:-target/release/hubpulse}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
lines=$(wc -l < "$file")
ln -s "$(realpath "$file")" "$work/hub.log"
start=$(date +%s.%N)
"$bin" run --lake "$work/lake" --follow "$work/hub.log" --http "127.0.0.1:$port" --flush-interval 1s &
pid=$!
metric() { curl -s "127.0.0.1:$port/metrics" | awk -v m="$1" '$1==m {print $2}'; }
until [ "$(metric hubpulse_lines_total || echo 0)" = "$lines" ] \
   && [ "$(metric hubpulse_lake_rows_published_total)" = "$(metric hubpulse_records_total)" ]; do
  sleep 0.2
done
end=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid
secs=$(echo "$end - $start" | bc -l)
printf 'lines=%s seconds=%.2f lines_per_sec=%.0f peak_rss_mib=%.0f\n' \
  "$lines" "$secs" "$(echo "$lines / $secs" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"
