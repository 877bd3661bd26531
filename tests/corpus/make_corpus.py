#!/usr/bin/env python3
"""Regenerate the pedigree pickle-scanner test corpus.

Writes every sample under tests/corpus/samples/ and the manifest
tests/corpus/expected.json, and refreshes the sample table in README.md.

Run with the pinned environment (see README.md):

    python -m venv /tmp/gen && /tmp/gen/bin/pip install -r tests/corpus/requirements.txt
    /tmp/gen/bin/python tests/corpus/make_corpus.py

SAFETY: this script never executes a payload.  Malicious pickles are assembled
byte by byte; the only loads it performs use ``Recorder``, an Unpickler whose
find_class records the requested (module, name) and returns an inert stub, and
torch's C++ zip reader (``torch._C.PyTorchFileReader``), which only reads bytes.
Every payload is harmless even if someone does load it: it prints or echoes
"pedigree-test", opens nothing remote, deletes nothing.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import collections
import copy
import datetime
import gzip
import io
import json
import lzma
import os
import pickle
import pickletools
import shutil
import struct
import sys
import tarfile
import warnings
import zipfile
import zlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

warnings.filterwarnings("ignore")

HERE = Path(__file__).resolve().parent
OUT = HERE / "samples"
AKIKI = Path(os.environ.get("AKIKI_DIR", "/work/shared/models/akiki-vad-0.0.6"))
CMD = "echo pedigree-test"
FIXED_ZIP_TIME = (2026, 1, 1, 0, 0, 0)
FIXED_MTIME = 1767225600  # 2026-01-01T00:00:00Z

MANIFEST: list[dict] = []


# --------------------------------------------------------------------------
# pickle assembler
# --------------------------------------------------------------------------
def PROTO(n: int) -> bytes:
    return b"\x80" + bytes([n])


MARK, STOP, POP, NONE, REDUCE = b"(", b".", b"0", b"N", b"R"
EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST = b")", b"}", b"]"
TUPLE, TUPLE1, TUPLE2, TUPLE3 = b"t", b"\x85", b"\x86", b"\x87"
APPEND, APPENDS, SETITEMS, BUILD = b"a", b"e", b"u", b"b"
STACK_GLOBAL, MEMOIZE = b"\x93", b"\x94"


def GLOBAL(mod: str, name: str) -> bytes:
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def BINUNICODE(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def SHORT_BINUNICODE(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 256
    return b"\x8c" + bytes([len(b)]) + b


def BYTES(b: bytes) -> bytes:
    if len(b) < 256:
        return b"C" + bytes([len(b)]) + b
    return b"B" + struct.pack("<I", len(b)) + b


def SG(mod: str, name: str) -> bytes:
    """STACK_GLOBAL with SHORT_BINUNICODE operands (protocol 4)."""
    return SHORT_BINUNICODE(mod) + SHORT_BINUNICODE(name) + STACK_GLOBAL


def BINPUT(i: int) -> bytes:
    return b"q" + bytes([i])


def BINGET(i: int) -> bytes:
    return b"h" + bytes([i])


def FRAME(n: int) -> bytes:
    return b"\x95" + struct.pack("<Q", n)


def enc(v, p4: bool = False) -> bytes:
    """Encode a plain value (protocol >= 2 opcodes)."""
    if v is None:
        return NONE
    if isinstance(v, str):
        return SHORT_BINUNICODE(v) if (p4 and len(v.encode()) < 256) else BINUNICODE(v)
    if isinstance(v, bytes):
        return BYTES(v)
    if isinstance(v, bool):
        return b"\x88" if v else b"\x89"
    if isinstance(v, int):
        if 0 <= v < 256:
            return b"K" + bytes([v])
        return b"J" + struct.pack("<i", v)
    if isinstance(v, list):
        if not v:
            return EMPTY_LIST
        return EMPTY_LIST + MARK + b"".join(enc(x, p4) for x in v) + APPENDS
    if isinstance(v, dict):
        if not v:
            return EMPTY_DICT
        return EMPTY_DICT + MARK + b"".join(enc(k, p4) + enc(x, p4) for k, x in v.items()) + SETITEMS
    if isinstance(v, tuple):
        return tup(*[enc(x, p4) for x in v])
    raise TypeError(v)


def tup(*items: bytes) -> bytes:
    """Build a tuple from already-encoded items."""
    n = len(items)
    body = b"".join(items)
    if n == 0:
        return EMPTY_TUPLE
    if n <= 3:
        return body + [TUPLE1, TUPLE2, TUPLE3][n - 1]
    return MARK + body + TUPLE


def call(callable_ops: bytes, *args, p4: bool = False) -> bytes:
    return callable_ops + tup(*[enc(a, p4) for a in args]) + REDUCE


def os_system_p2(mod: str = "os") -> bytes:
    return PROTO(2) + call(GLOBAL(mod, "system"), CMD) + STOP


def inject(pkl: bytes, payload_ops: bytes) -> bytes:
    """Insert stack-neutral payload ops right after the leading PROTO opcode
    of an existing pickle (so the file still loads as the original object)."""
    assert pkl[0] == 0x80
    return pkl[:2] + payload_ops + pkl[2:]


SYSTEM_P2_OPS = call(GLOBAL("os", "system"), CMD) + POP  # stack neutral


# --------------------------------------------------------------------------
# recorder: loads with find_class overridden -- never imports anything
# --------------------------------------------------------------------------
class Stub:
    def __init__(self, name):
        self._name = name

    def __call__(self, *a, **k):
        return Stub(self._name + "()")

    def __getattr__(self, item):
        if item.startswith("__") and item.endswith("__"):
            raise AttributeError(item)
        return Stub(self._name + "." + item)

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass


class Recorder(pickle.Unpickler):
    """C unpickler in file mode (like torch.load / np.load / pickle.load(f))."""

    def __init__(self, f):
        super().__init__(f)
        self.seen: list[str] = []

    def find_class(self, module, name):
        # The C Unpickler does not expose its proto; the Python-2 names mapped
        # here do not exist as Python 3 modules, so mapping unconditionally is
        # equivalent for this corpus.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        self.seen.append(f"{module}.{name}")
        return Stub(f"{module}.{name}")

    def persistent_load(self, pid):
        return Stub("persistent")


def record(data: bytes, stacked: bool = False) -> tuple[list[str], str | None]:
    f = io.BytesIO(data)
    seen: list[str] = []
    err = None
    while True:
        r = Recorder(f)
        try:
            r.load()
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"
            seen += r.seen
            break
        seen += r.seen
        if not stacked or f.tell() >= len(data):
            break
    return seen, err


def genops_globals(data: bytes) -> list[str]:
    """What pickletools sees: GLOBAL/INST args and STACK_GLOBAL count."""
    out = []
    for op, arg, _pos in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            out.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            out.append("<STACK_GLOBAL>")
    return out


def expect_calls(data: bytes, names: list[str], stacked: bool = False):
    seen, _err = record(data, stacked=stacked)
    for n in names:
        assert n in seen, f"recorder did not see {n}: {seen}"


# --------------------------------------------------------------------------
# zip writer with full control (torch style: stored, 64-byte aligned data)
# --------------------------------------------------------------------------
def build_zip(entries: list[dict], align: int = 64) -> bytes:
    """entries: {name, data, [lh_name], [crc], [lh_flags], [cd_flags], [method]}"""
    out = bytearray()
    cd = bytearray()
    dos_time = (FIXED_ZIP_TIME[3] << 11) | (FIXED_ZIP_TIME[4] << 5) | (FIXED_ZIP_TIME[5] // 2)
    dos_date = ((FIXED_ZIP_TIME[0] - 1980) << 9) | (FIXED_ZIP_TIME[1] << 5) | FIXED_ZIP_TIME[2]
    for e in entries:
        name = e["name"].encode()
        lh_name = e.get("lh_name", e["name"]).encode()
        raw = e["data"]
        method = e.get("method", 0)
        if method == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            comp = c.compress(raw) + c.flush()
        else:
            comp = raw
        crc = e.get("crc", zlib.crc32(raw) & 0xFFFFFFFF)
        lh_flags = e.get("lh_flags", 0)
        cd_flags = e.get("cd_flags", 0)
        offset = len(out)
        extra = b""
        if align and method == 0:
            pos = offset + 30 + len(lh_name)
            pad = (-(pos + 4)) % align
            extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, lh_flags, method, dos_time, dos_date,
            crc, len(comp), len(raw), len(lh_name), len(extra),
        )
        out += lh_name + extra + comp
        cd += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, cd_flags, method, dos_time, dos_date,
            crc, len(comp), len(raw), len(name), 0, 0, 0, 0, 0, offset,
        )
        cd += name
    cd_off = len(out)
    out += cd
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(cd), cd_off, 0)
    return bytes(out)


def zip_entries(path_or_bytes) -> list[dict]:
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with zipfile.ZipFile(src) as z:
        return [{"name": i.filename, "data": z.read(i.filename)} for i in z.infolist()]


def replace_member(entries, suffix, data):
    out = copy.deepcopy(entries)
    hits = [e for e in out if e["name"].endswith(suffix)]
    assert len(hits) == 1, suffix
    hits[0]["data"] = data
    return out


def std_zip(members: list[tuple[str, bytes]], deflate: bool = True) -> bytes:
    """An ordinary zip with fixed timestamps (Python zipfile)."""
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name, FIXED_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    return b.getvalue()


def tar_bytes(members: list[tuple[str, bytes]], gz: bool = False, fmt=tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = FIXED_MTIME
            ti.mode = 0o644
            ti.uname = ti.gname = ""
            t.addfile(ti, io.BytesIO(data))
    data = raw.getvalue()
    if gz:
        return gzip.compress(data, compresslevel=9, mtime=0)
    return data


def seven_zip(members: list[tuple[str, bytes]], password: str | None = None) -> bytes:
    import py7zr

    b = io.BytesIO()
    kw = {}
    if password:
        kw = {"password": password, "header_encryption": False}
    with py7zr.SevenZipFile(b, "w", **kw) as z:
        for name, data in members:
            z.writestr(data, name)
    return b.getvalue()


# --------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------
def emit(rel: str, data: bytes, fmt: str, clean: bool, rules: list[str], globs: list[str], note: str):
    p = OUT / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    add(rel, fmt, clean, rules, globs, note)


def add(rel, fmt, clean, rules, globs, note):
    assert fmt in {
        "pickle", "torch-zip", "torch-script", "torch-legacy", "torch-legacy-tar", "npy",
        "npz", "joblib", "compressed", "zip", "tar", "seven-zip",
    }, fmt
    if clean:
        assert all(r == "PDG209" for r in rules), (rel, rules)
    assert (OUT / rel).exists(), rel
    MANIFEST.append({
        "path": "samples/" + rel, "format": fmt, "clean": clean,
        "rules": sorted(set(rules)), "globals": globs, "note": note,
    })


# --------------------------------------------------------------------------
# malicious: plain pickles
# --------------------------------------------------------------------------
def plain_pickles():
    d = "malicious/pickle/"
    p0 = GLOBAL("os", "system") + MARK + b"S'" + CMD.encode() + b"'\n" + TUPLE + REDUCE + STOP
    expect_calls(p0, ["os.system"])
    emit(d + "os_system_p0.pkl", p0, "pickle", False, ["PDG101"], ["os.system"],
         "Protocol 0 GLOBAL os.system + REDUCE. Baseline: every peer catches it.")

    p2 = os_system_p2()
    expect_calls(p2, ["os.system"])
    emit(d + "os_system_p2.pkl", p2, "pickle", False, ["PDG101"], ["os.system"],
         "Protocol 2 GLOBAL os.system + REDUCE. Baseline.")
    emit(d + "os_system_p2.bin", p2, "pickle", False, ["PDG101"], ["os.system"],
         "Plain pickle named .bin (CVE-2025-1889 / CVE-2025-10155): picklescan took the zip path or skipped the extension; torch.load falls back to pickle and runs it.")
    emit(d + "os_system_p2.pt", p2, "pickle", False, ["PDG101"], ["os.system"],
         "Plain pickle named .pt (CVE-2025-10155): torch.load's legacy path unpickles it; scanners that expect a zip for .pt fail open.")

    body = SG("os", "system") + MEMOIZE + SHORT_BINUNICODE(CMD) + MEMOIZE + TUPLE1 + MEMOIZE + REDUCE + MEMOIZE + STOP
    p4 = PROTO(4) + FRAME(len(body)) + body
    expect_calls(p4, ["os.system"])
    emit(d + "os_system_p4_stack_global.pkl", p4, "pickle", False, ["PDG101"], ["os.system"],
         "Protocol 4 STACK_GLOBAL('os','system') in a FRAME, as pickle.dumps would write it. Scanners that only read GLOBAL miss it.")

    class Evil:
        def __reduce__(self):
            return (os.system, (CMD,))

    p5 = pickle.dumps(Evil(), protocol=5)
    assert b"posix" in p5 and b"system" in p5
    expect_calls(p5, ["posix.system"])
    emit(d + "posix_system_reduce_p5.pkl", p5, "pickle", False, ["PDG101"], ["posix.system"],
         "Real pickle.dumps of an object whose __reduce__ returns os.system: on Linux it is written as posix.system (a deny list naming only 'os' misses it).")

    ev = PROTO(2) + call(GLOBAL("__builtin__", "eval"), "print('pedigree-test')") + STOP
    expect_calls(ev, ["builtins.eval"])
    emit(d + "builtin_eval_p2.pkl", ev, "pickle", False, ["PDG101"], ["builtins.eval"],
         "GLOBAL __builtin__.eval under protocol 2; _compat_pickle maps it to builtins.eval.")

    ex = PROTO(4) + call(SG("builtins", "exec"), "print('pedigree-test')", p4=True) + STOP
    expect_calls(ex, ["builtins.exec"])
    emit(d + "builtins_exec_p4.pkl", ex, "pickle", False, ["PDG101"], ["builtins.exec"],
         "STACK_GLOBAL builtins.exec under protocol 4.")

    co = PROTO(2) + call(GLOBAL("commands", "getoutput"), CMD) + STOP
    expect_calls(co, ["subprocess.getoutput"])
    emit(d + "commands_getoutput_p2.pkl", co, "pickle", False, ["PDG101"], ["subprocess.getoutput"],
         "GLOBAL commands.getoutput under protocol 2: _compat_pickle IMPORT_MAPPING turns commands into subprocess, so it runs subprocess.getoutput. Deny lists without 'commands' and without the mapping miss it (finding may name it as written, commands.getoutput, but must resolve it to subprocess.getoutput).")

    dp = PROTO(4) + call(SG("pathlib", "os.system"), CMD, p4=True) + STOP
    expect_calls(dp, ["pathlib.os.system"])
    emit(d + "dotted_pathlib_os_system_p4.pkl", dp, "pickle", False, ["PDG101"], ["pathlib.os.system"],
         "Dotted STACK_GLOBAL('pathlib','os.system') under PROTO 4: find_class walks pathlib -> os -> system. Exact-match deny lists (picklescan before the fix, modelscan) see only 'pathlib'.")

    da = PROTO(4) + call(SG("asyncio.base_events", "subprocess.getoutput"), CMD, p4=True) + STOP
    expect_calls(da, ["asyncio.base_events.subprocess.getoutput"])
    emit(d + "dotted_asyncio_subprocess_getoutput_p4.pkl", da, "pickle", False, ["PDG101"],
         ["asyncio.base_events.subprocess.getoutput"],
         "Dotted STACK_GLOBAL('asyncio.base_events','subprocess.getoutput') under PROTO 4 reaches subprocess.getoutput.")

    cv = PROTO(4) + SG("asyncio.unix_events", "_UnixSubprocessTransport._start") + POP + NONE + STOP
    expect_calls(cv, ["asyncio.unix_events._UnixSubprocessTransport._start"])
    emit(d + "cve_2025_10157_asyncio_child_p4.pkl", cv, "pickle", False, ["PDG101"],
         ["asyncio.unix_events._UnixSubprocessTransport._start"],
         "CVE-2025-10157: a child of a denied module (asyncio.unix_events...) imported; exact module matching missed it. Import only, no call.")

    p0dot = PROTO(2) + GLOBAL("pathlib", "os.system") + POP + NONE + STOP
    # under PROTO 2 the dotted name fails to resolve (AttributeError) -- used only as
    # documentation that the proto decides; not emitted as a sample.
    del p0dot


def gadget_pickles():
    d = "malicious/gadgets/"
    import marshal

    code = marshal.dumps(compile("print('pedigree-test')", "<pedigree-test>", "exec"))
    m = (PROTO(3) + GLOBAL("types", "FunctionType")
         + call(GLOBAL("marshal", "loads"), code) + EMPTY_DICT + TUPLE2 + REDUCE
         + EMPTY_TUPLE + REDUCE + STOP)
    expect_calls(m, ["types.FunctionType", "marshal.loads"])
    emit(d + "marshal_functiontype.pkl", m, "pickle", False, ["PDG101", "PDG108"],
         ["marshal.loads", "types.FunctionType"],
         "marshal.loads(code) -> types.FunctionType(code, {}) -> call(). The final REDUCE calls the result of a call (laundered). picklescan/modelscan called this clean (research §4.2). Bytecode is CPython-3.11 specific; harmless print.")

    nested = os_system_p2()
    lb = PROTO(3) + call(GLOBAL("torch.storage", "_load_from_bytes"), nested) + STOP
    expect_calls(lb, ["torch.storage._load_from_bytes"])
    emit(d + "torch_load_from_bytes.pkl", lb, "pickle", False, ["PDG101"], ["torch.storage._load_from_bytes"],
         "torch.storage._load_from_bytes(b) = torch.load(BytesIO(b), weights_only=False) on a nested pickle that calls os.system. fickling's ML allowlist contains _load_from_bytes. A scanner that descends into the bytes should also report os.system.")

    rp = PROTO(2) + call(GLOBAL("runpy", "_run_code"), "print('pedigree-test')", {}) + STOP
    expect_calls(rp, ["runpy._run_code"])
    emit(d + "runpy_run_code.pkl", rp, "pickle", False, ["PDG101"], ["runpy._run_code"],
         "runpy._run_code(source, {}) = exec(source, globals).")

    pm = PROTO(2) + call(GLOBAL("pip", "main"), ["--version"]) + STOP
    expect_calls(pm, ["pip.main"])
    emit(d + "pip_main.pkl", pm, "pickle", False, ["PDG101"], ["pip.main"],
         "pip.main([...]) (CVE-2025-1716: picklescan < 0.0.21 did not list pip). Payload only asks for --version.")

    ci = (PROTO(4) + SG("code", "InteractiveInterpreter.runcode")
          + SG("code", "InteractiveInterpreter") + EMPTY_TUPLE + REDUCE
          + SHORT_BINUNICODE("print('pedigree-test')") + TUPLE2 + REDUCE + STOP)
    expect_calls(ci, ["code.InteractiveInterpreter.runcode", "code.InteractiveInterpreter"])
    emit(d + "code_interactive_runcode_p4.pkl", ci, "pickle", False, ["PDG101"],
         ["code.InteractiveInterpreter.runcode"],
         "Dotted STACK_GLOBAL('code','InteractiveInterpreter.runcode') called on a fresh InteractiveInterpreter: exec of source text.")

    pk = (PROTO(2) + GLOBAL("pkgutil", "resolve_name") + enc("os:system") + TUPLE1 + REDUCE
          + enc(CMD) + TUPLE1 + REDUCE + STOP)
    expect_calls(pk, ["pkgutil.resolve_name"])
    emit(d + "pkgutil_resolve_name.pkl", pk, "pickle", False, ["PDG101", "PDG108"], ["pkgutil.resolve_name"],
         "pkgutil.resolve_name('os:system') is a universal resolver; its result is then called (laundered call). The string 'os:system' never appears as a GLOBAL.")

    fp = (PROTO(2) + GLOBAL("functools", "partial") + GLOBAL("os", "system") + enc(CMD) + TUPLE2 + REDUCE
          + EMPTY_TUPLE + REDUCE + STOP)
    expect_calls(fp, ["functools.partial", "os.system"])
    emit(d + "functools_partial.pkl", fp, "pickle", False, ["PDG101", "PDG108"], ["functools.partial", "os.system"],
         "functools.partial(os.system, cmd)() - the call goes through the partial object (laundered call).")

    og = (PROTO(2) + GLOBAL("operator", "attrgetter") + enc("system") + TUPLE1 + REDUCE
          + GLOBAL("posixpath", "os") + TUPLE1 + REDUCE + enc(CMD) + TUPLE1 + REDUCE + STOP)
    expect_calls(og, ["operator.attrgetter", "posixpath.os"])
    emit(d + "operator_attrgetter.pkl", og, "pickle", False, ["PDG101", "PDG108"], ["operator.attrgetter"],
         "operator.attrgetter('system')(posixpath.os)(cmd): the os module comes in as the attribute posixpath.os and system is fetched by attrgetter, so no 'system' global exists.")

    ga = (PROTO(2) + GLOBAL("__builtin__", "getattr") + GLOBAL("posixpath", "os") + enc("system") + TUPLE2 + REDUCE
          + enc(CMD) + TUPLE1 + REDUCE + STOP)
    expect_calls(ga, ["builtins.getattr", "posixpath.os"])
    emit(d + "builtins_getattr_laundering.pkl", ga, "pickle", False, ["PDG101", "PDG108"], ["builtins.getattr"],
         "getattr(<os module via GLOBAL posixpath.os>, 'system') then REDUCE on the result: the dangerous callable is never a GLOBAL.")

    im = (PROTO(2) + GLOBAL("inspect", "getattr_static")
          + call(GLOBAL("importlib", "import_module"), "os") + enc("system") + TUPLE2 + REDUCE
          + enc(CMD) + TUPLE1 + REDUCE + STOP)
    expect_calls(im, ["inspect.getattr_static", "importlib.import_module"])
    emit(d + "importlib_import_module.pkl", im, "pickle", False, ["PDG101", "PDG108"],
         ["importlib.import_module"],
         "importlib.import_module('os') + inspect.getattr_static(mod, 'system') then call: 'suspicious, not dangerous' names that passed picklescan's default mode.")

    wb = PROTO(2) + call(GLOBAL("webbrowser", "open"), "http://127.0.0.1:9/pedigree-test") + STOP
    expect_calls(wb, ["webbrowser.open"])
    emit(d + "webbrowser_open.pkl", wb, "pickle", False, ["PDG101"], ["webbrowser.open"],
         "webbrowser.open(url): side effect (may launch a browser / a process). URL points at a closed local port.")

    so = PROTO(2) + GLOBAL("socket", "socket") + EMPTY_TUPLE + REDUCE + STOP
    expect_calls(so, ["socket.socket"])
    emit(d + "socket_socket.pkl", so, "pickle", False, ["PDG101"], ["socket.socket"],
         "socket.socket(): network access primitive (creates an unconnected socket).")

    ct = PROTO(2) + GLOBAL("ctypes", "CDLL") + NONE + TUPLE1 + REDUCE + STOP
    expect_calls(ct, ["ctypes.CDLL"])
    emit(d + "ctypes_cdll.pkl", ct, "pickle", False, ["PDG101"], ["ctypes.CDLL"],
         "ctypes.CDLL(None): FFI handle on the running process (from there libc.system is one getattr away).")

    cp = PROTO(2) + call(GLOBAL("cProfile", "run"), "print('pedigree-test')") + STOP
    expect_calls(cp, ["cProfile.run"])
    emit(d + "cprofile_run.pkl", cp, "pickle", False, ["PDG101"], ["cProfile.run"],
         "cProfile.run(statement) exec's the statement (stdlib callable that runs code).")

    nr = PROTO(2) + call(GLOBAL("numpy.testing._private.utils", "runstring"), "print('pedigree-test')", {}) + STOP
    expect_calls(nr, ["numpy.testing._private.utils.runstring"])
    emit(d + "numpy_testing_runstring.pkl", nr, "pickle", False, ["PDG101"],
         ["numpy.testing._private.utils.runstring"],
         "numpy.testing._private.utils.runstring(src, dict) = exec; an ML-library module that allowlists keyed on 'numpy' would pass.")

    tc = PROTO(2) + call(GLOBAL("torch.utils.collect_env", "run"), CMD) + STOP
    expect_calls(tc, ["torch.utils.collect_env.run"])
    emit(d + "torch_collect_env_run.pkl", tc, "pickle", False, ["PDG101"], ["torch.utils.collect_env.run"],
         "torch.utils.collect_env.run(cmd) runs a shell command; a 'torch.*' allow rule would pass it.")

    uu = PROTO(2) + call(GLOBAL("uuid", "_get_command_stdout"), "echo", "pedigree-test") + STOP
    expect_calls(uu, ["uuid._get_command_stdout"])
    emit(d + "uuid_get_command_stdout.pkl", uu, "pickle", False, ["PDG101"], ["uuid._get_command_stdout"],
         "uuid._get_command_stdout(cmd, args) spawns a process; uuid.UUID is benign so module-level allowlists of 'uuid' pass it.")


def opcode_tricks():
    d = "malicious/opcodes/"
    mem = (PROTO(4) + SHORT_BINUNICODE("os") + BINPUT(0) + POP
           + SHORT_BINUNICODE("system") + BINPUT(1) + POP
           + NONE + POP
           + BINGET(0) + BINGET(1) + STACK_GLOBAL
           + SHORT_BINUNICODE(CMD) + TUPLE1 + REDUCE + STOP)
    expect_calls(mem, ["os.system"])
    emit(d + "stack_global_memo.pkl", mem, "pickle", False, ["PDG101"], ["os.system"],
         "STACK_GLOBAL whose module and name strings come from the memo (BINPUT then BINGET), not from the opcodes right before it.")

    st = (PROTO(4) + b"S'os'\n" + b"S'system'\n" + STACK_GLOBAL
          + SHORT_BINUNICODE(CMD) + TUPLE1 + REDUCE + STOP)
    expect_calls(st, ["os.system"])
    emit(d + "stack_global_string_p0.pkl", st, "pickle", False, ["PDG101"], ["os.system"],
         "STACK_GLOBAL fed by protocol-0 STRING 'os' / 'system' (decoded to str, accepted by C).")

    ext = PROTO(2) + b"\x82\xc8" + enc(CMD) + TUPLE1 + REDUCE + STOP
    emit(d + "ext1_code.pkl", ext, "pickle", False, ["PDG105", "PDG103"], [],
         "EXT1 0xC8 (code 200) then REDUCE. The copyreg registry is empty by default, so this only resolves if the host ran copyreg.add_extension(...) (e.g. ('os','system',200)); nothing names the callable statically.")

    inst = MARK + b"S'" + CMD.encode() + b"'\n" + b"ios\nsystem\n" + STOP
    expect_calls(inst, ["os.system"])
    emit(d + "inst_os_system.pkl", inst, "pickle", False, ["PDG101"], ["os.system"],
         "INST os system: protocol 0 opcode that imports and calls in one step (no GLOBAL, no REDUCE).")

    obj = MARK + GLOBAL("os", "system") + BINUNICODE(CMD) + b"o" + POP + EMPTY_DICT + STOP
    expect_calls(obj, ["os.system"])
    emit(d + "obj_os_system.pkl", obj, "pickle", False, ["PDG101"], ["os.system"],
         "OBJ with os.system as the 'class' (a non-type callable is just called), result POPped, an empty dict returned. No REDUCE.")

    garb = PROTO(2) + call(GLOBAL("os", "system"), CMD) + POP + b"\xff\xfe pedigree garbage \x00\x01"
    seen, err = record(garb)
    assert "os.system" in seen and err and "invalid load key" in err, (seen, err)
    emit(d + "payload_then_garbage.pkl", garb, "pickle", False, ["PDG101", "PDG103"], ["os.system"],
         "nullifAI style: os.system is called, then the stream breaks (invalid opcode 0xff, no STOP). Scanners that give up on a parse error (or report only 'error') miss the call that already happened.")

    st2 = pickle.dumps({"weights": [1, 2, 3]}, protocol=2) + os_system_p2()
    expect_calls(st2, ["os.system"], stacked=True)
    emit(d + "stacked_benign_then_malicious.pkl", st2, "pickle", False, ["PDG101", "PDG107"], ["os.system"],
         "Two pickles in one file: a benign dict, then os.system. pickle.load(f) twice (or a loader that keeps reading) runs the second; scanners that stop at the first STOP miss it.")

    hm = PROTO(2) + NONE + b"r\xff\xff\xff\xff" + POP + NONE + STOP
    emit(d + "huge_memo_index.pkl", hm, "pickle", False, ["PDG106"], [],
         "LONG_BINPUT 0xFFFFFFFF: the C unpickler grows its memo array to 2*i slots (~64 GiB). Resource exhaustion; a scanner must not allocate by index.")

    hl = PROTO(4) + b"\x8d" + struct.pack("<Q", 1 << 62) + b"pedigree" + STOP
    emit(d + "huge_declared_length.pkl", hl, "pickle", False, ["PDG106", "PDG103"], [],
         "BINUNICODE8 declaring 2**62 bytes with 9 bytes present. A scanner must not allocate the declared length (also a truncated stream).")

    unk = PROTO(2) + GLOBAL("pedigree_corpus.models", "Net") + EMPTY_TUPLE + b"\x81" + EMPTY_DICT + BUILD + STOP
    emit(d + "unknown_global.pkl", unk, "pickle", False, ["PDG102"], [],
         "A global on neither list (pedigree_corpus.models.Net, NEWOBJ + BUILD): must be reported as unknown (PDG102), not as critical and not as clean.")


def frame_straddle(payload: bytes) -> bytes:
    """FORMATS-FACTS §1.2 / CPython issue 154848.

    FRAME(4) holds: SHORT_BINUNICODE, length L=8, and only 2 of its 8 data
    bytes.  pickletools (and C in-memory loads) read the 8 bytes straight
    through: 2 in the frame + 6 after it, then see SHORT_BINBYTES 'C' m
    covering the m payload bytes -> a str and a bytes object, POP, POP, None.
    The C Unpickler on a file object (io.BytesIO: torch.load, np.load,
    pickle.load(f)) reads SHORT_BINUNICODE data with _Unpickler_Read, which
    drops the 2 bytes left in the frame buffer and reads 8 fresh bytes after
    the frame; those swallow the 'C' m header, and the payload bytes then run
    as opcodes.  (BINBYTES data is read with _Unpickler_ReadInto, which does
    NOT skip -- so the straddled opcode must be a unicode/string/int one.)
    """
    L = 8
    m = len(payload)
    assert m < 128  # m is part of C's UTF-8 string: keep it ASCII
    frame_body = b"\x8c" + bytes([L]) + b"pd"
    after = b"A" * (L - 2) + b"C" + bytes([m]) + payload + POP + POP + NONE + STOP
    return PROTO(4) + FRAME(len(frame_body)) + frame_body + after


def frame_samples():
    d = "malicious/frame/"
    pr = SG("builtins", "print") + SHORT_BINUNICODE("pedigree-test") + TUPLE1 + REDUCE
    fs = frame_straddle(pr)
    # pickletools sees no GLOBAL at all
    assert genops_globals(fs) == [], genops_globals(fs)
    # C Unpickler on BytesIO (file mode) resolves and calls builtins.print
    seen, err = record(fs)
    assert seen == ["builtins.print"] and err is None, (seen, err)
    # pure-Python unpickler refuses the frame
    try:
        pickle._Unpickler(io.BytesIO(fs)).load()
        raise AssertionError("pure-python unpickler accepted the straddle")
    except pickle.UnpicklingError:
        pass
    emit(d + "frame_straddle_print.pkl", fs, "pickle", False, ["PDG104", "PDG102"], [],
         "CPython issue 154848: FRAME(4) ends 2 bytes into an 8-byte SHORT_BINUNICODE argument. pickletools/pickle.loads see a str and a bytes object and no GLOBAL; C Unpickler(BytesIO) skips 2 bytes and runs hidden STACK_GLOBAL builtins.print('pedigree-test'). Bypasses every genops-based scanner (picklescan, modelscan, fickling).")

    sy = SG("os", "system") + SHORT_BINUNICODE(CMD) + TUPLE1 + REDUCE
    fs2 = frame_straddle(sy)
    assert genops_globals(fs2) == []
    seen, err = record(fs2)
    assert seen == ["os.system"] and err is None, (seen, err)
    emit(d + "frame_straddle_os_system.pkl", fs2, "pickle", False, ["PDG101", "PDG104"], ["os.system"],
         "Same FRAME straddle, hidden payload os.system(cmd). Only the file-mode reading (torch.load, np.load, pickle.load(f)) sees the GLOBAL; the scanner must model that reading and report the hidden call.")
    return fs


# --------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------
def torch_reader_record(data: bytes) -> list[str]:
    """What torch's own C++ zip reader returns for data.pkl, fed to the recorder."""
    import torch

    tmp = OUT / ".tmp_reader.pt"
    tmp.write_bytes(data)
    try:
        r = torch._C.PyTorchFileReader(str(tmp))
        rec = r.get_record("data.pkl")
        rec = bytes(rec)
    finally:
        tmp.unlink()
    return record(rec)[0]


def torch_samples(fs_print: bytes):
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    cd, md = "clean/torch/", "malicious/torch/"
    (OUT / cd).mkdir(parents=True, exist_ok=True)
    (OUT / md).mkdir(parents=True, exist_ok=True)

    lin = nn.Linear(4, 2)
    sd = collections.OrderedDict((k, v.detach().clone()) for k, v in lin.state_dict().items())
    sd["step"] = torch.tensor([7], dtype=torch.int64)
    sd_path = OUT / cd / "state_dict.pt"
    torch.save(sd, sd_path)
    add(cd + "state_dict.pt", "torch-zip", True, [], [],
        "Real torch.save of a small state dict (Linear 4->2 + an int64 tensor). Zip format, protocol-2 data.pkl with BINPERSID storages.")
    base = zip_entries(str(sd_path))
    dpkl = [e for e in base if e["name"].endswith("/data.pkl")][0]["data"]
    # sanity: rewriting with our writer gives a file torch loads with weights_only=True
    rt = build_zip(base)
    chk = OUT / ".tmp_rt.pt"
    chk.write_bytes(rt)
    got = torch.load(chk, weights_only=True)
    chk.unlink()
    assert torch.equal(got["weight"], sd["weight"])

    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Dropout(0.1), nn.Flatten(), nn.Linear(8, 2))
    torch.save(seq, OUT / cd / "module_sequential.pt")
    add(cd + "module_sequential.pt", "torch-zip", True, [], [],
        "Real torch.save of a whole nn.Sequential(Conv2d, BatchNorm2d, ReLU, Dropout, Flatten, Linear): globals torch.nn.modules.*, torch._utils._rebuild_parameter, __builtin__.set, collections.OrderedDict.")

    torch.save(sd, OUT / cd / "legacy_state_dict.pt", _use_new_zipfile_serialization=False)
    add(cd + "legacy_state_dict.pt", "torch-legacy", True, ["PDG209"], [],
        "Real torch.save(..., _use_new_zipfile_serialization=False): five pickles (magic LONG1, 1001, sys_info, object, storage keys) + raw storages. Clean; only the info rule PDG209 (legacy serialization).")

    scripted = torch.jit.script(nn.Linear(3, 2))
    torch.jit.save(scripted, str(OUT / cd / "torchscript_linear.pt"))
    add(cd + "torchscript_linear.pt", "torch-script", True, [], [],
        "Real torch.jit.save of torch.jit.script(nn.Linear(3, 2)): data.pkl names __torch__.* classes (not Python imports), constants.pkl is ().")

    # real model
    ak = OUT / "clean/real/akiki-vad-0.0.6"
    ak.mkdir(parents=True, exist_ok=True)
    for f in ("akiki-vad.pt", "LICENSE", "SILERO-MIT.txt", "SOURCE.txt"):
        shutil.copyfile(AKIKI / f, ak / f)
    add("clean/real/akiki-vad-0.0.6/akiki-vad.pt", "torch-zip", True, [], [],
        "A real released model (PyPI akiki==0.0.6, Apache-2.0, see SOURCE.txt/LICENSE/SILERO-MIT.txt beside it): torch.save of a state dict, 15 storages.")

    # ---- malicious zips derived from the real state dict ----
    evil_pkl = inject(dpkl, SYSTEM_P2_OPS)
    expect_calls(evil_pkl, ["os.system"])

    def z(entries, rel, rules, note, globs=("os.system",), fmt="torch-zip", prepend=b""):
        emit(md + rel, prepend + build_zip(entries), fmt, False, ["PDG101", *rules] if globs else list(rules),
             list(globs), note)

    e = replace_member(base, "/data.pkl", evil_pkl)
    z(e, "zip_data_pkl_os_system.pt", [],
      "torch zip whose data.pkl is the real state dict with os.system(cmd)+POP injected after PROTO: torch.load(weights_only=False) runs it and still returns the state dict.")
    assert "os.system" in torch_reader_record(build_zip(e))

    e = copy.deepcopy(base)
    prefix = base[0]["name"].split("/")[0]
    e.insert(1, {"name": f"{prefix}/extra/payload.pkl", "data": os_system_p2()})
    z(e, "zip_extra_member_pkl.pt", [],
      "torch zip with a clean data.pkl and a malicious extra member <a>/extra/payload.pkl. torch ignores it, but a scanner must scan every pickle member.")

    e = replace_member(base, "/data.pkl", evil_pkl)
    [x for x in e if x["name"].endswith("/data.pkl")][0]["crc"] = 0xDEADBEEF
    z(e, "zip_bad_crc.pt", ["PDG201"],
      "CVE-2025-10156: malicious data.pkl with a wrong CRC-32. Python zipfile raises BadZipFile (picklescan/modelscan fail or skip), torch never checks CRCs and loads it.")
    assert "os.system" in torch_reader_record(build_zip(e))

    e = replace_member(base, "/data.pkl", evil_pkl)
    [x for x in e if x["name"].endswith("/data.pkl")][0]["lh_flags"] = 0x1
    z(e, "zip_encrypt_flag_local.pt", ["PDG202"],
      "CVE-2025-1945 class: encryption bit 0x1 set in the local header of data.pkl only (data is plaintext). Both zipfile and torch read flags from the central directory and load it; the payload must still be found.")
    assert "os.system" in torch_reader_record(build_zip(e))

    e = replace_member(base, "/data.pkl", evil_pkl)
    t = [x for x in e if x["name"].endswith("/data.pkl")][0]
    t["lh_flags"] = t["cd_flags"] = 0x1
    emit(md + "zip_encrypt_flag_central.pt", build_zip(e), "torch-zip", False, ["PDG202", "PDG101"], ["os.system"],
         "CVE-2025-1945: encryption bit 0x1 set on data.pkl in both headers, data actually plaintext and malicious (os.system). zipfile raises 'password required'; torch 2.15 refuses ('unsupported encryption'), older torch may not. A scanner should either scan the plaintext (PDG101 os.system) or report PDG207; only PDG202 is certain.")

    e = replace_member(base, "/data.pkl", evil_pkl)
    t = [x for x in e if x["name"].endswith("/data.pkl")][0]
    t["lh_name"] = t["name"][:-3] + "pkX"
    z(e, "zip_name_mismatch.pt", ["PDG203"],
      "CVE-2025-1944: local header says <a>/data.pkX, central directory says <a>/data.pkl (malicious). zipfile raises BadZipFile; torch uses the CD name and loads it.")
    assert "os.system" in torch_reader_record(build_zip(e))

    # Duplicates. Python zipfile always returns the LAST entry of a name.
    # torch's miniz reader binary-searches a name-sorted index, so which of two
    # equal names it returns depends on where they sit (measured with torch
    # 2.15: adjacent -> the second; far apart -> often the first).
    # FORMATS-FACTS §5.1 says "first"; we measure and record it per sample.
    i = [k for k, x in enumerate(base) if x["name"].endswith("/data.pkl")][0]
    e = copy.deepcopy(base)
    e.insert(i + 1, {"name": e[i]["name"], "data": evil_pkl})
    torch_sees = "malicious" if "os.system" in torch_reader_record(build_zip(e)) else "benign"
    z(e, "zip_duplicate_first_benign.pt", ["PDG204"],
      "Two adjacent <a>/data.pkl entries: first benign, last malicious. Python zipfile (picklescan, modelscan) reads the last = malicious; "
      f"torch 2.15's reader returns the {torch_sees} one here. A scanner reading by name sees only one of them.")

    chosen = None
    for j in range(i + 1, len(base) + 1):
        e = copy.deepcopy(base)
        e.insert(j, copy.deepcopy(e[i]))
        e[i]["data"] = evil_pkl
        if "os.system" in torch_reader_record(build_zip(e)):
            chosen = e
            break
    assert chosen is not None, "no placement makes torch read the first duplicate"
    z(chosen, "zip_duplicate_first_malicious.pt", ["PDG204"],
      "Two <a>/data.pkl entries: first malicious, last benign, placed so that torch 2.15's reader returns the first (malicious) one (verified with torch._C.PyTorchFileReader) "
      "while Python zipfile (picklescan, modelscan, fickling) reads the last = benign. Bypasses zipfile-based scanners.")

    e = replace_member(base, "/data.pkl", evil_pkl)
    z(e, "zip_bytes_prepended.pt", ["PDG205"],
      "64 junk bytes before a malicious torch zip. zipfile fixes offsets from the EOCD and opens it; torch.load treats it as legacy and fails. The scanner must still scan the members.",
      prepend=b"PEDIGREE-TEST-PREPENDED-JUNK-".ljust(64, b"\x00"))

    e = replace_member(base, "/data.pkl", fs_print)
    emit(md + "zip_frame_straddle.pt", build_zip(e), "torch-zip", False, ["PDG104", "PDG102"], [],
         "torch zip whose data.pkl is the FRAME straddle (issue 154848): torch.load wraps data.pkl in BytesIO, so the C unpickler runs the hidden builtins.print('pedigree-test'); pickletools sees no global.")
    assert torch_reader_record(build_zip(e)) == ["builtins.print"]

    # legacy with malicious object pickle
    raw = (OUT / cd / "legacy_state_dict.pt").read_bytes()
    pos = 0
    bounds = []
    for _ in range(5):
        for op, _a, p in pickletools.genops(raw[pos:]):
            if op.name == "STOP":
                bounds.append((pos, pos + p + 1))
                pos = pos + p + 1
                break
    o0, o1 = bounds[3]
    leg = raw[:o0] + inject(raw[o0:o1], SYSTEM_P2_OPS) + raw[o1:]
    expect_calls(leg, ["os.system"], stacked=True)
    emit(md + "legacy_object_pickle_os_system.pt", leg, "torch-legacy", False, ["PDG101", "PDG209"], ["os.system"],
         "Real legacy (non-zip) torch.save with os.system injected into the 4th pickle (the object pickle). Scanners that only read the first pickle of the stream miss it.")

    # legacy tar, built by hand (FORMATS-FACTS §2.4)
    members = [
        ("sys_info", pickle.dumps({"protocol_version": 1001, "little_endian": True,
                                   "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2)),
        ("pickle", os_system_p2()),
        ("storages", pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2)),
        ("tensors", pickle.dumps(0, protocol=2)),
    ]
    emit(md + "legacy_tar_pickle_os_system.pth", tar_bytes(members), "torch-legacy-tar", False,
         ["PDG101", "PDG209"], ["os.system"],
         "Hand-built torch<0.4 tar layout (PAX tar: sys_info, pickle, storages, tensors) whose 'pickle' member calls os.system. torch.load(weights_only=False) tries tarfile first and unpickles 'pickle'.")
    members[1] = ("pickle", pickle.dumps({"weights": [0.5, 1.5]}, protocol=2))
    emit(cd + "legacy_tar_clean.pth", tar_bytes(members), "torch-legacy-tar", True, ["PDG209"], [],
         "Hand-built torch<0.4 tar layout with benign pickles only (no storages). Clean apart from the PDG209 info finding.")

    # TorchScript with a malicious constants.pkl
    ts = zip_entries(str(OUT / cd / "torchscript_linear.pt"))
    ts = replace_member(ts, "/constants.pkl", os_system_p2())
    emit(md + "torchscript_constants_os_system.pt", build_zip(ts), "torch-script", False, ["PDG101"], ["os.system"],
         "Real TorchScript archive whose constants.pkl is replaced by an os.system pickle (constants.pkl is unpickled by the C++ unpickler; scanners that only look at data.pkl miss it).")

    # whole module with a user class -> __main__.Net (unknown global, not malicious)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

    Net.__module__ = "__main__"
    Net.__qualname__ = "Net"
    sys.modules["__main__"].Net = Net
    torch.save(Net(), OUT / md / "module_main_class.pt")
    add(md + "module_main_class.pt", "torch-zip", False, ["PDG102"], [],
        "Real torch.save of a whole user nn.Module: pickles the user class as __main__.Net, a global on neither list (PDG102). Not malicious; must not be PDG101 and must not be silent.")


# --------------------------------------------------------------------------
# numpy
# --------------------------------------------------------------------------
def npy_split(b: bytes) -> tuple[bytes, bytes]:
    assert b[:6] == b"\x93NUMPY"
    major = b[6]
    if major == 1:
        hl = struct.unpack("<H", b[8:10])[0]
        start = 10 + hl
    else:
        hl = struct.unpack("<I", b[8:12])[0]
        start = 12 + hl
    return b[:start], b[start:]


def numpy_samples():
    import numpy as np

    cd, md = "clean/numpy/", "malicious/numpy/"
    rng = np.random.default_rng(0)
    (OUT / cd).mkdir(parents=True, exist_ok=True)
    (OUT / md).mkdir(parents=True, exist_ok=True)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    np.save(OUT / cd / "float32.npy", a)
    add(cd + "float32.npy", "npy", True, [], [], "numpy.save of a float32 (4,5) array: no pickle at all.")
    np.save(OUT / cd / "float64_fortran.npy", np.asfortranarray(rng.standard_normal((3, 3))))
    add(cd + "float64_fortran.npy", "npy", True, [], [], "numpy.save of a Fortran-order float64 array.")

    b = io.BytesIO()
    np.savez(b, a=a, b=np.arange(10, dtype=np.int64))
    emit(cd + "savez.npz", b.getvalue(), "npz", True, [], [], "numpy.savez (stored zip of .npy members).")
    b = io.BytesIO()
    np.savez_compressed(b, a=a, b=np.arange(10, dtype=np.int64))
    emit(cd + "savez_compressed.npz", b.getvalue(), "npz", True, [], [], "numpy.savez_compressed (deflated .npy members).")

    obj = np.empty(4, dtype=object)
    obj[:] = [1, "two", [3, 4], {"five": 5}]
    b = io.BytesIO()
    np.save(b, obj, allow_pickle=True)
    objnpy = b.getvalue()
    emit(cd + "object_array_safe.npy", objnpy, "npy", True, [], [],
         "numpy.save of an object array holding an int, a str, a list and a dict: the data is a protocol-4 pickle using only numpy._core.multiarray._reconstruct / numpy.ndarray / numpy.dtype.")

    hdr, pk = npy_split(objnpy)
    evil = hdr + inject(pk, call(SG("os", "system"), CMD, p4=True) + POP)
    expect_calls(evil[len(hdr):], ["os.system"])
    emit(md + "object_array_os_system.npy", evil, "npy", False, ["PDG101"], ["os.system"],
         "Real object-array .npy whose pickle has os.system(cmd) injected: np.load(allow_pickle=True) runs it via pickle.load(fp).")

    emit(md + "object_array_os_system.npz", std_zip([("arr_0.npy", evil)], deflate=False), "npz", False,
         ["PDG101"], ["os.system"], "npz (stored zip) whose arr_0.npy member is the malicious object-array npy.")

    emit(md + "pickle_named_npy.npy", os_system_p2(), "pickle", False, ["PDG101", "PDG208"], ["os.system"],
         "A plain os.system pickle named .npy: np.load(allow_pickle=True) falls back to pickle.load for non-NUMPY magic. Extension does not match content.")


# --------------------------------------------------------------------------
# joblib / sklearn
# --------------------------------------------------------------------------
JOBLIB_COMPRESSORS = ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"]
JOBLIB_MAGIC = {"zlib": b"\x78", "gzip": b"\x1f\x8b", "bz2": b"BZ", "xz": b"\xfd7zXZ", "lzma": b"\x5d\x00", "lz4": b"\x04\x22\x4d\x18"}
JOBLIB_EXT = {"zlib": ".z", "gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "lzma": ".lzma", "lz4": ".lz4"}


class EvilReduce:
    """Pickles as posix.system('echo pedigree-test'); never called here."""

    def __reduce__(self):
        return (os.system, (CMD,))


def joblib_samples():
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    cd, md = "clean/joblib/", "malicious/joblib/"
    (OUT / cd).mkdir(parents=True, exist_ok=True)
    (OUT / md).mkdir(parents=True, exist_ok=True)

    payload = {"hook": EvilReduce(), "weights": np.arange(8, dtype=np.float32)}
    joblib.dump(payload, OUT / md / "reduce_posix_system.joblib")
    raw = (OUT / md / "reduce_posix_system.joblib").read_bytes()
    assert b"posix" in raw and b"system" in raw
    add(md + "reduce_posix_system.joblib", "joblib", False, ["PDG101"], ["posix.system"],
        "joblib.dump of {'hook': obj whose __reduce__ is os.system, 'weights': float32 array}: protocol-4 stream with posix.system and a NumpyArrayWrapper + raw array bytes.")
    for c in JOBLIB_COMPRESSORS:
        rel = md + "reduce_posix_system.joblib" + JOBLIB_EXT[c]
        joblib.dump(payload, OUT / rel, compress=(c, 3))
        assert (OUT / rel).read_bytes().startswith(JOBLIB_MAGIC[c]), c
        add(rel, "compressed", False, ["PDG101"], ["posix.system"],
            f"Same malicious joblib dump with joblib compress=('{c}', 3): the whole stream is {c}-compressed; a scanner must decompress before scanning.")

    rs = np.random.RandomState(0)
    X = rs.standard_normal((30, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    models = {
        "logreg": LogisticRegression(max_iter=200).fit(X, y),
        "random_forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y),
        "pipeline_scaler_logreg": Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=200))]).fit(X, y),
    }
    for name, mdl in models.items():
        rel = cd + f"sklearn_{name}.joblib"
        joblib.dump(mdl, OUT / rel)
        add(rel, "joblib", True, [], [], f"joblib.dump of a fitted scikit-learn {type(mdl).__name__} (tiny data, fixed seeds).")
        for c in JOBLIB_COMPRESSORS:
            relc = rel + JOBLIB_EXT[c]
            joblib.dump(mdl, OUT / relc, compress=(c, 3))
            add(relc, "compressed", True, [], [], f"joblib.dump of the fitted {type(mdl).__name__} with compress=('{c}', 3).")


# --------------------------------------------------------------------------
# plain clean pickles
# --------------------------------------------------------------------------
def clean_pickles():
    import numpy as np

    d = "clean/pickle/"
    obj = {
        "name": "pedigree-clean",
        "ints": [1, 2, 3, -4, 2**70],
        "floats": (0.5, 1e-3),
        "nested": {"a": [None, True, False], "b": b"\x00\x01raw"},
        "ordered": collections.OrderedDict([("x", 1), ("y", 2)]),
        "counter": collections.Counter("aab"),
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "date": datetime.date(2026, 1, 2),
        "delta": datetime.timedelta(days=1, seconds=2),
        "dec": Decimal("1.25"),
        "frac": Fraction(1, 3),
        "set": {1, 2},
        "frozen": frozenset({"k"}),
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "ints64": np.array([1, 2, 3], dtype=np.int64),
        "scalar": np.float64(2.5),
    }
    for proto in range(6):
        data = pickle.dumps(obj, protocol=proto)
        seen, err = record(data)
        assert err is None, err
        emit(d + f"mixed_p{proto}.pkl", data, "pickle", True, [], [],
             f"pickle.dumps protocol {proto} of dict/list/tuple/bytes/OrderedDict/Counter/datetime/date/timedelta/Decimal/Fraction/set/frozenset/numpy arrays and a numpy scalar. Globals: {', '.join(sorted(set(seen)))}.")


# --------------------------------------------------------------------------
# wrappers, bombs, paths
# --------------------------------------------------------------------------
def wrapper_samples():
    d = "malicious/wrappers/"
    evil = os_system_p2()
    inner_zip = std_zip([("model.pkl", evil)])
    emit(d + "zip_with_pickle.zip", inner_zip, "zip", False, ["PDG101"], ["os.system"],
         "An ordinary (deflated) zip holding model.pkl = os.system pickle.")
    emit(d + "7z_with_pickle.7z", seven_zip([("model.pkl", evil)]), "seven-zip", False, ["PDG101"], ["os.system"],
         "A 7z archive (py7zr, LZMA2) holding model.pkl = os.system pickle (nullifAI shipped 7z-compressed PyTorch models that picklescan could not open).")
    emit(d + "tar_with_pickle.tar", tar_bytes([("model.pkl", evil)]), "tar", False, ["PDG101"], ["os.system"],
         "A plain PAX tar holding model.pkl = os.system pickle.")
    emit(d + "tar_gz_with_pickle.tar.gz", tar_bytes([("model.pkl", evil)], gz=True), "compressed", False,
         ["PDG101"], ["os.system"], "A gzip-compressed tar (.tar.gz, gzip mtime 0) holding model.pkl = os.system pickle.")
    emit(d + "nested_zip_in_zip.zip", std_zip([("inner.zip", inner_zip)]), "zip", False, ["PDG101"], ["os.system"],
         "Two levels: outer.zip -> inner.zip -> model.pkl (os.system).")
    emit(d + "nested_7z_in_tar_gz.tar.gz", tar_bytes([("bundle/model.7z", seven_zip([("model.pkl", evil)]))], gz=True),
         "compressed", False, ["PDG101"], ["os.system"],
         "Two (three) levels: gzip -> tar -> 7z -> model.pkl (os.system).")
    emit(d + "7z_encrypted.7z", seven_zip([("model.pkl", evil)], password="pedigree"), "seven-zip", False,
         ["PDG207"], [],
         "7z with AES-encrypted content (password 'pedigree', file names visible): holds an os.system pickle that cannot be scanned without the password.")

    bd = "malicious/archive/"
    zeros = b"\x00" * (64 << 20)
    bomb = build_zip([{"name": "zeros.bin", "data": zeros, "method": 8}], align=0)
    assert len(bomb) < 100_000, len(bomb)
    emit(bd + "bomb_64mib_zeros.zip", bomb, "zip", False, ["PDG206"], [],
         f"Decompression bomb: one deflated member that expands to 64 MiB of zeros from {len(bomb)} bytes (ratio > 600:1, above the 200:1 limit for members > 1 MiB).")
    emit(bd + "zip_path_traversal.zip", std_zip([("../../pedigree-test.pkl", pickle.dumps([1, 2], protocol=2))]),
         "zip", False, ["PDG210"], [],
         "Zip member named ../../pedigree-test.pkl (benign pickle inside): unsafe member path (zip-slip).")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("model.pkl")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "/etc/passwd"
        ti.mtime = FIXED_MTIME
        t.addfile(ti)
    emit(bd + "tar_symlink_member.tar", raw.getvalue(), "tar", False, ["PDG210"], [],
         "Tar whose member model.pkl is a symlink to /etc/passwd: unsafe member path.")


# --------------------------------------------------------------------------
# README table
# --------------------------------------------------------------------------
def write_readme_table():
    readme = HERE / "README.md"
    text = readme.read_text()
    begin, end = "<!-- BEGIN SAMPLES (generated by make_corpus.py) -->", "<!-- END SAMPLES -->"
    rows = ["| path | format | clean | rules | globals | what it tests |", "|---|---|---|---|---|---|"]
    for m in MANIFEST:
        note = m["note"].replace("|", "\\|")
        rows.append(
            f"| `{m['path']}` | {m['format']} | {'yes' if m['clean'] else 'no'} | {' '.join(m['rules'])} | "
            f"{' '.join('`' + g + '`' for g in m['globals'])} | {note} |"
        )
    block = begin + "\n" + "\n".join(rows) + "\n" + end
    if begin in text and end in text:
        pre = text.split(begin)[0]
        post = text.split(end, 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    plain_pickles()
    gadget_pickles()
    opcode_tricks()
    fs = frame_samples()
    torch_samples(fs)
    numpy_samples()
    joblib_samples()
    clean_pickles()
    wrapper_samples()
    MANIFEST.sort(key=lambda m: m["path"])
    versions = {"python": sys.version.split()[0]}
    for mod in ("torch", "numpy", "joblib", "sklearn", "py7zr", "lz4"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    (HERE / "expected.json").write_text(json.dumps(MANIFEST, indent=2) + "\n")
    print("generated with", versions)
    write_readme_table()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(MANIFEST)} samples, {total / 1e6:.2f} MB under {OUT}")


if __name__ == "__main__":
    # TorchScript's generated code lists Final attributes in set order: pin the
    # hash seed so torchscript samples are byte-identical between runs.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    main()
