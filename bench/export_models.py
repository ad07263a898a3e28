"""Writes the models `bench/compare.sh` runs, the same weights twice: `<arch>.pth` (a state_dict
for gaze) and `<arch>.onnx` (for ONNX Runtime Web and wonnx). torchvision's ResNet-50 and
MobileNetV2 have the official networks' keys and layers; random weights (seeded) are enough to
time them. Needs torch, torchvision and onnx."""

import argparse
import pathlib

import onnx
import onnx.numpy_helper
import torch
import torchvision

ARCHS = {"resnet50": torchvision.models.resnet50, "mobilenet_v2": torchvision.models.mobilenet_v2}


def for_wonnx(model):
    """The same computation in the form wonnx 0.5 takes: the shape of every intermediate value
    recorded, and the classifier's Gemm with its weight stored transposed (transB=0), since
    wonnx's Gemm has no transB. ONNX Runtime runs either form."""
    weights = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        trans_b = next((a for a in node.attribute if a.name == "transB"), None)
        if node.op_type == "Gemm" and trans_b is not None and trans_b.i == 1:
            w = weights[node.input[1]]
            w.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(w).T.copy(), w.name))
            trans_b.i = 0
    return onnx.shape_inference.infer_shapes(model)


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
        onnx_path = str(args.out / f"{arch}.onnx")
        torch.onnx.export(model, (x,), onnx_path, input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False)
        onnx.save(for_wonnx(onnx.load(onnx_path)), onnx_path)
        print(f"wrote {args.out / arch}.pth and .onnx")


if __name__ == "__main__":
    main()
