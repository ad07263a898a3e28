#!/usr/bin/env python3
"""Trains the demo models, one per paper, on Fashion-MNIST.

Run from the repository root (PyTorch on CPU):

    apt-get install dataset-fashion-mnist
    python3 web/models/train_fashion_mnist.py --model mbv2_ta        # a few minutes per epoch
    python3 web/models/train_fashion_mnist.py --model mbv2_ca
    python3 web/models/train_fashion_mnist.py --model aff_resnet18
    python3 web/models/train_fashion_mnist.py --model san10_pairwise # about an hour, on a subset

Data: Debian's dataset-fashion-mnist (60,000 training and 10,000 test images). Images are
pixels/255 normalized by the training set's mean and std, repeated to three channels and
upscaled by pixel replication to the model's input size (models.json's `replicate`), as
`gaze eval --manifest` feeds them and the page treats photos (src/datasets.rs holds the same
constants).

The networks are the papers' own architectures, narrowed so that each file stays under 8 MB:
MobileNetV2 at width 0.5 (an official option), and ResNet-18 and SAN10 with fewer channels per
stage than the papers' 64-channel base (gaze reads the widths from the weights).

Writes web/models/fashion_mnist_<model>.safetensors, the PyTorch predictions of the 10,000 test
images (one byte each, for `gaze eval --compare`), and the model's entry in models.json.
"""
import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from make_checkpoints import save_safetensors  # noqa: E402
from make_parity import SAN, MobileNetV2, MobileNetV2CA, ResNet  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fashion_mnist import CLASSES, split  # noqa: E402

OUT = os.path.join(ROOT, "web", "models")
MEAN, STD = 0.2860, 0.3530


@dataclass
class Recipe:
    name: str
    arch: str
    make: object
    size: int = 28  # input side: 28 times an integer, reached by pixel replication
    epochs: int = 6
    batch: int = 128
    lr: float = 3e-3
    subset: int = 0  # train on this many images (0: all 60,000)
    dtype: torch.dtype = torch.float32
    options: dict = field(default_factory=dict)


RECIPES = {
    "mbv2_ta": Recipe(
        "Fashion-MNIST · MobileNetV2 + Triplet Attention (width 0.5)",
        "mobilenet_v2_ta",
        lambda: MobileNetV2(ta=True, classes=10, width=0.5),
    ),
    "mbv2_ca": Recipe(
        "Fashion-MNIST · MobileNetV2 + Coordinate Attention (width 0.5)",
        "mobilenet_v2_ca",
        lambda: MobileNetV2CA(classes=10, width=0.5),
        epochs=8,
    ),
    "aff_resnet18": Recipe(
        "Fashion-MNIST · AFF-ResNet-18 (small input, 16-channel base)",
        "aff_resnet18",
        lambda: ResNet(18, "aff", small_input=True, classes=10, base=16),
        epochs=8,
        options={"small_input": "true"},
    ),
    "san10_pairwise": Recipe(
        "Fashion-MNIST · SAN10 pairwise (32-channel base, 140 px)",
        "san10_pairwise",
        lambda: SAN(0, [2, 1, 2, 4, 1], classes=10, base=32),
        size=140,
        epochs=2,
        batch=32,
        lr=2e-3,
        subset=10000,
        dtype=torch.float16,
    ),
}


def load(name, size):
    images, labels = split(name)
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - MEAN) / STD
    x = x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return x, torch.from_numpy(labels.astype(np.int64))


def upscale(x, size):
    """Pixel replication to `size`, done per batch so that big inputs never sit in memory."""
    scale = size // x.shape[-1]
    return x.repeat_interleave(scale, -1).repeat_interleave(scale, -2) if scale > 1 else x


def predict(model, x, size, batch=100):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(upscale(x[i: i + batch], size)).argmax(1) for i in range(0, len(x), batch)])


def stored(model, dtype):
    """The state dict as the file holds it, and the model put back to exactly those values."""
    state = {k: v.to(dtype) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    return state


def train(recipe, seed):
    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count() or 2)))
    train_x, train_y = load("train", recipe.size)
    test_x, test_y = load("t10k", recipe.size)
    if recipe.subset:
        keep = torch.randperm(len(train_x))[: recipe.subset]
        train_x, train_y = train_x[keep], train_y[keep]
    model = recipe.make()
    b = recipe.batch
    steps = recipe.epochs * (len(train_x) // b)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(train_x))
        start = time.time()
        for step, i in enumerate(range(0, len(order) - b + 1, b)):
            idx_ = order[i: i + b]
            x = train_x[idx_]
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = F.cross_entropy(model(upscale(x, recipe.size)), train_y[idx_])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0:
                print(f"epoch {epoch + 1} step {step}: loss {loss.item():.3f}, {time.time() - start:.0f}s", flush=True)
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, {time.time() - start:.0f}s", flush=True)
    return model, test_x, test_y


def write_entry(key, entry):
    """Puts `entry` into models.json in RECIPES' order, keeping the other models' entries."""
    path = os.path.join(OUT, "models.json")
    entries = json.load(open(path)) if os.path.exists(path) else []
    by_id = {e.get("id"): e for e in entries}
    by_id[key] = entry
    ordered = [by_id[k] for k in RECIPES if k in by_id]
    with open(path, "w") as f:
        json.dump(ordered, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=RECIPES, default="mbv2_ta")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    recipe = RECIPES[args.model]
    if args.epochs:
        recipe.epochs = args.epochs
    model, test_x, test_y = train(recipe, args.seed)
    model.eval()
    stem = f"fashion_mnist_{args.model}"
    save_safetensors(os.path.join(OUT, f"{stem}.safetensors"), stored(model, recipe.dtype), recipe.dtype)
    predictions = predict(model, test_x, recipe.size)
    accuracy = (predictions == test_y).float().mean().item()
    predictions.numpy().astype(np.uint8).tofile(os.path.join(OUT, f"{stem}.predictions"))
    entry = {
        "id": args.model,
        "name": recipe.name,
        "arch": recipe.arch,
        "weights": f"{stem}.safetensors",
        "labels": CLASSES,
        "input": [3, recipe.size, recipe.size],
        "mean": [MEAN] * 3,
        "std": [STD] * 3,
        "grayscale": True,
        "pytorch_test_accuracy": round(accuracy, 4),
    }
    if recipe.size > 28:
        entry["replicate"] = recipe.size // 28
    if recipe.options:
        entry["options"] = recipe.options
    write_entry(args.model, entry)
    print(f"test accuracy {accuracy:.4f}; wrote {stem}.safetensors, {stem}.predictions, models.json")


if __name__ == "__main__":
    main()
