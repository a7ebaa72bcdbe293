"""Rebuild ignite_lab/data/mnist_sample from the full MNIST .gz files.

1,000 train and 200 test images per class, fixed seeds, byte-identical output.
"""

import gzip
import hashlib
import random
import struct
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist"


def read(name):
    with gzip.open(f"{src}/{name}", "rb") as f:
        return f.read()


def sample(prefix, per_class, seed):
    imgs = read(f"{prefix}-images-idx3-ubyte.gz")
    labs = read(f"{prefix}-labels-idx1-ubyte.gz")
    n = struct.unpack(">I", labs[4:8])[0]
    labels = labs[8:]
    rng = random.Random(seed)
    by = {c: [i for i in range(n) if labels[i] == c] for c in range(10)}
    chosen = sorted(i for c in range(10) for i in rng.sample(by[c], per_class))
    rng.shuffle(chosen)
    out_i = struct.pack(">IIII", 2051, len(chosen), 28, 28) + b"".join(
        imgs[16 + i * 784 : 16 + (i + 1) * 784] for i in chosen
    )
    out_l = struct.pack(">II", 2049, len(chosen)) + bytes(labels[i] for i in chosen)
    for data, kind in ((out_i, "images-idx3-ubyte"), (out_l, "labels-idx1-ubyte")):
        path = f"ignite_lab/data/mnist_sample/{prefix}-{kind}.gz"
        with open(path, "wb") as f:
            f.write(gzip.compress(data, compresslevel=9, mtime=0))
        print(path, hashlib.md5(open(path, "rb").read()).hexdigest())


sample("train", 1000, 0)
sample("t10k", 200, 1)
