"""Writes the models `bench/compare.sh` runs, the same weights three times: `<arch>.pth` (a
state_dict for gaze), `<arch>.onnx` (for ONNX Runtime Web and wonnx) and `<arch>.tfjs.json` with
`<arch>.tfjs.bin` (an op list and its BN-folded weights, which bench/compare.html runs with
TF.js ops), and `<arch>.expected.json`: PyTorch's logits for the input the page feeds, to check
the peers' outputs. torchvision's ResNet-50 and MobileNetV2 have the official networks' keys and
layers; random weights (seeded) are enough to time them. Needs torch, torchvision and onnx."""

import argparse
import json
import operator
import pathlib

import onnx
import onnx.numpy_helper
import torch
import torch.fx.experimental.optimization
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


def page_input():
    """The input bench/compare.html feeds every runtime: ((i * 7919) % 1000) / 500 - 1 over the
    NCHW elements."""
    i = torch.arange(3 * 224 * 224, dtype=torch.int64)
    return (((i * 7919) % 1000).float() / 500 - 1).reshape(1, 3, 224, 224)


def for_tfjs(model):
    """The network as a list of TF.js-shaped ops over named NHWC values, BatchNorm folded into
    the convs (torch.fx traces the module; `fuse` folds conv + BN), and the weights in one
    float32 blob: conv kernels as HWIO (depthwise as HW C 1), the classifier as [in, out]."""
    graph = torch.fx.experimental.optimization.fuse(torch.fx.symbolic_trace(model))
    modules = dict(graph.named_modules())
    blob, ops = [], []
    size = 0

    def put(t):
        nonlocal size
        blob.append(t.detach().contiguous().numpy().astype("float32").ravel())
        size += blob[-1].size
        return {"offset": size - blob[-1].size, "shape": list(t.shape)}

    def name(arg):
        return arg.name

    for node in graph.graph.nodes:
        op, target = node.op, node.target
        m = modules.get(target) if op == "call_module" else None
        args = [name(a) for a in node.args if isinstance(a, torch.fx.Node)]
        if op == "placeholder":
            ops.append({"op": "input", "out": node.name})
        elif op == "output":
            ops.append({"op": "output", "in": args})
        elif isinstance(m, torch.nn.Conv2d):
            assert m.padding_mode == "zeros" and m.padding[0] == m.padding[1]
            assert m.stride[0] == m.stride[1] and m.dilation == (1, 1)
            depthwise = m.groups > 1
            assert not depthwise or m.groups == m.in_channels == m.out_channels
            # [O, I/g, kh, kw] -> HWIO, or for depthwise [C, 1, kh, kw] -> [kh, kw, C, 1].
            w = m.weight.permute(2, 3, 0, 1) if depthwise else m.weight.permute(2, 3, 1, 0)
            bias = m.bias if m.bias is not None else torch.zeros(m.out_channels)
            ops.append({"op": "depthwise" if depthwise else "conv", "in": args, "out": node.name,
                        "stride": m.stride[0], "pad": m.padding[0], "weight": put(w),
                        "bias": put(bias)})
        elif isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)):
            ops.append({"op": type(m).__name__.lower(), "in": args, "out": node.name})
        elif isinstance(m, torch.nn.MaxPool2d):
            ops.append({"op": "maxpool", "in": args, "out": node.name, "size": m.kernel_size,
                        "stride": m.stride, "pad": m.padding})
        elif isinstance(m, torch.nn.AdaptiveAvgPool2d) or target is torch.nn.functional.adaptive_avg_pool2d:
            ops.append({"op": "mean", "in": args[:1], "out": node.name})
        elif target is torch.flatten or isinstance(m, torch.nn.Dropout):
            ops.append({"op": "identity", "in": args, "out": node.name})
        elif isinstance(m, torch.nn.Linear):
            ops.append({"op": "linear", "in": args, "out": node.name, "weight": put(m.weight.T),
                        "bias": put(m.bias)})
        elif target in (operator.add, torch.add):
            ops.append({"op": "add", "in": args, "out": node.name})
        else:
            raise SystemExit(f"for_tfjs: no TF.js form for {node.format_node()}")
    return ops, b"".join(b.tobytes() for b in blob)


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
        ops, blob = for_tfjs(model)
        (args.out / f"{arch}.tfjs.json").write_text(json.dumps({"ops": ops}))
        (args.out / f"{arch}.tfjs.bin").write_bytes(blob)
        with torch.no_grad():
            logits = model(page_input())[0].tolist()
        (args.out / f"{arch}.expected.json").write_text(json.dumps({"logits": logits}))
        print(f"wrote {args.out / arch}.pth, .onnx, .tfjs.json, .tfjs.bin and .expected.json")


if __name__ == "__main__":
    main()
