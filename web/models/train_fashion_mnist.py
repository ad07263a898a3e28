#!/usr/bin/env python3
"""Trains the demo model: MobileNetV2 with Triplet Attention (width 0.5) on Fashion-MNIST.

Run from the repository root (PyTorch on CPU, a few minutes per epoch on two cores):

    apt-get install dataset-fashion-mnist
    python3 web/models/train_fashion_mnist.py [--epochs 6]

Data: Debian's dataset-fashion-mnist (60,000 training and 10,000 test images). Images are
pixels/255 normalized by the training set's mean and std and repeated to three channels, as
`gaze eval --dataset fashion-mnist` feeds them (src/datasets.rs holds the same constants).
Writes web/models/fashion_mnist_mbv2_ta.safetensors (float32), the PyTorch predictions of the
10,000 test images (one byte each, for `gaze eval` to be compared with), and models.json.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from make_checkpoints import save_safetensors  # noqa: E402
from make_parity import MobileNetV2  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fashion_mnist import CLASSES, split  # noqa: E402

OUT = os.path.join(ROOT, "web", "models")
MEAN, STD = 0.2860, 0.3530
NAME = "fashion_mnist_mbv2_ta"


def load(name):
    images, labels = split(name)
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(labels.astype(np.int64))


def predict(model, x, batch=500):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i: i + batch]).argmax(1) for i in range(0, len(x), batch)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)
    train_x, train_y = load("train")
    test_x, test_y = load("t10k")
    model = MobileNetV2(ta=True, classes=10, width=0.5)
    steps = args.epochs * (len(train_x) // 128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x))
        start = time.time()
        for i in range(0, len(order) - 127, 128):
            idx_ = order[i: i + 128]
            x = train_x[idx_]
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = F.cross_entropy(model(x), train_y[idx_])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = (predict(model, test_x) == test_y).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy {acc:.4f}, {time.time() - start:.0f}s", flush=True)
    model.eval()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_safetensors(os.path.join(OUT, f"{NAME}.safetensors"), state)
    predictions = predict(model, test_x)
    accuracy = (predictions == test_y).float().mean().item()
    predictions.numpy().astype(np.uint8).tofile(os.path.join(OUT, f"{NAME}.predictions"))
    entry = {
        "name": "Fashion-MNIST · MobileNetV2 + Triplet Attention (width 0.5)",
        "arch": "mobilenet_v2_ta",
        "weights": f"{NAME}.safetensors",
        "labels": CLASSES,
        "input": [3, 28, 28],
        "mean": [MEAN] * 3,
        "std": [STD] * 3,
        "grayscale": True,
        "pytorch_test_accuracy": round(accuracy, 4),
    }
    with open(os.path.join(OUT, "models.json"), "w") as f:
        json.dump([entry], f, indent=1)
        f.write("\n")
    print(f"test accuracy {accuracy:.4f}; wrote {NAME}.safetensors, {NAME}.predictions, models.json")


if __name__ == "__main__":
    main()
