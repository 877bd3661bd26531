#!/usr/bin/env bash
# `pedigree hygiene` vs bandit: lines of Python per second over the same files (the installed
# transformers package), medians of RUNS runs (default 3), wall time around each process.
#   bash bench/hygiene/setup.sh && bash bench/hygiene/run.sh
# Env: RUNS (default 3); SRC (directory to analyse; default the venv's transformers package);
#      PEDIGREE_BIN=cli (default) times `pedigree hygiene --format json` from a release build of
#      the CLI; PEDIGREE_BIN=lib times the same analysis through the pedigree-hygiene example
#      `hygiene_bench` (a much smaller release build; no CLI start-up or text rendering);
#      SKIP_BUILD=1 uses an existing release binary.
# Writes bench/out/hygiene-speed.md and bench/out/hygiene-speed.json.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
VENV="$HERE/.venv"
PY="$VENV/bin/python"
if [ ! -x "$PY" ] || [ ! -x "$VENV/bin/bandit" ]; then
  echo "run: $VENV missing; run bash bench/hygiene/setup.sh first" >&2
  exit 2
fi
mkdir -p bench/out
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
MODE="${PEDIGREE_BIN:-cli}"
if [ "$MODE" = lib ]; then
  BIN="$TARGET/release/examples/hygiene_bench"
  BUILD=(cargo build --release -p pedigree-hygiene --example hygiene_bench)
  CMD=("$BIN")
else
  BIN="$TARGET/release/pedigree"
  BUILD=(cargo build --release -p pedigree-cli)
  CMD=("$BIN" hygiene --format json -o /dev/null)
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "run: ${BUILD[*]}" >&2
  "${BUILD[@]}" >bench/out/hygiene-build.log 2>&1 || { echo "run: build failed (bench/out/hygiene-build.log)" >&2; exit 1; }
fi
SP="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
SRC="${SRC:-$SP/transformers}"
exec "$PY" - "$SRC" "${RUNS:-3}" "$MODE" "$VENV/bin/bandit" "${CMD[@]}" <<'PYEOF'
import json, os, statistics, subprocess, sys, time
src, runs, mode, bandit, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
files = []
for d, dirs, fs in os.walk(src):
    dirs[:] = [x for x in dirs if x != "__pycache__"]
    files += [os.path.join(d, f) for f in fs if f.endswith(".py")]
lines = 0
for f in files:
    with open(f, "rb") as fh:
        lines += fh.read().count(b"\n")
tools = {
    "pedigree hygiene" if mode == "cli" else "pedigree-hygiene (lib example)": cmd + [src],
    "bandit -r": [bandit, "-r", "-q", "-f", "json", "-o", os.devnull, src],
}
rows = {}
for name, argv in tools.items():
    times, codes = [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t)
        codes.append(p.returncode)
        tail = (p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")).strip().splitlines()[-1:]
    med = statistics.median(times)
    rows[name] = {"argv": argv, "times_s": times, "median_s": med, "lines_per_s": lines / med,
                  "exit_codes": codes, "last_output": tail}
    print(f"{name}: median {med:.2f}s over {runs} runs ({lines / med:,.0f} lines/s), exit {codes}", file=sys.stderr)
names = list(rows)
ratio = rows[names[1]]["median_s"] / rows[names[0]]["median_s"]
out = {"src": src, "files": len(files), "lines": lines, "runs": runs, "cpus": os.cpu_count(),
       "tools": rows, "speedup_vs_bandit": ratio}
json.dump(out, open("bench/out/hygiene-speed.json", "w"), indent=1)
md = [f"# pedigree hygiene vs bandit\n",
      f"{len(files)} .py files, {lines:,} lines under `{src}`; {runs} runs each, median wall time; {os.cpu_count()} CPUs.\n",
      "| tool | median s | lines/s | exit codes |", "|---|---|---|---|"]
for n, r in rows.items():
    md.append(f"| {n} | {r['median_s']:.2f} | {r['lines_per_s']:,.0f} | {r['exit_codes']} |")
md.append(f"\npedigree is {ratio:.1f}x the speed of bandit on these files.\n")
open("bench/out/hygiene-speed.md", "w").write("\n".join(md))
print("\n".join(md))
PYEOF
