#!/usr/bin/env python3
"""Runs IBM ART's Activation Clustering and Spectral Signatures on the activations pedigree
exported (`pedigree probe activation-clustering --lab DIR --export-npy NPY`), and prints
precision/recall against the lab's ground truth, for comparison with pedigree's own numbers.

ART's defences normally pull activations from a wrapped classifier; here a stub classifier
hands them the exported penultimate activations, so both tools judge the very same vectors.
ART's STRIP is not compared: it wraps a live classifier (it must re-run the model on
superimposed inputs), which cannot be fed from exported arrays.

    .venv/bin/python art_compare.py NPY_DIR
"""
import json
import sys
import time

import numpy as np


class ExportedActivations:
    """The slice of ART's classifier interface that the two defences use."""

    def __init__(self, acts, nb_classes):
        self.acts = acts
        self.nb_classes = nb_classes
        self.layer_names = ["penultimate", "logits"]
        self.input_shape = (1,)
        self.clip_values = None
        self.channels_first = False

    def get_activations(self, x, layer=None, batch_size=128, framework=False):
        return self.acts[np.asarray(x, dtype=np.int64).reshape(-1)]

    def predict(self, x, batch_size=128, **kwargs):
        raise NotImplementedError("not needed: activations are exported")


def pr(flagged, truth):
    flagged = np.asarray(flagged, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    hit = np.sum(flagged & truth)
    p = hit / max(flagged.sum(), 1)
    r = hit / max(truth.sum(), 1)
    return float(p), float(r), int(flagged.sum())


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "out/npy"
    acts = np.load(f"{d}/activations.npy")
    labels = np.load(f"{d}/labels.npy")
    poison = np.load(f"{d}/is_poison.npy").astype(bool)
    n, classes = len(labels), int(labels.max()) + 1
    y = np.eye(classes)[labels]
    x = np.arange(n).reshape(n, 1)
    clf = ExportedActivations(acts, classes)
    out = {}

    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

    t = time.time()
    ac = ActivationDefence(clf, x, y)
    # ART's defaults: 2 clusters, PCA to 10 dims, KMeans, "smaller" analysis.
    _, is_clean = ac.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA")
    p, r, f = pr(np.asarray(is_clean) == 0, poison)
    out["art_activation_clustering"] = {"precision": p, "recall": r, "flagged": f, "seconds": time.time() - t}

    t = time.time()
    ss = SpectralSignatureDefense(clf, x, y, batch_size=512, eps_multiplier=1.5, expected_pp_poison=0.3)
    _, is_clean = ss.detect_poison()
    p, r, f = pr(np.asarray(is_clean) == 0, poison)
    out["art_spectral_signatures"] = {"precision": p, "recall": r, "flagged": f, "seconds": time.time() - t}

    out["samples"] = n
    out["poisoned"] = int(poison.sum())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
