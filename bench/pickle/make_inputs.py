#!/usr/bin/env python3
"""Write the pickle-scanner benchmark inputs to bench/out/inputs/ (gitignored).

Inputs (sizes at SCALE=1; every size is multiplied by the SCALE env var):
  dense_p4.pkl        ~30 MB protocol-4 pickle of a list of small tuples (lots of opcodes)
  torch_1000.pt       ~500 MB PyTorch zip checkpoint, dict of 1,000 float32 tensors
  big_f32.npy         ~500 MB float32 .npy
  joblib_mixed.joblib ~200 MB joblib dump: dict of big numpy arrays + a small sklearn model

Needs numpy (and joblib + scikit-learn for the joblib input). torch is used when
importable (real torch.save); otherwise the same zip layout torch 2.x writes is
produced by hand (stored members, 64-byte aligned data, protocol-2 data.pkl with
BINPERSID storages and torch._utils._rebuild_tensor_v2). Existing inputs of the
right scale are kept (delete bench/out/inputs to force a rebuild).
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("BENCH_INPUTS", ROOT / "bench" / "out" / "inputs"))
SCALE = float(os.environ.get("SCALE", "1"))
SEED = 20260101


def log(*a):
    print("make_inputs:", *a, file=sys.stderr, flush=True)


def dense_pickle(path: Path):
    n = max(1000, int(1_150_000 * SCALE))
    rng = np.random.default_rng(SEED)
    ints = rng.integers(-(2**31), 2**31, size=n).tolist()
    data = [(i, f"tok{i % 50000}", ints[i], (ints[i] % 1000) / 7.0) for i in range(n)]
    path.write_bytes(pickle.dumps(data, protocol=4))


# ---------------------------------------------------------------- torch zip
def _global(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def _unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


class _Memo:
    def __init__(self):
        self.n = 0

    def put(self):
        i = self.n
        self.n += 1
        return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)


def torch_data_pkl(names_numels: list[tuple[str, int]]) -> bytes:
    """Protocol-2 pickle of OrderedDict{name: float32 tensor}, as torch.save writes it."""
    m = _Memo()
    out = bytearray(b"\x80\x02")
    out += _global("collections", "OrderedDict") + m.put() + b")R" + m.put()
    out += b"("  # MARK for SETITEMS
    for key, (name, numel) in enumerate(names_numels):
        out += _unicode(name) + m.put()
        out += _global("torch._utils", "_rebuild_tensor_v2") + m.put()
        out += b"("  # args tuple
        out += b"(" + _unicode("storage") + m.put() + _global("torch", "FloatStorage") + m.put()
        out += _unicode(str(key)) + m.put() + _unicode("cpu") + m.put() + _int(numel) + b"t" + m.put()
        out += b"Q"  # BINPERSID
        out += _int(0) + _int(numel) + b"\x85" + m.put() + _int(1) + b"\x85" + m.put()
        out += b"\x89" + _global("collections", "OrderedDict") + m.put() + b")R" + m.put()
        out += b"t" + m.put() + b"R" + m.put()
    out += b"u"  # SETITEMS
    # BUILD state {'_metadata': {'': {'version': 1}}}, as torch writes for state dicts
    out += b"}" + m.put() + _unicode("_metadata") + b"}" + m.put() + _unicode("") + b"}" + m.put()
    out += _unicode("version") + _int(1) + b"sssb."
    return bytes(out)


class ZipStream:
    """Minimal stored-zip writer with torch's 64-byte data alignment (no ZIP64: keep < 4 GiB)."""

    def __init__(self, path: Path):
        self.f = open(path, "wb")
        self.cd = bytearray()
        self.count = 0

    def add(self, name: str, data: bytes):
        nb = name.encode()
        off = self.f.tell()
        pos = off + 30 + len(nb)
        pad = (-(pos + 4)) % 64
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        crc = zlib.crc32(data) & 0xFFFFFFFF
        self.f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x0800, 0, 0, 0x21, crc, len(data), len(data), len(nb), len(extra)))
        self.f.write(nb + extra)
        self.f.write(data)
        self.cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x0800, 0, 0, 0x21, crc, len(data), len(data), len(nb), 0, 0, 0, 0, 0, off)
        self.cd += nb
        self.count += 1

    def close(self):
        off = self.f.tell()
        self.f.write(self.cd)
        self.f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, self.count, self.count, len(self.cd), off, 0))
        self.f.close()


def torch_zip(path: Path, n_tensors: int = 1000):
    numel = max(16, int(125_000 * SCALE))  # 1000 x 125k float32 = 500 MB
    try:
        if os.environ.get("BENCH_NO_TORCH") == "1":
            raise ImportError("BENCH_NO_TORCH=1")
        import torch  # noqa: F401

        have_torch = True
    except Exception:  # noqa: BLE001
        have_torch = False
    if have_torch:
        import torch

        g = torch.Generator().manual_seed(SEED)
        sd = collections.OrderedDict(
            (f"layers.{i}.weight", torch.randn(numel, generator=g)) for i in range(n_tensors)
        )
        torch.save(sd, path)
        return "torch.save"
    rng = np.random.default_rng(SEED)
    names = [(f"layers.{i}.weight", numel) for i in range(n_tensors)]
    z = ZipStream(path)
    prefix = path.stem
    z.add(f"{prefix}/data.pkl", torch_data_pkl(names))
    z.add(f"{prefix}/.format_version", b"1")
    z.add(f"{prefix}/.storage_alignment", b"64")
    z.add(f"{prefix}/byteorder", b"little")
    for i in range(n_tensors):
        z.add(f"{prefix}/data/{i}", rng.standard_normal(numel, dtype=np.float32).tobytes())
    z.add(f"{prefix}/version", b"3\n")
    z.add(f"{prefix}/.data/serialization_id", b"0" * 40)
    z.close()
    return "handwritten (torch not importable)"


def big_npy(path: Path):
    n = max(1024, int(125_000_000 * SCALE))
    rng = np.random.default_rng(SEED)
    np.save(path, rng.standard_normal(n, dtype=np.float32))


def joblib_dump(path: Path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(SEED)
    per = max(1024, int(50_000_000 * SCALE / 4))  # 4 arrays x 50 MB float32
    X = rng.standard_normal((60, 5))
    y = (X[:, 0] > 0).astype(int)
    obj = {
        "embeddings": {f"emb{i}": rng.standard_normal(per, dtype=np.float32) for i in range(4)},
        "ids": np.arange(1000, dtype=np.int64),
        "model": LogisticRegression(max_iter=200).fit(X, y),
        "meta": {"name": "pedigree-bench", "version": 1},
    }
    joblib.dump(obj, path)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = OUT / "inputs.json"
    info = json.loads(stamp.read_text()) if stamp.exists() else {}
    if info.get("scale") != SCALE:
        info = {"scale": SCALE, "files": {}}
    jobs = [
        ("dense_p4.pkl", dense_pickle),
        ("torch_1000.pt", torch_zip),
        ("big_f32.npy", big_npy),
        ("joblib_mixed.joblib", joblib_dump),
    ]
    for name, fn in jobs:
        p = OUT / name
        if p.exists() and name in info["files"]:
            log(f"keep {name}")
            continue
        log(f"writing {name} (SCALE={SCALE}) ...")
        how = fn(p)
        info["files"][name] = {"bytes": p.stat().st_size, "how": how or "python"}
        stamp.write_text(json.dumps(info, indent=2))
        log(f"  {name}: {p.stat().st_size / 1e6:.1f} MB")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
