"""Writes the models `bench/compare.sh` runs, the same weights twice: `<arch>.pth` (a state_dict
for gaze) and `<arch>.onnx` (for ONNX Runtime Web and wonnx). torchvision's ResNet-50 and
MobileNetV2 have the official networks' keys and layers; random weights (seeded) are enough to
time them. Needs torch, torchvision and onnx."""

import argparse
import pathlib

import torch
import torchvision

ARCHS = {"resnet50": torchvision.models.resnet50, "mobilenet_v2": torchvision.models.mobilenet_v2}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("bench/out"))
    parser.add_argument("archs", nargs="*", default=list(ARCHS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for arch in args.archs:
        torch.manual_seed(0)
        model = ARCHS[arch]().eval()
        torch.save(model.state_dict(), args.out / f"{arch}.pth")
        x = torch.randn(1, 3, 224, 224)
        torch.onnx.export(model, (x,), str(args.out / f"{arch}.onnx"), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False)
        print(f"wrote {args.out / arch}.pth and .onnx")


if __name__ == "__main__":
    main()
