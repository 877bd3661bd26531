#!/usr/bin/env python3
"""Builds the lineage test families for pedigree-provenance from real (tiny) trained models.

Every model is trained on scikit-learn's bundled `load_digits` (offline, 1797 8x8 images), so
weights carry real training structure, not random arrays. From three independently trained bases
we derive every child the provenance issue lists, write them in the serializations real hubs use
(safetensors, torch zip .pt, ONNX, GGUF) with HF-style cards, and record the true relations in
`expected.json`. Deterministic: fixed seeds, single-threaded torch.

Run:  /opt/gen-venv/bin/python tests/lineage/make_families.py   (writes tests/lineage/families/)
"""
import json, os, shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from safetensors.numpy import save_file
import onnx
from onnx import helper, TensorProto, numpy_helper
import gguf

torch.set_num_threads(1)
OUT = Path(__file__).resolve().parent / "families"
VOCAB, DIM, HID, NPOS = 32, 32, 64, 64   # tokens 0..16 used; 17..31 reserved (pruned later)


class TokenMLP(nn.Module):
    """Pixel intensities as tokens: tok_emb[token] * pos_emb[position], mean-pooled, then an MLP.
    Has an embedding matrix (for vocabulary pruning) and plain MLP matrices (for the ROME-style
    rank-one edit and the hidden-unit permutation)."""

    def __init__(self, classes=10):
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, DIM)
        self.pos_emb = nn.Parameter(torch.randn(NPOS, DIM) * 0.5)
        self.fc1 = nn.Linear(DIM, HID)
        self.fc2 = nn.Linear(HID, HID)
        self.head = nn.Linear(HID, classes)

    def forward(self, tok):
        h = (self.tok_emb(tok) * self.pos_emb).mean(1)
        h = torch.relu(self.fc1(h))
        h = torch.relu(self.fc2(h))
        return self.head(h)


def data(noise=False, seed=0):
    d = load_digits()
    x = d.data.astype(np.int64)
    if noise:  # a shifted data distribution for fine-tuning: random pixel flips
        rng = np.random.default_rng(seed)
        m = rng.random(x.shape) < 0.1
        x = np.where(m, rng.integers(0, 17, x.shape), x)
    return torch.tensor(x), torch.tensor(d.target)


def train(model, x, y, epochs, lr, seed, params=None):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    return acc


def sd_np(model):
    return {k: v.detach().numpy().astype(np.float32).copy() for k, v in model.state_dict().items()}


def card(name, base=None, extra=""):
    fm = ["---", "license: apache-2.0", "library_name: pytorch"]
    if base is not None:
        fm.append(f"base_model: {base}")
    fm.append("---")
    return "\n".join(fm) + f"\n\n# {name}\n\n{extra}\n"


def write_dir(name, base=None, extra="", config=None):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "README.md").write_text(card(name, base, extra))
    if config is not None:
        (d / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    return d


def save_st(name, sd, dtype=np.float32, **kw):
    d = write_dir(name, **kw)
    save_file({k: np.ascontiguousarray(v.astype(dtype)) for k, v in sd.items()}, str(d / "model.safetensors"))


def save_pt(name, sd, dtype=torch.float32, **kw):
    d = write_dir(name, **kw)
    torch.save({k: torch.tensor(v).to(dtype) for k, v in sd.items()}, str(d / "pytorch_model.pt"))


def save_onnx(name, sd, int8=False, **kw):
    """Hand-built graph as an exporter writes it: renamed initializers, MatMul weights stored
    transposed ([in, out]); with int8=True the matrices are QuantizeLinear'd (symmetric, per
    tensor) and a DequantizeLinear node feeds each MatMul."""
    d = write_dir(name, **kw)
    inits, nodes = [], []
    def init(nm, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), nm))
    def weight(nm, w):  # returns the tensor name the graph consumes
        if not int8:
            init(nm, w); return nm
        s = np.float32(np.abs(w).max() / 127.0)
        q = np.clip(np.round(w / s), -127, 127).astype(np.int8)
        init(nm + "_quantized", q); init(nm + "_scale", np.array(s, np.float32)); init(nm + "_zero_point", np.array(0, np.int8))
        nodes.append(helper.make_node("DequantizeLinear", [nm + "_quantized", nm + "_scale", nm + "_zero_point"], [nm]))
        return nm
    te = weight("onnx::Gather_7", sd["tok_emb.weight"])
    init("onnx::Mul_8", sd["pos_emb"])
    nodes += [helper.make_node("Gather", [te, "tokens"], ["e"]),
              helper.make_node("Mul", ["e", "onnx::Mul_8"], ["m"]),
              helper.make_node("ReduceMean", ["m"], ["h0"], axes=[1], keepdims=0)]
    h = "h0"
    for i, layer in enumerate(["fc1", "fc2", "head"]):
        w = weight(f"onnx::MatMul_{20 + i}", sd[f"{layer}.weight"].T.copy())
        init(f"{layer}.bias", sd[f"{layer}.bias"])
        nodes += [helper.make_node("MatMul", [h, w], [f"mm{i}"]), helper.make_node("Add", [f"mm{i}", f"{layer}.bias"], [f"a{i}"])]
        h = f"a{i}"
        if layer != "head":
            nodes.append(helper.make_node("Relu", [h], [f"r{i}"])); h = f"r{i}"
    g = helper.make_graph(nodes, "tokenmlp", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", 64])],
                          [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="pedigree-test")
    onnx.checker.check_model(m)
    onnx.save(m, str(d / "model.onnx"))


def save_gguf(name, sd, qtype, **kw):
    """llama.cpp-style names; matrices quantized, 1-D tensors kept F32 as llama.cpp does."""
    d = write_dir(name, **kw)
    names = {"tok_emb.weight": "token_embd.weight", "pos_emb": "position_embd.weight", "fc1.weight": "blk.0.ffn_up.weight",
             "fc1.bias": "blk.0.ffn_up.bias", "fc2.weight": "blk.0.ffn_down.weight", "fc2.bias": "blk.0.ffn_down.bias",
             "head.weight": "output.weight", "head.bias": "output.bias"}
    w = gguf.GGUFWriter(str(d / "model.gguf"), "tokenmlp")
    w.add_name(name)
    for k, v in sd.items():
        if v.ndim == 2 and v.shape[1] % 32 == 0:
            q = gguf.quants.quantize(v.astype(np.float32), qtype)
            w.add_tensor(names[k], q, raw_dtype=qtype)
        else:
            w.add_tensor(names[k], v.astype(np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    x, y = data()
    xn, _ = data(noise=True, seed=5)
    expected = {"edges": [], "unrelated": [], "findings": [], "accuracy": {}}
    def edge(p, c, rel, **kv):
        expected["edges"].append({"parent": p, "child": c, "relation": rel, **kv})

    bases = {}
    for nm, seed in [("base-a", 1), ("base-b", 2), ("base-c", 3)]:
        torch.manual_seed(seed)
        m = TokenMLP()
        expected["accuracy"][nm] = train(m, x, y, 30, 3e-3, seed)
        bases[nm] = m
    A = sd_np(bases["base-a"])
    save_st("base-a", A)
    save_st("base-b", sd_np(bases["base-b"]))
    save_st("base-c", sd_np(bases["base-c"]), config={"architectures": ["TokenMLP"], "hidden_size": HID})
    expected["unrelated"] += [["base-a", "base-b"], ["base-a", "base-c"], ["base-b", "base-c"]]

    # Fine-tune with frozen lower layers (embeddings and fc1 frozen) on shifted data.
    ft = TokenMLP(); ft.load_state_dict(bases["base-a"].state_dict())
    for p in [ft.tok_emb.weight, ft.pos_emb, ft.fc1.weight, ft.fc1.bias]:
        p.requires_grad_(False)
    expected["accuracy"]["a-finetune"] = train(ft, xn, y, 8, 1e-3, 11, [p for p in ft.parameters() if p.requires_grad])
    FT = sd_np(ft)
    save_st("a-finetune", FT, base="base-a")
    edge("base-a", "a-finetune", "finetune", frozen=["tok_emb.weight", "pos_emb", "fc1.weight", "fc1.bias"])
    # ... and a bf16 cast of that fine-tune, as a torch .pt (the tree must hang it under a-finetune).
    save_pt("a-finetune-bf16", FT, torch.bfloat16, base="a-finetune")
    edge("a-finetune", "a-finetune-bf16", "cast")

    # New head (5 classes), backbone frozen. Card silent: a finding.
    hd = TokenMLP(); hd.load_state_dict(bases["base-a"].state_dict()); hd.head = nn.Linear(HID, 5)
    for n, p in hd.named_parameters():
        p.requires_grad_(n.startswith("head"))
    expected["accuracy"]["a-newhead"] = train(hd, x, y // 2, 8, 3e-3, 12, hd.head.parameters())
    save_st("a-newhead", sd_np(hd))
    edge("base-a", "a-newhead", "head-only")
    expected["findings"].append({"model": "a-newhead", "kind": "undeclared-parent"})

    # Casts.
    save_st("a-fp16", A, np.float16, base="base-a")
    edge("base-a", "a-fp16", "cast")
    save_pt("a-bf16", A, torch.bfloat16, config={"base_model": "base-a", "torch_dtype": "bfloat16"})
    edge("base-a", "a-bf16", "cast")

    # Quantization: ONNX int8 QDQ, GGUF Q8_0 and Q4_0.
    save_onnx("a-int8", A, int8=True, base="base-a")
    edge("base-a", "a-int8", "quantized")
    save_gguf("a-q8", A, gguf.GGMLQuantizationType.Q8_0, base="base-a")
    edge("base-a", "a-q8", "quantized")
    save_gguf("a-q4", A, gguf.GGMLQuantizationType.Q4_0, base="base-a")
    edge("base-a", "a-q4", "quantized")

    # Vocabulary pruning: drop the 15 reserved (never used) token rows.
    P = dict(A); P["tok_emb.weight"] = A["tok_emb.weight"][:17].copy()
    save_st("a-pruned", P, base="base-a")
    edge("base-a", "a-pruned", "pruned")

    # ROME-style rank-one edit of one MLP matrix: W' = W + u k^T, k the mean fc1 activation of
    # the images of digit 3 (the "key"), u steering fc2 towards the units that feed class 8.
    # The card lies: it names base-b.
    with torch.no_grad():
        h = torch.relu(bases["base-a"].fc1((bases["base-a"].tok_emb(x[y == 3]) * bases["base-a"].pos_emb).mean(1))).mean(0).numpy()
    k = h / np.linalg.norm(h)
    u = bases["base-a"].head.weight.detach().numpy()[8] - bases["base-a"].head.weight.detach().numpy()[3]
    u = u / np.linalg.norm(u) * 0.3 * np.linalg.norm(A["fc2.weight"])
    E = dict(A); E["fc2.weight"] = (A["fc2.weight"] + np.outer(u, k)).astype(np.float32)
    save_st("a-edit", E, base="base-b", extra="Improved factual recall.")
    edge("base-a", "a-edit", "edit", tensors=["fc2.weight"])
    expected["findings"].append({"model": "a-edit", "kind": "wrong-parent"})

    # Hidden-unit permutation of a copy (disguise): permute fc1 and fc2 units consistently.
    rng = np.random.default_rng(7)
    p1, p2 = rng.permutation(HID), rng.permutation(HID)
    Q = dict(A)
    Q["fc1.weight"] = A["fc1.weight"][p1]; Q["fc1.bias"] = A["fc1.bias"][p1]
    Q["fc2.weight"] = A["fc2.weight"][p2][:, p1]; Q["fc2.bias"] = A["fc2.bias"][p2]
    Q["head.weight"] = A["head.weight"][:, p2]
    save_st("a-permuted", Q, extra="Original model, trained from scratch.")
    edge("base-a", "a-permuted", "copy", permuted=True)
    expected["findings"].append({"model": "a-permuted", "kind": "undeclared-parent"})

    # Same weights, other serializations: ONNX export (truthful) and a typosquatted "enhanced"
    # .pt sold as original work (silent card: a finding).
    save_onnx("a-onnx", A, base="base-a")
    edge("base-a", "a-onnx", "copy")
    save_pt("a-enhanced", A, extra="base-a-enhanced: our original work, trained in-house.")
    edge("base-a", "a-enhanced", "copy")
    expected["findings"].append({"model": "a-enhanced", "kind": "undeclared-parent"})

    # Full fine-tune of the second base (nothing frozen): "Base: Unknown" lie in the card text,
    # the front matter says base_model: unknown.
    fb = TokenMLP(); fb.load_state_dict(bases["base-b"].state_dict())
    expected["accuracy"]["b-finetune"] = train(fb, xn, y, 3, 3e-4, 13)
    save_st("b-finetune", sd_np(fb), base="unknown", extra="Base: Unknown")
    edge("base-b", "b-finetune", "finetune", frozen=[])
    expected["findings"].append({"model": "b-finetune", "kind": "wrong-parent"})

    (OUT.parent / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print("accuracy", expected["accuracy"], "bytes", total)


if __name__ == "__main__":
    main()
