#!/usr/bin/env python3
"""Model-format detection and wall time: pedigree vs ModelAudit vs modelscan on
tests/formats-corpus (called by bench/formats/run.sh; can be run directly).

For every sample of tests/formats-corpus/expected.json each tool runs once on the sample's path
(a file, or a directory for Hugging Face repositories and ONNX models with external data); then
each tool runs once over the whole samples/ directory. Output: bench/out/formats-detection.json
and a Markdown table on stdout.

How "flagged" is judged:
  pedigree    `pedigree scan PATH --format json`: flagged = any finding; "rules" = the set of
              rule ids, compared with expected.json ("exact" when equal).
  modelaudit  `modelaudit scan --no-cache -f json PATH`: flagged = any issue of severity
              warning or critical (info/debug issues are notes, not detections); exit 2 with
              no issue = error.
  modelscan   `modelscan -p PATH`: exit 1 = issues found = flagged; 0 = clean; 3 = no
              supported file (skipped: the format is not scanned); 2/4 = error.
A malicious sample is "detected" when flagged; a clean sample is a "false alarm" when flagged.

Wall time is measured around the process (interpreter start-up included for the Python tools);
the summary gives each tool's median per-sample time, the median of per-sample ratios
tool/pedigree, and the time of one run over the whole samples/ directory.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "formats-corpus"
OUT = ROOT / "bench" / "out"
VENV = Path(os.environ.get("PEERS_VENV", ROOT / "bench" / ".venv-formats"))
PEDIGREE = Path(os.environ.get("PEDIGREE_BIN", ROOT / "target" / "release" / "pedigree"))
TIMEOUT = float(os.environ.get("TIMEOUT", "300"))
TOOLS = [t for t in os.environ.get("TOOLS", "pedigree,modelaudit,modelscan").split(",") if t]
ENV = dict(os.environ, PROMPTFOO_DISABLE_TELEMETRY="1", MODELAUDIT_DISABLE_TELEMETRY="1", NO_COLOR="1")


def cmd(tool: str, path: Path) -> list[str]:
    if tool == "pedigree":
        return [str(PEDIGREE), "scan", str(path), "--format", "json"]
    if tool == "modelaudit":
        return [str(VENV / "bin" / "modelaudit"), "scan", "--no-cache", "-f", "json", str(path)]
    if tool == "modelscan":
        return [str(VENV / "bin" / "modelscan"), "-p", str(path)]
    raise ValueError(tool)


def run(tool: str, path: Path) -> dict:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd(tool, path), capture_output=True, timeout=TIMEOUT, env=ENV, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"verdict": "timeout", "wall_s": time.perf_counter() - t0}
    except OSError as e:
        return {"verdict": "error", "detail": str(e), "wall_s": None}
    wall = time.perf_counter() - t0
    out = p.stdout.decode("utf-8", "replace")
    r = {"rc": p.returncode, "wall_s": wall}
    if tool == "pedigree":
        try:
            doc = json.loads(out)
            files = doc.get("files", doc if isinstance(doc, list) else [])
            rules = sorted({f["rule"] for fr in files for f in fr.get("findings", [])})
            r["rules"] = rules
            r["verdict"] = "flagged" if rules else "clean"
        except (ValueError, AttributeError, TypeError) as e:
            r["verdict"] = "error"
            r["detail"] = f"{e}: {out[:300]} {p.stderr[:300]!r}"
    elif tool == "modelaudit":
        try:
            doc = json.loads(out[out.index("{"):]) if "{" in out else {}
            issues = [i for i in doc.get("issues", []) if i.get("severity") in ("warning", "critical", "error")]
            r["issues"] = [f"{i.get('severity')}: {i.get('message', '')[:120]}" for i in issues][:8]
            if issues:
                r["verdict"] = "flagged"
            elif p.returncode == 2 and not doc:
                r["verdict"] = "error"
            else:
                r["verdict"] = "clean"
        except ValueError:
            r["verdict"] = "error" if p.returncode not in (0, 1) else ("flagged" if p.returncode == 1 else "clean")
    else:
        r["verdict"] = {0: "clean", 1: "flagged", 3: "skipped"}.get(p.returncode, "error")
        r["tail"] = out[-400:]
    return r


def main() -> None:
    expected = json.loads((CORPUS / "expected.json").read_text())
    rows = []
    for e in expected:
        path = CORPUS / e["path"]
        row = {"sample": e["path"], "clean": e["clean"], "expected": e["rules"], "tools": {}}
        for tool in TOOLS:
            row["tools"][tool] = run(tool, path)
        rows.append(row)
        v = "  ".join(f"{t}={row['tools'][t]['verdict']}" for t in TOOLS)
        print(f"{e['path']:60s} {v}", file=sys.stderr)
    whole = {tool: run(tool, CORPUS / "samples") for tool in TOOLS}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "formats-detection.json").write_text(json.dumps({"rows": rows, "whole_corpus": whole}, indent=1))
    report(rows, whole)


def report(rows: list, whole: dict) -> None:
    mal = [r for r in rows if not r["clean"]]
    cln = [r for r in rows if r["clean"]]
    print("| sample | expected | " + " | ".join(TOOLS) + " |")
    print("|---|---|" + "---|" * len(TOOLS))
    for r in rows:
        cells = []
        for t in TOOLS:
            x = r["tools"][t]
            v = x["verdict"]
            good = (v == "flagged") != r["clean"] if v in ("flagged", "clean") else None
            mark = {True: "✔", False: "✘", None: "–"}[good]
            extra = ""
            if t == "pedigree" and "rules" in x:
                extra = " " + (",".join(x["rules"]) or "")
                if x["rules"] != r["expected"]:
                    extra += " (≠ expected)"
            cells.append(f"{mark} {v}{extra}")
        exp = ",".join(r["expected"]) or "clean"
        print(f"| {r['sample'].removeprefix('samples/')} | {exp} | " + " | ".join(cells) + " |")
    print()
    print("| tool | malicious detected | clean samples falsely flagged | skipped/errors | exact rule sets | median s/sample | median ratio to pedigree | whole corpus s |")
    print("|---|---|---|---|---|---|---|---|")
    ped = {r["sample"]: r["tools"].get("pedigree", {}).get("wall_s") for r in rows}
    for t in TOOLS:
        det = sum(r["tools"][t]["verdict"] == "flagged" for r in mal)
        fa = sum(r["tools"][t]["verdict"] == "flagged" for r in cln)
        sk = sum(r["tools"][t]["verdict"] not in ("flagged", "clean") for r in rows)
        exact = sum(r["tools"][t].get("rules") == r["expected"] for r in rows) if t == "pedigree" else None
        walls = [r["tools"][t]["wall_s"] for r in rows if r["tools"][t].get("wall_s")]
        ratios = [r["tools"][t]["wall_s"] / ped[r["sample"]] for r in rows if r["tools"][t].get("wall_s") and ped.get(r["sample"])]
        med = statistics.median(walls) if walls else float("nan")
        rat = statistics.median(ratios) if ratios else float("nan")
        w = whole.get(t, {}).get("wall_s")
        print(
            f"| {t} | {det}/{len(mal)} | {fa}/{len(cln)} | {sk} | {exact if exact is not None else '–'}"
            f" | {med:.3f} | {rat:.1f}× | {w:.2f} |" if w else
            f"| {t} | {det}/{len(mal)} | {fa}/{len(cln)} | {sk} | {exact if exact is not None else '–'} | {med:.3f} | {rat:.1f}× | – |"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        d = json.loads((OUT / "formats-detection.json").read_text())
        report(d["rows"], d["whole_corpus"])
    else:
        main()
