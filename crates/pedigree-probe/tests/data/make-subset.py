#!/usr/bin/env python3
"""Cuts the committed Fashion-MNIST test subset out of the Debian package.

Takes the first N_TRAIN training images and the first N_TEST test images (the original order,
which is already class-balanced to within a few percent) and writes them back as gzipped IDX
files with the same layout as the originals, so the crate reads both with one parser.

    python3 make-subset.py [/usr/share/datasets/fashion-mnist] [out-dir]
"""
import gzip
import os
import struct
import sys

N_TRAIN = 2000
N_TEST = 500


def cut(src, dst, n):
    with gzip.open(src, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = list(struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim]))
    per_item = 1
    for d in dims[1:]:
        per_item *= d
    head = 4 + 4 * ndim
    dims[0] = n
    out = struct.pack(">I", magic) + struct.pack(">" + "I" * ndim, *dims)
    out += data[head : head + n * per_item]
    # mtime=0 keeps the output byte-identical between runs.
    with open(dst, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as g:
        g.write(out)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__))
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{split}-{kind}-ubyte.gz"
            cut(os.path.join(src, name), os.path.join(out, name), n)
            print(name, n)


if __name__ == "__main__":
    main()
