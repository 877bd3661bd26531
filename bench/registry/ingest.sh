#!/usr/bin/env bash
# Ingest throughput (issue 8): MODELS small safetensors models pushed to an API-only
# `pedigree serve --workers 0`, ingested by 1 and then by 3 `pedigree worker` processes taking
# jobs from the same queue. Every model is queued first; reported: models/s from the workers'
# start (process start-up included) to the last decision, the median of RUNS runs per count.
#
# Env: PEDIGREE (default ./target/release/pedigree), SKIP_BUILD=1, MODELS (24), MB (4, per
#      model), RUNS (3), DATABASE_URL / BLOB_STORE (default: SQLite + local blobs),
#      WORK (bench/registry/work/ingest)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS:-24}; MB=${MB:-4}; RUNS=${RUNS:-3}
WORK=${WORK:-bench/registry/work/ingest}; PEDIGREE=${PEDIGREE:-./target/release/pedigree}
if [ -z "${SKIP_BUILD:-}" ]; then cargo build --release -p pedigree-cli; fi
mkdir -p "$WORK"

# Distinct models (their own random weights, so lineage links none of them), made once.
python3 - "$WORK/models" "$MODELS" "$MB" <<'EOF'
import json, os, random, struct, sys
root, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = mb * 1024 * 1024 // (4 * 256)
for i in range(n):
    d = os.path.join(root, f"m{i:03d}")
    if os.path.exists(os.path.join(d, "model.safetensors")):
        continue
    os.makedirs(d, exist_ok=True)
    rng = random.Random(i)
    data = struct.pack(f"<{rows * 256}f", *(rng.gauss(0, 0.02) for _ in range(rows * 256)))
    header = json.dumps({"w": {"dtype": "F32", "shape": [rows, 256], "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write(f"---\nlicense: apache-2.0\ndatasets:\n- bench/data\n---\n# bench model {i}\n\nIngest bench.\n")
EOF

extra=()
[ -n "${DATABASE_URL:-}" ] && extra+=(--database-url "$DATABASE_URL")
[ -n "${BLOB_STORE:-}" ] && extra+=(--blob-store "$BLOB_STORE")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

run_once() { # WORKERS -> seconds
  local w=$1 data="$WORK/data-$1" log="$WORK/serve-$1.log"
  rm -rf "$data"
  "$PEDIGREE" serve --data-dir "$data" --listen 127.0.0.1:0 --workers 0 "${extra[@]}" > "$log" 2>&1 &
  local api=$!; pids+=($api)
  for _ in $(seq 300); do grep -q "listening on" "$log" && break; sleep 0.1; done
  local url token; url=$(sed -n 's/.*listening on //p' "$log" | head -1)
  token=$(sed -n 's/.*stored only as a hash): //p' "$log")
  for i in $(seq 0 $((MODELS - 1))); do   # everything queued first: workers alone are timed
    PEDIGREE_TOKEN=$token "$PEDIGREE" push "$WORK/models/m$(printf %03d "$i")" "bench/m$i:1.0" \
      --server "$url" > /dev/null
  done
  local ws=() t0; t0=$(date +%s.%N)
  for i in $(seq "$w"); do
    "$PEDIGREE" worker --data-dir "$data" --workers 1 "${extra[@]}" > "$WORK/worker-$w-$i.log" 2>&1 &
    ws+=($!); pids+=($!)
  done
  # Every decision, from the job counts (one cheap request every 20 ms).
  until curl -s -H "Authorization: Bearer $token" "$url/v1/jobs" \
      | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"]; sys.exit(j.get("done",0)+j.get("failed",0) < int(sys.argv[1]))' "$MODELS"; do
    sleep 0.02
  done
  local t1; t1=$(date +%s.%N)
  kill "$api" "${ws[@]}" 2>/dev/null || true; wait "$api" "${ws[@]}" 2>/dev/null || true
  echo "$t1 - $t0" | bc
}

echo "== ingest: $MODELS models of $MB MiB, API-only server + N workers"
for w in 1 3; do
  ts=()
  for r in $(seq "$RUNS"); do ts+=("$(run_once "$w")"); echo "workers=$w run $r: ${ts[-1]} s"; done
  m=$(med "${ts[@]}")
  printf 'workers=%d: %.2f s for %d models = %.2f models/s (median of %d)\n' "$w" "$m" "$MODELS" \
    "$(echo "$MODELS / $m" | bc -l)" "$RUNS"
done
