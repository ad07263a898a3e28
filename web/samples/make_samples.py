#!/usr/bin/env python3
"""Writes the page's sample images: the first test image of each Fashion-MNIST class, as the
28×28 grayscale PNG the dataset stores (Debian's dataset-fashion-mnist), and samples.json."""
import json
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "models"))
from fashion_mnist import CLASSES, split  # noqa: E402


def main():
    images, labels = split("t10k")
    samples = []
    for label, name in enumerate(CLASSES):
        i = int(np.argmax(labels == label))
        file = f"{name.split('/')[0].lower().replace(' ', '_')}.png"
        Image.fromarray(images[i], mode="L").save(os.path.join(HERE, file), optimize=True)
        samples.append({"file": file, "label": name, "test_index": i})
    with open(os.path.join(HERE, "samples.json"), "w") as f:
        json.dump(samples, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
