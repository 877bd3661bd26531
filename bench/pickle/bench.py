#!/usr/bin/env python3
"""Timing + detection harness for the pickle-scanner peer benchmark.

Called by bench/pickle/run.sh; can be run directly:
  python bench/pickle/bench.py timing   # median wall time + peak RSS per tool x input
  python bench/pickle/bench.py detect   # every tool over tests/corpus/samples vs expected.json

Environment:
  RUNS=5            timing repetitions per tool x input (median reported)
  TOOLS=...         comma list from pedigree,picklescan,modelscan,fickling (default: all)
  TIMEOUT=600       seconds before one scanner run is killed (recorded as a timeout)
  PEDIGREE_BIN      default target/release/pedigree (run.sh passes $CARGO_TARGET_DIR's)
  PEERS_VENV        default bench/.venv-peers
  INPUTS=...        comma list of input file names to time (default: all of inputs.json)

How "flagged" is judged (detection table):
  pedigree    parses `pedigree scan FILE --format json`; flagged = any PDGnnn rule
              other than the info rule PDG209 appears in the output. Exit code and
              the reported rule ids are recorded; "rules ok" = every rule of
              expected.json was reported.
  picklescan  `picklescan -p FILE`; flagged = "Infected files: N" with N > 0 in its
              summary (exit 1). Exit 2 with no infected file = scan error.
  modelscan   `modelscan -p FILE`; exit 1 = issues found = flagged; 0 = clean;
              2 = scan failed, 3 = no supported files (file skipped), 4 = usage
              error -> recorded as error/skipped, not flagged.
  fickling    `fickling --check-safety FILE --json-output OUT`; flagged = non-zero
              exit (fickling exits non-zero when it judges the file unsafe, at any
              severity from LIKELY_UNSAFE up); its severity is recorded. A Python
              traceback with no JSON written = error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTDIR = ROOT / "bench" / "out"
INPUTS = Path(os.environ.get("BENCH_INPUTS", OUTDIR / "inputs"))
CORPUS = ROOT / "tests" / "corpus"
VENV = Path(os.environ.get("PEERS_VENV", ROOT / "bench" / ".venv-peers"))
PEDIGREE = Path(os.environ.get("PEDIGREE_BIN", ROOT / "target" / "release" / "pedigree"))
RUNS = int(os.environ.get("RUNS", "5"))
TIMEOUT = float(os.environ.get("TIMEOUT", "600"))
ALL_TOOLS = ["pedigree", "picklescan", "modelscan", "fickling"]
TOOLS = [t for t in os.environ.get("TOOLS", ",".join(ALL_TOOLS)).split(",") if t]
GNU_TIME = "/usr/bin/time"


def have_gnu_time() -> bool:
    try:
        r = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True)
        return r.returncode == 0 and r.stderr.strip().isdigit()
    except OSError:
        return False


HAVE_TIME = have_gnu_time()


def cmd_for(tool: str, path: Path, json_out: Path | None = None) -> list[str]:
    if tool == "pedigree":
        return [str(PEDIGREE), "scan", str(path), "--format", "json"]
    if tool == "picklescan":
        return [str(VENV / "bin" / "picklescan"), "-p", str(path)]
    if tool == "modelscan":
        return [str(VENV / "bin" / "modelscan"), "-p", str(path)]
    if tool == "fickling":
        c = [str(VENV / "bin" / "fickling"), "--check-safety", str(path)]
        if json_out:
            c += ["--json-output", str(json_out)]
        return c
    raise ValueError(tool)


def tool_available(tool: str) -> str | None:
    exe = Path(cmd_for(tool, Path("x"))[0])
    if not exe.exists():
        return f"{exe} not found"
    return None


def run_once(cmd: list[str], cwd: Path) -> dict:
    """Run one command; wall seconds (perf_counter around the process) and peak RSS KiB."""
    with tempfile.NamedTemporaryFile(prefix="rss", delete=False) as tf:
        rss_file = tf.name
    full = ([GNU_TIME, "-f", "%M", "-o", rss_file] + cmd) if HAVE_TIME else cmd
    t0 = time.perf_counter()
    try:
        p = subprocess.run(full, capture_output=True, timeout=TIMEOUT, cwd=cwd)
        wall = time.perf_counter() - t0
        rc, out, err, timed_out = p.returncode, p.stdout, p.stderr, False
    except subprocess.TimeoutExpired as e:
        wall = time.perf_counter() - t0
        rc, out, err, timed_out = None, e.stdout or b"", e.stderr or b"", True
    except OSError as e:
        return {"rc": None, "wall_s": None, "rss_kib": None, "stdout": "", "stderr": str(e), "timed_out": False, "error": str(e)}
    rss = None
    try:
        txt = Path(rss_file).read_text().strip().splitlines()
        # GNU time writes "Command exited with non-zero status N" before %M
        for line in reversed(txt):
            if line.strip().isdigit():
                rss = int(line.strip())
                break
    except OSError:
        pass
    os.unlink(rss_file)
    return {
        "rc": rc, "wall_s": wall, "rss_kib": rss, "timed_out": timed_out,
        "stdout": out.decode("utf-8", "replace"), "stderr": err.decode("utf-8", "replace"),
    }


# ------------------------------------------------------------------ timing
def timing():
    info_p = INPUTS / "inputs.json"
    if not info_p.exists():
        sys.exit(f"no inputs at {INPUTS}; run bench/pickle/make_inputs.py first")
    info = json.loads(info_p.read_text())
    results = []
    work = Path(tempfile.mkdtemp(prefix="pedigree-bench-"))
    only = [x for x in os.environ.get("INPUTS", "").split(",") if x]
    for name in info["files"]:
        if only and name not in only:
            continue
        path = INPUTS / name
        size = path.stat().st_size
        for tool in TOOLS:
            row = {"tool": tool, "input": name, "bytes": size, "runs": []}
            why = tool_available(tool)
            if why:
                row["error"] = why
                results.append(row)
                print(f"timing: {tool:10s} {name:22s} ERROR {why}", file=sys.stderr)
                continue
            for i in range(RUNS):
                r = run_once(cmd_for(tool, path), work)
                row["runs"].append({k: r[k] for k in ("rc", "wall_s", "rss_kib", "timed_out")})
                if i == 0:
                    row["first_stdout_tail"] = r["stdout"][-1500:]
                    row["first_stderr_tail"] = r["stderr"][-1500:]
                if r.get("error") or r["timed_out"]:
                    row["error"] = r.get("error") or f"timeout after {TIMEOUT}s"
                    break
                if tool == "pedigree" and r["rc"] not in (0, 1):
                    # a scanner that cannot run at all: record once, do not repeat
                    row["error"] = f"exit {r['rc']}: {r['stderr'].strip()[:200]}"
                    break
            walls = [x["wall_s"] for x in row["runs"] if x["wall_s"] is not None and not x["timed_out"]]
            rsss = [x["rss_kib"] for x in row["runs"] if x["rss_kib"]]
            if walls and "error" not in row:
                row["median_s"] = statistics.median(walls)
                row["mb_per_s"] = size / 1e6 / row["median_s"] if row["median_s"] > 0 else None
            if rsss:
                row["peak_mib"] = max(rsss) / 1024
            row["rcs"] = sorted({x["rc"] for x in row["runs"] if x["rc"] is not None})
            results.append(row)
            print(f"timing: {tool:10s} {name:22s} {row.get('median_s', float('nan')):8.3f}s "
                  f"{row.get('peak_mib', float('nan')):8.1f} MiB rc={row['rcs']} {row.get('error', '')}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    # ratio vs pedigree
    ped = {r["input"]: r.get("median_s") for r in results if r["tool"] == "pedigree"}
    for r in results:
        base = ped.get(r["input"])
        r["ratio_vs_pedigree"] = (r["median_s"] / base) if (base and r.get("median_s")) else None
    doc = {"scale": info.get("scale"), "runs": RUNS, "inputs": info["files"], "results": results,
           "pedigree_bin": str(PEDIGREE),
           "host": {"nproc": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_after": os.getloadavg()}}
    OUTDIR.mkdir(parents=True, exist_ok=True)
    (OUTDIR / "pickle-timing.json").write_text(json.dumps(doc, indent=2))
    lines = [f"### Timing (SCALE={info.get('scale')}, median of {RUNS} runs)", "",
             "| tool | input | size MB | median s | MB/s | peak MiB | ratio vs pedigree | note |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        def f(v, fmt):
            return format(v, fmt) if isinstance(v, (int, float)) else "–"
        note = r.get("error", "")
        if not note and r.get("rcs") and r["rcs"] != [0]:
            note = f"exit {','.join(map(str, r['rcs']))}"
        lines.append(f"| {r['tool']} | {r['input']} | {r['bytes'] / 1e6:.1f} | {f(r.get('median_s'), '.3f')} | "
                     f"{f(r.get('mb_per_s'), '.1f')} | {f(r.get('peak_mib'), '.1f')} | "
                     f"{f(r.get('ratio_vs_pedigree'), '.2f')} | {note.replace('|', '/')[:80]} |")
    table = "\n".join(lines) + "\n"
    (OUTDIR / "pickle-timing.md").write_text(table)
    print(table)


# --------------------------------------------------------------- detection
PDG_RE = re.compile(r"PDG\d{3}")


def judge(tool: str, r: dict, json_out: Path | None) -> dict:
    out = r["stdout"] + "\n" + r["stderr"]
    rc = r["rc"]
    res = {"rc": rc, "flagged": False, "status": "ok"}
    if r.get("error"):
        return {"rc": None, "flagged": False, "status": "error", "detail": r["error"]}
    if r["timed_out"]:
        return {"rc": None, "flagged": False, "status": "timeout"}
    if tool == "pedigree":
        rules = sorted(set(PDG_RE.findall(r["stdout"])))
        res["rules"] = rules
        try:
            json.loads(r["stdout"])
        except ValueError:
            res["status"] = "error" if rc not in (0, 1) or not rules else "ok"
            res["detail"] = (r["stderr"] or r["stdout"]).strip()[-200:]
        res["flagged"] = any(x != "PDG209" for x in rules)
    elif tool == "picklescan":
        m = re.search(r"Infected files:\s*(\d+)", out)
        infected = int(m.group(1)) if m else 0
        res["flagged"] = infected > 0
        if rc == 2 and not res["flagged"]:
            res["status"] = "error"
        if m is None:
            res["status"] = "error"
        d = re.search(r"(ERROR:.*)", out)
        if d:
            res["detail"] = d.group(1)[:200]
    elif tool == "modelscan":
        res["flagged"] = rc == 1
        if rc == 2:
            res["status"] = "error"
        elif rc == 3:
            res["status"] = "skipped"
        elif rc not in (0, 1):
            res["status"] = "error"
        if "Errors" in out or "error" in out.lower() and rc != 1:
            e = re.search(r"(The following error.*\n.*)", out)
            if e:
                res["detail"] = e.group(1).replace("\n", " ")[:200]
        if "skipped" in out.lower() and rc == 0 and "No issues found" not in out:
            res["status"] = "skipped"
    elif tool == "fickling":
        sev = None
        if json_out and json_out.exists():
            try:
                sev = json.loads(json_out.read_text()).get("severity")
            except ValueError:
                pass
        res["severity"] = sev
        res["flagged"] = rc not in (0, None) and (sev not in (None, "LIKELY_SAFE"))
        if sev is None and rc != 0:
            res["status"] = "error"
            m = re.search(r"Error: (.*)", out)
            tb = [ln for ln in out.strip().splitlines() if ln.strip()]
            res["detail"] = (m.group(1) if m else (tb[-1] if tb else ""))[:200]
    return res


def detect():
    manifest = json.loads((CORPUS / "expected.json").read_text())
    rows = []
    work = Path(tempfile.mkdtemp(prefix="pedigree-detect-"))
    avail = {t: tool_available(t) for t in TOOLS}
    for s in manifest:
        path = CORPUS / s["path"]
        row = {"path": s["path"], "format": s["format"], "clean": s["clean"], "expected_rules": s["rules"], "tools": {}}
        for tool in TOOLS:
            if avail[tool]:
                row["tools"][tool] = {"flagged": False, "status": "error", "detail": avail[tool]}
                continue
            jo = work / "fickling.json"
            if jo.exists():
                jo.unlink()
            r = run_once(cmd_for(tool, path, jo if tool == "fickling" else None), work)
            j = judge(tool, r, jo if tool == "fickling" else None)
            if tool == "pedigree" and "rules" in j:
                j["rules_ok"] = set(s["rules"]) <= set(j["rules"])
            j["wall_s"] = r.get("wall_s")
            row["tools"][tool] = j
        rows.append(row)
        print("detect: " + s["path"] + " " + " ".join(
            f"{t}={'F' if v['flagged'] else '-'}{'' if v['status'] == 'ok' else '(' + v['status'] + ')'}"
            for t, v in row["tools"].items()), file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    OUTDIR.mkdir(parents=True, exist_ok=True)
    (OUTDIR / "pickle-detection.json").write_text(json.dumps(rows, indent=2))

    def cell(row, t):
        v = row["tools"][t]
        if v["status"] in ("error", "timeout") and not v["flagged"]:
            mark = v["status"]
        elif v["status"] == "skipped" and not v["flagged"]:
            mark = "skipped"
        else:
            mark = "FLAG" if v["flagged"] else "·"
        good = (v["flagged"] != row["clean"])
        if t == "pedigree" and "rules_ok" in v and not v["rules_ok"]:
            good = False
            mark += " (rules missing)"
        return mark + ("" if good else " ✗")

    lines = ["### Detection over tests/corpus/samples", "",
             "`FLAG` = the tool flagged the file, `·` = it did not, `error`/`skipped`/`timeout` = it could not judge it; "
             "`✗` marks a wrong verdict (a malicious sample not flagged, or a clean sample flagged).", "",
             "| sample | expected | " + " | ".join(TOOLS) + " |", "|---|---|" + "---|" * len(TOOLS)]
    score = {t: {"malicious_caught": 0, "malicious": 0, "clean_quiet": 0, "clean": 0} for t in TOOLS}
    for row in rows:
        exp = "clean" if row["clean"] else "malicious " + ",".join(row["expected_rules"])
        lines.append(f"| `{row['path'].removeprefix('samples/')}` | {exp} | " + " | ".join(cell(row, t) for t in TOOLS) + " |")
        for t in TOOLS:
            v = row["tools"][t]
            if row["clean"]:
                score[t]["clean"] += 1
                score[t]["clean_quiet"] += (not v["flagged"]) and v["status"] == "ok"
            else:
                score[t]["malicious"] += 1
                score[t]["malicious_caught"] += bool(v["flagged"])
    lines += ["", "| tool | malicious flagged | clean files judged clean (no error) |", "|---|---:|---:|"]
    for t in TOOLS:
        sc = score[t]
        lines.append(f"| {t} | {sc['malicious_caught']}/{sc['malicious']} | {sc['clean_quiet']}/{sc['clean']} |")
    table = "\n".join(lines) + "\n"
    (OUTDIR / "pickle-detection.md").write_text(table)
    print(table)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("timing", "all"):
        timing()
    if what in ("detect", "all"):
        detect()
