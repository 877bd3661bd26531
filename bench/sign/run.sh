#!/usr/bin/env bash
# Sign/verify benchmark: pedigree vs the reference model_signing, same
# files, same hash, plus sha256sum / b3sum on the same bytes.
#
#   BENCH_SIZE_MB=3000 RUNS=3 bench/sign/run.sh
#
# Env: BENCH_SIZE_MB (total model size, default 3000), RUNS (default 3),
# SHARD_SIZE (default 1000000000; the largest file is 1.2x this or 40% of
# the model, whichever is smaller, so it always spans >1 shard when the
# model is big enough), BENCH_DIR (default bench/out/sign).
# PED_BIN: the `oms` example binary (default: built here, under
# $CARGO_TARGET_DIR or ./target, at release/examples/oms).
# Needs: .venv from scripts/setup-interop-venv.sh; b3sum (cargo install b3sum).
# Timings are warm page cache (one untimed warm-up read first, and one
# untimed run of every command): the comparison is hashing +
# orchestration, not disk. Commands compared with each other are timed
# in alternation, run by run; the first line shows the load average,
# since on a shared machine the medians move with it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
SIZE_MB="${BENCH_SIZE_MB:-3000}"
RUNS="${RUNS:-3}"
SHARD_SIZE="${SHARD_SIZE:-1000000000}"
OUT="${BENCH_DIR:-$repo/bench/out/sign}"
PY="$repo/.venv/bin/python"
[[ -x "$PY" ]] || { echo "missing .venv: run scripts/setup-interop-venv.sh" >&2; exit 2; }
B3SUM="$(command -v b3sum || echo "$HOME/.cargo/bin/b3sum")"
[[ -x "$B3SUM" ]] || { echo "b3sum missing: cargo install b3sum" >&2; exit 2; }

if [[ -z "${PED_BIN:-}" ]]; then
    cargo build --release -q -p pedigree-sign --example oms
    PED="${CARGO_TARGET_DIR:-$repo/target}/release/examples/oms"
else
    PED="$PED_BIN"
fi
KEY="$repo/crates/pedigree-sign/tests/data/keys/p256.key.pem"
PUB="$repo/crates/pedigree-sign/tests/data/keys/p256.pub.pem"

model="$OUT/model"
total=$((SIZE_MB * 1000000))
if [[ ! -f "$OUT/.size" || "$(cat "$OUT/.size")" != "$total-$SHARD_SIZE" ]]; then
    rm -rf "$OUT"; mkdir -p "$model/sub"
    big=$(( SHARD_SIZE * 6 / 5 )); (( big > total * 2 / 5 )) && big=$(( total * 2 / 5 ))
    rest=$(( (total - big) / 5 ))
    # Incompressible, deterministic content (openssl AES-CTR keystream).
    gen() { (set +o pipefail; openssl enc -aes-128-ctr -pass pass:"$1" -nosalt -pbkdf2 </dev/zero 2>/dev/null | head -c "$2" > "$3"); }
    gen big "$big" "$model/model-00001.safetensors"
    for i in 1 2 3 4; do gen "f$i" "$rest" "$model/sub/shard-$i.bin"; done
    gen cfg "$((total - big - 4 * rest))" "$model/tail.bin"
    echo '{"arch":"bench"}' > "$model/config.json"
    echo "$total-$SHARD_SIZE" > "$OUT/.size"
fi
bytes=$(du -sb --apparent-size "$model" | cut -f1)
cat "$model"/*.* "$model"/sub/* > /dev/null   # warm the page cache

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
# interleave F...: one untimed warm-up of each command F (a function), then
# RUNS rounds that time every F once, in turn, so that pedigree and its
# peer see the same machine load (on a shared box, load drift between two
# back-to-back medians is larger than the differences measured). Medians
# land in MED[F].
declare -A MED
interleave() {
    local f r; local -A t=()
    for f in "$@"; do "$f" >/dev/null 2>&1 || { echo "FAILED: $f" >&2; exit 1; }; done
    for r in $(seq "$RUNS"); do
        for f in "$@"; do t[$f]+="$(timeit "$f") "; done
    done
    for f in "$@"; do MED[$f]=$(printf '%s\n' ${t[$f]} | median); done
}
files() { find "$model" -type f ! -name '*.sig' | sort; }
mapfile -t fl < <(files)

# The commands compared; $h (hash) and $m (method) are set per mode.
ped_sign() { "$PED" sign "$model" "$OUT/ped.sig" "$KEY" "$h" "$m" "$SHARD_SIZE"; }
ped_verify() { "$PED" verify "$model" "$OUT/ped.sig" "$PUB"; }
ref_sign() { "$PY" bench/sign/ref_tool.py sign "$model" "$OUT/ref.sig" "$KEY" "$h" "$m" "$SHARD_SIZE"; }
ref_verify() { "$PY" bench/sign/ref_tool.py verify "$model" "$OUT/ref.sig" "$PUB" "$h" "$m" "$SHARD_SIZE"; }
sha256sum_all() { sha256sum "${fl[@]}"; }
b3sum_all() { "$B3SUM" "${fl[@]}"; }
ped_sign_sha256() { h=sha256 m=files ped_sign; }
ped_sign_blake3() { h=blake3 m=files ped_sign; }

printf '%s bytes in %d files, shard size %s, %s runs, %s cores, load %s\n' "$bytes" "${#fl[@]}" "$SHARD_SIZE" "$RUNS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-18s %10s %10s %10s %10s %8s %8s\n' mode ped_sign ref_sign ped_verify ref_verify sign_x verify_x
for mode in sha256:files sha256:shards blake3:files; do
    h=${mode%%:*}; m=${mode##*:}
    interleave ped_sign ref_sign ped_verify ref_verify
    ps=${MED[ped_sign]} rs=${MED[ref_sign]} pv=${MED[ped_verify]} rv=${MED[ref_verify]}
    # Cross-check: each tool accepts the other's signature.
    "$PED" verify "$model" "$OUT/ref.sig" "$PUB" || { echo "pedigree rejected the reference $mode bundle" >&2; exit 1; }
    printf '%-18s %10.2f %10.2f %10.2f %10.2f %8.2f %8.2f\n' "$mode" "$ps" "$rs" "$pv" "$rv" "$(echo "$rs/$ps" | bc -l)" "$(echo "$rv/$pv" | bc -l)"
done
# Against the plain tools on the same bytes, interleaved with pedigree.
interleave sha256sum_all ped_sign_sha256 b3sum_all ped_sign_blake3
s256=${MED[sha256sum_all]} ped256=${MED[ped_sign_sha256]} b3=${MED[b3sum_all]} pedb3=${MED[ped_sign_blake3]}
gbs() { echo "$bytes / $1 / 1000000000" | bc -l; }
printf '\nthroughput (GB/s, warm cache; b3sum as run: mmap + all cores):\n'
printf '  sha256sum %.2f   pedigree sha256 sign %.2f   ratio %.0f%%\n' "$(gbs "$s256")" "$(gbs "$ped256")" "$(echo "100*$s256/$ped256" | bc -l)"
printf '  b3sum     %.2f   pedigree blake3 sign %.2f   ratio %.0f%%\n' "$(gbs "$b3")" "$(gbs "$pedb3")" "$(echo "100*$b3/$pedb3" | bc -l)"
