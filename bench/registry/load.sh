#!/usr/bin/env bash
# HTTP load on loopback (issue 8): sustained requests per second and p99 latency of the two
# requests consumers make most — a version's status and a file download — against one and then
# two `pedigree serve` API processes sharing one metadata store and one blob store.
#
# The load generator is wrk (Debian package `wrk`): one wrk per API process, run at the same
# time, each with half the connections; requests/s are summed and the worse p99 is reported.
# Every figure is the median of RUNS runs.
#
# Env: PEDIGREE (binary, default ./target/release/pedigree), SKIP_BUILD=1, RUNS (3),
#      DURATION (10s), CONNS (32, in all), THREADS (2, in all),
#      DATABASE_URL (default: SQLite under the data dir), BLOB_STORE (default: local blobs),
#      WORK (bench/registry/work/load)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}; DURATION=${DURATION:-10s}; CONNS=${CONNS:-32}; THREADS=${THREADS:-2}
WORK=${WORK:-bench/registry/work/load}; PEDIGREE=${PEDIGREE:-./target/release/pedigree}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
if [ -z "${SKIP_BUILD:-}" ]; then cargo build --release -p pedigree-cli; fi

rm -rf "$WORK"; mkdir -p "$WORK/model"
DATA="$WORK/data"
extra=()
[ -n "${DATABASE_URL:-}" ] && extra+=(--database-url "$DATABASE_URL")
[ -n "${BLOB_STORE:-}" ] && extra+=(--blob-store "$BLOB_STORE")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start_api LOG [serve args...] -> prints the URL once it listens
start_api() {
  local log=$1; shift
  "$PEDIGREE" serve --data-dir "$DATA" --listen 127.0.0.1:0 "${extra[@]}" "$@" > "$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q "listening on" "$log" && break; sleep 0.1; done
  sed -n 's/.*listening on //p' "$log" | head -1
}

URL1=$(start_api "$WORK/serve1.log")
[ -n "$URL1" ] || { cat "$WORK/serve1.log"; exit 1; }
TOKEN=$(sed -n 's/.*stored only as a hash): //p' "$WORK/serve1.log")
[ -n "$TOKEN" ] || { echo "no admin token in $WORK/serve1.log (reused data dir?)" >&2; exit 1; }
export PEDIGREE_TOKEN=$TOKEN

# The real small model shipped with the examples, with a card, pushed and approved.
cp examples/clean/akiki-vad.pt "$WORK/model/"
printf -- '---\nlicense: mit\n---\n# bench/vad\nVoice activity detector, bench copy.\n' > "$WORK/model/README.md"
"$PEDIGREE" push "$WORK/model" bench/vad:1.0 --server "$URL1" --wait >/dev/null || true
state=$("$PEDIGREE" status bench/vad:1.0 --server "$URL1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
if [ "$state" != approved ]; then
  "$PEDIGREE" approve bench/vad:1.0 --server "$URL1" --reason "load bench" >/dev/null
fi
SIZE=$(stat -c %s examples/clean/akiki-vad.pt)

med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# wrk's latency line "99%   12.34ms" -> milliseconds
p99_ms() { awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' "$1"; }
rps() { awk '/^Requests\/sec:/{print $2}' "$1"; }
non2xx() { awk '/Non-2xx or 3xx responses:/{print $5}' "$1"; }

# load NAME PATH URL... : RUNS runs, one wrk per URL concurrently
load() {
  local name=$1 path=$2; shift 2
  local urls=("$@") n=$# r=() p=()
  local c=$((CONNS / n)) t=$((THREADS / n)); [ "$t" -ge 1 ] || t=1
  for i in $(seq "$RUNS"); do
    local outs=() wrks=()
    for j in $(seq 0 $((n - 1))); do
      out="$WORK/wrk-$name-$n-$i-$j.txt"; outs+=("$out")
      wrk -t"$t" -c"$c" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" \
        "${urls[$j]}$path" > "$out" &
      wrks+=($!)
    done
    wait "${wrks[@]}"
    local sum=0 worst=0
    for out in "${outs[@]}"; do
      bad=$(non2xx "$out"); [ -z "$bad" ] || { echo "non-2xx answers in $out: $bad" >&2; exit 1; }
      sum=$(echo "$sum + $(rps "$out")" | bc)
      worst=$(echo "$(p99_ms "$out") $worst" | awk '{print ($1>$2)?$1:$2}')
    done
    r+=("$sum"); p+=("$worst")
  done
  printf '%-9s %d API process(es): %10.0f req/s   p99 %8.2f ms   (median of %d runs of %s, %d connections)\n' \
    "$name" "$n" "$(med "${r[@]}")" "$(med "${p[@]}")" "$RUNS" "$DURATION" "$CONNS"
}

STATUS=/v1/models/bench/vad/versions/1.0
FILE=/v1/models/bench/vad/versions/1.0/files/akiki-vad.pt
echo "== loopback load with wrk: status, and download of a ${SIZE}-byte file"
load status "$STATUS" "$URL1"
load download "$FILE" "$URL1"

# A second, stateless API process on the same stores (no ingest workers of its own where the
# binary supports --workers 0).
if "$PEDIGREE" serve --help | grep -q -- '--workers'; then w=(--workers 0); else w=(); fi
URL2=$(start_api "$WORK/serve2.log" "${w[@]}")
[ -n "$URL2" ] || { cat "$WORK/serve2.log"; exit 1; }
load status "$STATUS" "$URL1" "$URL2"
load download "$FILE" "$URL1" "$URL2"
echo "(2 cores: wrk and the servers share them, so a second process on this machine measures"
echo " contention as much as scale-out)"
