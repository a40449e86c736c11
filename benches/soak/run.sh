#!/usr/bin/env bash
# The soak: smppd (release build) with smsc-sim on loopback, driven by `smppd load` at a fixed
# rate in batches of 200 over 8 connections, with the engine's memory (VmRSS) and its message
# states sampled every SOAK_EVERY seconds. Bounded: the load stops by itself after SOAK_SECS,
# the engine gets SOAK_DRAIN_SECS more to finish, then it is stopped by its process id.
#
#   benches/soak/run.sh                              # 20 000 messages/s for 10 minutes
#   SOAK_RATE=5000 SOAK_SECS=60 benches/soak/run.sh  # shorter, slower
#
# SOAK_EVERY (30) is the sampling period, SOAK_DRAIN_SECS (300) the most time given to finish
# after the load stops; SOAK_TO_INDEX=false sets `[store] index_destinations = false`;
# SOAK_KEEP=1 keeps the temporary data directory.
set -euo pipefail

rate=${SOAK_RATE:-20000}
secs=${SOAK_SECS:-600}
every=${SOAK_EVERY:-30}
drain=${SOAK_DRAIN_SECS:-300}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

cargo build --release --manifest-path "$root/Cargo.toml" -p smppd -p smsc-sim --bins
bin="$root/target/release/smppd"

work=$(mktemp -d)
cp "$here/config.toml" "$here/sim.toml" "$work/"
cd "$work"
if [ -n "${SOAK_TO_INDEX:-}" ]; then
    sed -i "s/^\[store\]\$/[store]\nindex_destinations = ${SOAK_TO_INDEX}/" config.toml
fi
"$bin" run --config config.toml 2>smppd.log &
pid=$!
stop() {
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # The data directory holds every message sent (gigabytes after a long run).
    if [ -z "${SOAK_KEEP:-}" ]; then
        rm -rf "$work"
    fi
}
trap stop EXIT

metric() { # the sum of a metric's samples whose line matches $1
    exec 3<>/dev/tcp/127.0.0.1/19090 || return 0
    printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
    awk -v m="$1" '$0 ~ m && $0 !~ /^#/ {s += $NF} END {printf "%d", s}' <&3
    exec 3<&-
}
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
sample() {
    printf '%6s s  RSS %5s MiB  accepted %9s  waiting %8s  submitted %8s  delivered %9s\n' \
        "$1" "$(rss_mib)" "$(metric '^smppd_messages_accepted_total')" \
        "$(metric '^smppd_messages\{state="(accepted|submitting|retrying)"')" \
        "$(metric '^smppd_messages\{state="submitted"')" \
        "$(metric '^smppd_messages\{state="delivered"')"
}

for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && [ "$(metric '^smppd_binds_up')" -ge 4 ]; then
        break
    fi
    sleep 0.2
done

echo "soak: ${rate} messages/s for ${secs} s; engine pid ${pid}; data in ${work}"
sample 0
"$bin" load --url http://127.0.0.1:18080 --key soak-key-123 --rate "$rate" --duration "${secs}s" \
    --batch 200 --concurrency 8 --track 2000 --settle 60s --quiet >load.txt 2>&1 &
load=$!
start=$SECONDS
while kill -0 "$load" 2>/dev/null; do
    sleep "$every"
    sample $((SECONDS - start))
done
wait "$load" || true
cat load.txt
# Let the pipeline finish what was accepted (bounded), then a last sample.
deadline=$((SECONDS + drain))
while [ "$SECONDS" -lt "$deadline" ] &&
      [ "$(metric '^smppd_messages\{state="(accepted|submitting|retrying|submitted)"')" -gt 0 ]; do
    sleep 5
done
sample $((SECONDS - start))
