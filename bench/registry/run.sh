#!/usr/bin/env bash
# Registry benchmarks (issue 7):
#  1. cascade on a synthetic registry the size of the Hugging Face model tree (1M versions, one
#     family of 100k descendants): affected set (target < 50 ms) and flag commit (target < 1 s)
#     on SQLite (and PostgreSQL with PG_URL), medians of RUNS runs;
#  2. upload throughput: one large blob PUT to a running `pedigree serve` on loopback (hashed,
#     fsynced, renamed into the store) against raw disk write of the same bytes with
#     `dd conv=fsync` (target >= 80%), medians of RUNS runs; then the same blob through the
#     resumable protocol in CHUNK_MB (32) MiB chunks, each fsynced before it is acknowledged.
#
# Env: MODELS (1000000), FAMILY (100000), RUNS (5), UPLOAD_MB (1024), WORK (bench/registry/work),
#      PEDIGREE (binary, default ./target/release/pedigree), SKIP_BUILD=1, ONLY=cascade|upload,
#      CHUNK_MB (32),
#      PG_URL (a PostgreSQL server, e.g. postgres://pedigree:pedigree@127.0.0.1:5432/postgres, as
#      `scripts/setup-postgres.sh` sets up): the cascade also runs on PostgreSQL (database
#      pdg_bench_<models>_<family> there, built once and reused) and both engines are reported
#      side by side.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS:-1000000}; FAMILY=${FAMILY:-100000}; RUNS=${RUNS:-5}; UPLOAD_MB=${UPLOAD_MB:-1024}
WORK=${WORK:-bench/registry/work}; PEDIGREE=${PEDIGREE:-./target/release/pedigree}
mkdir -p "$WORK"
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p pedigree-cli
  cargo build --release -p pedigree-registry --example registry_bench
fi
EX=$(dirname "$PEDIGREE")/examples/registry_bench

if [ "${ONLY:-cascade}" = cascade ] || [ -z "${ONLY:-}" ]; then
  echo "== cascade: $MODELS versions, family of $FAMILY (sqlite)"
  "$EX" "$WORK/cascade-$MODELS-$FAMILY" --models "$MODELS" --family "$FAMILY" --runs "$RUNS" \
    | tee "$WORK/cascade-sqlite.out"
  if [ -n "${PG_URL:-}" ]; then
    echo "== cascade: $MODELS versions, family of $FAMILY (postgres)"
    "$EX" "$WORK/cascade-$MODELS-$FAMILY-pg" --models "$MODELS" --family "$FAMILY" --runs "$RUNS" \
      --pg "$PG_URL" | tee "$WORK/cascade-postgres.out"
    echo "== cascade medians (ms) over $RUNS runs, $MODELS versions, family of $FAMILY"
    printf '%-9s %10s %14s %15s %12s %10s\n' engine "graph load" "affected set" "recursive SQL" "flag commit" withdraw
    for e in sqlite postgres; do
      grep '^RESULT ' "$WORK/cascade-$e.out" | tr ' ' '\n' | sed -n 's/^\([a-z]*\)=\(.*\)/\1 \2/p' \
        | awk -v e="$e" '{v[$1]=$2} END {printf "%-9s %10s %14s %15s %12s %10s\n", e, v["load"], v["affected"], v["sql"], v["commit"], v["withdraw"]}'
    done
    echo "targets: affected set < 50 ms, flag commit < 1000 ms"
  fi
fi

if [ "${ONLY:-upload}" = upload ] || [ -z "${ONLY:-}" ]; then
  echo "== upload: ${UPLOAD_MB} MiB blob, loopback PUT vs dd conv=fsync"
  DATA="$WORK/upload-data"; rm -rf "$DATA"; mkdir -p "$DATA"
  SRC="$WORK/upload.bin"
  [ -f "$SRC" ] && [ "$(stat -c %s "$SRC")" = $((UPLOAD_MB<<20)) ] || head -c $((UPLOAD_MB<<20)) /dev/urandom > "$SRC"
  "$PEDIGREE" serve --data-dir "$DATA" --listen 127.0.0.1:0 > "$WORK/serve.log" 2>&1 &
  PID=$!; trap 'kill $PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.log" && break; sleep 0.1; done
  URL=$(sed -n 's/.*listening on //p' "$WORK/serve.log"); TOKEN=$(sed -n 's/.*stored only as a hash): //p' "$WORK/serve.log")
  DIGEST=sha256:$(sha256sum "$SRC" | cut -d' ' -f1)
  cat "$SRC" > /dev/null   # both sides read from the page cache
  up=(); dd_=()
  for i in $(seq "$RUNS"); do
    rm -rf "$DATA/blobs/sha256"   # a fresh blob each run (the server skips nothing: PUT always writes)
    t0=$(date +%s.%N)
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
      -H 'Content-Type: application/octet-stream' -T "$SRC" "$URL/v1/blobs/$DIGEST")
    t1=$(date +%s.%N)
    [ "$code" = 201 ] || { echo "upload failed: HTTP $code"; exit 1; }
    up+=("$(echo "$t1 - $t0" | bc)")
    rm -f "$WORK/dd.out"; t0=$(date +%s.%N)
    dd if="$SRC" of="$WORK/dd.out" bs=8M conv=fsync status=none
    t1=$(date +%s.%N); dd_+=("$(echo "$t1 - $t0" | bc)")
    echo "run $i: upload ${up[-1]} s, dd ${dd_[-1]} s"
  done
  rm -f "$WORK/dd.out"
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
  mu=$(med "${up[@]}"); md=$(med "${dd_[@]}")
  echo "medians: upload $mu s ($(echo "$UPLOAD_MB / $mu" | bc) MiB/s), dd $md s ($(echo "$UPLOAD_MB / $md" | bc) MiB/s), ratio $(echo "scale=2; $md / $mu" | bc) (target >= 0.80)"

  # The resumable protocol: CHUNK_MB chunks (the client's default, 32), each acknowledged only
  # once fsynced, all over one keep-alive connection (curl --next), from pieces split
  # beforehand so the client only streams files. dd is timed again beside it.
  CHUNK_MB=${CHUNK_MB:-32}
  PIECES="$WORK/upload-pieces"; rm -rf "$PIECES"; mkdir -p "$PIECES"
  split -b "${CHUNK_MB}M" -d -a 5 "$SRC" "$PIECES/p"
  cat "$PIECES"/p* > /dev/null
  ch=(); dd2=()
  for i in $(seq "$RUNS"); do
    rm -rf "$DATA/blobs/sha256"
    t0=$(date +%s.%N)
    ID=$(curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      -d "{\"digest\": \"$DIGEST\", \"size\": $((UPLOAD_MB<<20))}" "$URL/v1/uploads" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
    [ -n "$ID" ] || { echo "starting an upload failed"; exit 1; }
    args=(); off=0
    for p in "$PIECES"/p*; do
      [ ${#args[@]} -gt 0 ] && args+=(--next)
      args+=(-s -o /dev/null -w '%{http_code}\n' -X PATCH -H "Authorization: Bearer $TOKEN" \
        -H "Upload-Offset: $off" -H 'Content-Type: application/octet-stream' -T "$p" "$URL/v1/uploads/$ID")
      off=$((off + $(stat -c %s "$p")))
    done
    codes=$(curl "${args[@]}" | sort -u | tr '\n' ' ')
    [ "$codes" = "202 " ] || { echo "chunk upload failed: HTTP $codes"; exit 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" "$URL/v1/uploads/$ID?digest=$DIGEST")
    t1=$(date +%s.%N)
    [ "$code" = 201 ] || { echo "finishing the upload failed: HTTP $code"; exit 1; }
    ch+=("$(echo "$t1 - $t0" | bc)")
    rm -f "$WORK/dd.out"; t0=$(date +%s.%N)
    dd if="$SRC" of="$WORK/dd.out" bs=8M conv=fsync status=none
    t1=$(date +%s.%N); dd2+=("$(echo "$t1 - $t0" | bc)")
    echo "run $i: chunked upload ${ch[-1]} s, dd ${dd2[-1]} s"
  done
  rm -rf "$WORK/dd.out" "$PIECES"
  mc=$(med "${ch[@]}"); md2=$(med "${dd2[@]}")
  echo "medians: chunked upload ($CHUNK_MB MiB chunks) $mc s ($(echo "$UPLOAD_MB / $mc" | bc) MiB/s), dd $md2 s, ratio $(echo "scale=2; $md2 / $mc" | bc) (target >= 0.80)"
fi
