"""Fashion-MNIST as Debian's dataset-fashion-mnist package installs it: the IDX reader and the
class names, shared by the training script and web/samples/make_samples.py."""
import gzip

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def idx(path):
    """The uint8 array of an IDX file, shaped by its header."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def split(name):
    """(images [N, 28, 28], labels [N]) of "train" or "t10k"."""
    return idx(f"{DATA}/{name}-images-idx3-ubyte.gz"), idx(f"{DATA}/{name}-labels-idx1-ubyte.gz")
