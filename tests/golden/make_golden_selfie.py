"""MediaPipe selfie segmentation: weights to safetensors, test photo, TFLite golden mask.

Run from the repository root with a venv holding `tflite ai-edge-litert numpy safetensors
pillow scikit-image` (and optionally `torch`, for --torch):

    python tests/golden/make_golden_selfie.py [--tflite path/to/model.tflite] [--torch]
        [--model square|landscape]

Without --tflite the script downloads the `mediapipe==0.10.14` wheel from PyPI (no
dependencies) and takes `mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite`
and the wheel's Apache-2.0 licence from it. It writes:

- models/selfie_segmentation/model.safetensors: every weight of the model in PyTorch
  layouts (conv `[O, I/g, kh, kw]`, transposed conv `[I, O, kh, kw]`), fp16 as stored in
  the .tflite file, named after the TFLite layers (`conv2d_3.weight`, `segment.bias`, ...);
  models/selfie_segmentation/LICENSE is the wheel's licence text.
- examples/data/astronaut.png: scikit-image's `astronaut` (NASA, public domain), 512x512.
- tests/golden/selfie/mask.safetensors: TFLite's output probabilities `[1, 1, 256, 256]`
  (f32) for the astronaut reduced to 256x256 by 2x2 box averaging of the 8-bit pixels,
  scaled to [0, 1] (the model's input range, MediaPipe's ImageToTensorCalculator
  `output_tensor_float_range {0, 1}`): `x = float32(sum of 4 pixels) / float32(1020)`.

TFLite's Python interpreter has no kernel for MediaPipe's custom op
`Convolution2DTransposeBias` (the model's last layer), so the golden is taken from a copy
of the model whose operator list is cut just before that op (an in-place edit of the
flatbuffer: the operator vector's length and the subgraph output), and the last layer,
a 2x2 stride-2 transposed convolution with bias followed by a sigmoid, is applied in
float64 numpy from the same fp16 weights with TFLite's TransposeConv semantics
(`out[2i + a, 2j + b] += in[i, j, c] * w[0, a, b, c]`, no kernel flip; padding SAME with
kernel 2 and stride 2 adds none).

With `--model landscape` it does the same for `selfie_segmentation_landscape.tflite`
(input 144 x 256, the same layers and names except the last, `conv2d_transpose`):
models/selfie_segmentation/landscape.safetensors, and
tests/golden/selfie/landscape_mask.safetensors `[1, 1, 144, 256]` for rows 112 .. 400 of
the astronaut (a 288 x 512 band through her face) reduced by the same 2x2 box averaging.

With --torch the script also builds the network from torch.nn.functional ops (with
TensorFlow's asymmetric SAME padding), checks it against TFLite's mask, and times it on the
CPU (the PyTorch figure in the benchmark notes).
"""
import argparse
import glob
import io
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np
import tflite
from safetensors.numpy import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
WHEEL = "mediapipe==0.10.14"
MODELS_IN_WHEEL = {
    "square": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "landscape": "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
}
# The transposed convolution's layer name, per model.
LAST = {"square": "segment", "landscape": "conv2d_transpose"}
CUSTOM_OP = "Convolution2DTransposeBias"


def fetch_from_wheel(which):
    tmp = tempfile.mkdtemp()
    subprocess.check_call(
        [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", tmp, "-q"]
    )
    wheel = glob.glob(os.path.join(tmp, "mediapipe-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        model = z.read(MODELS_IN_WHEEL[which])
        lic = z.read([n for n in z.namelist() if n.endswith(".dist-info/LICENSE")][0])
    return model, lic


def op_name(model, op):
    oc = model.OperatorCodes(op.OpcodeIndex())
    code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
    if code == tflite.BuiltinOperator.CUSTOM:
        return oc.CustomCode().decode()
    return {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}[code]


def tensor_f16(model, g, index):
    t = g.Tensors(index)
    assert t.Type() == tflite.TensorType.FLOAT16, t.Name()
    raw = model.Buffers(t.Buffer()).DataAsNumpy().tobytes()
    return np.frombuffer(raw, dtype=np.float16).reshape(t.ShapeAsNumpy())


def extract_weights(buf):
    """Weights of every conv layer in PyTorch layout, keyed `<layer>.weight/bias`."""
    model = tflite.Model.GetRootAsModel(buf, 0)
    g = model.Subgraphs(0)
    # DEQUANTIZE ops turn the stored fp16 constants into the f32 tensors the convs read.
    source = {}
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        if op_name(model, op) == "DEQUANTIZE":
            source[int(op.Outputs(0))] = int(op.Inputs(0))
    weights = {}
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        name = op_name(model, op)
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", CUSTOM_OP):
            continue
        w_idx, b_idx = source[int(op.Inputs(1))], source[int(op.Inputs(2))]
        layer = g.Tensors(w_idx).Name().decode().split("/")[0]
        w = tensor_f16(model, g, w_idx)
        if name == "CONV_2D":  # [O, kh, kw, I] -> [O, I, kh, kw]
            w = w.transpose(0, 3, 1, 2)
        else:  # depthwise [1, kh, kw, C] and transposed [O, kh, kw, I] -> [C|I, 1|O, kh, kw]
            w = w.transpose(3, 0, 1, 2)
        weights[f"{layer}.weight"] = np.ascontiguousarray(w)
        weights[f"{layer}.bias"] = np.ascontiguousarray(tensor_f16(model, g, b_idx))
    return weights


def truncated_before_custom_op(buf):
    """A copy of the model ending at the custom op's input: the operator vector is
    shortened in place and the subgraph's single output is replaced by that input."""
    model = tflite.Model.GetRootAsModel(buf, 0)
    g = model.Subgraphs(0)
    n = g.OperatorsLength()
    cut = next(k for k in range(n) if op_name(model, g.Operators(k)) == CUSTOM_OP)
    # The ops between `cut`'s weight dequantisation and the cut only feed the custom op.
    first_removed = cut
    while first_removed > 0 and op_name(model, g.Operators(first_removed - 1)) == "DEQUANTIZE":
        first_removed -= 1
    feature = int(g.Operators(cut).Inputs(0))
    out = bytearray(buf)
    ops_vec = g._tab.Vector(g._tab.Offset(10))  # Subgraph.operators (field 3)
    struct.pack_into("<I", out, ops_vec - 4, first_removed)
    outs_vec = g._tab.Vector(g._tab.Offset(8))  # Subgraph.outputs (field 2)
    assert struct.unpack_from("<I", out, outs_vec - 4)[0] == 1
    struct.pack_into("<i", out, outs_vec, feature)
    return bytes(out), feature


def last_layer(feature_nhwc, w, b):
    """ConvTranspose 2x2 stride 2 (PyTorch layout w [I, O, 2, 2]) + bias + sigmoid."""
    f = feature_nhwc.astype(np.float64)[0]  # [H, W, I]
    w = w.astype(np.float64)
    h, wd, _ = f.shape
    out = np.zeros((h * 2, wd * 2))
    for a in range(2):
        for c in range(2):
            out[a::2, c::2] = f @ w[:, 0, a, c]
    out += float(b[0])
    # tanh form of the sigmoid: no overflow for large negative logits
    return (0.5 * (1.0 + np.tanh(0.5 * out)))[None, None].astype(np.float32)


def astronaut():
    from skimage import data

    return data.astronaut()  # 512x512x3 uint8


def box_half(img):
    h, w = img.shape[0] // 2, img.shape[1] // 2
    s = img.astype(np.int64).reshape(h, 2, w, 2, 3).sum(axis=(1, 3))
    return (s.astype(np.float32) / np.float32(1020.0)).astype(np.float32)  # [h, w, 3]


def tflite_mask(buf, x_hwc):
    from ai_edge_litert.interpreter import Interpreter

    cut, feature = truncated_before_custom_op(buf)
    it = Interpreter(model_content=cut)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x_hwc[None])
    it.invoke()
    out = it.get_output_details()[0]
    assert out["index"] == feature, (out, feature)
    return it.get_tensor(out["index"])


def torch_check(weights, x_hwc, golden, last="segment"):
    import torch
    import torch.nn.functional as F

    W = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()}
    hs = F.hardswish

    def conv(x, name, stride=1, groups=1):
        w = W[f"{name}.weight"]
        k = w.shape[-1]
        if stride == 1:
            x = F.pad(x, [(k - 1) // 2] * 4)
        else:  # TensorFlow SAME with an even input: the extra row / column goes after
            total = max((x.shape[-1] // stride - 1) * stride + k - x.shape[-1], 0)
            x = F.pad(x, [total // 2, total - total // 2] * 2)
        return F.conv2d(x, w, W[f"{name}.bias"], stride=stride, groups=groups)

    def dw(x, name, stride=1):
        return conv(x, name, stride, groups=x.shape[1])

    def se(x, a, b):
        p = x.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(conv(torch.relu(conv(p, a)), b))

    def net(x):
        x128 = hs(conv(x, "conv2d", 2))
        y = torch.relu(dw(torch.relu(conv(x128, "conv2d_1")), "depthwise_conv2d", 2))
        x64 = conv(y * se(y, "conv2d_2", "conv2d_3"), "conv2d_4")
        y = torch.relu(dw(torch.relu(conv(x64, "conv2d_5")), "depthwise_conv2d_1", 2))
        t = conv(y, "conv2d_6")
        y = torch.relu(dw(torch.relu(conv(t, "conv2d_7")), "depthwise_conv2d_2"))
        x32 = conv(y, "conv2d_8") + t
        # (expand, depthwise, se1, se2, project), stride, residual
        blocks = [
            (("conv2d_9", "depthwise_conv2d_3", "conv2d_10", "conv2d_11", "conv2d_12"), 2),
            (("conv2d_13", "depthwise_conv2d_4", "conv2d_14", "conv2d_15", "conv2d_16"), 1),
            (("conv2d_17", "depthwise_conv2d_5", "conv2d_18", "conv2d_19", "conv2d_20"), 1),
            (("conv2d_21", "depthwise_conv2d_6", "conv2d_22", "conv2d_23", "conv2d_24"), 1),
            (("conv2d_25", "depthwise_conv2d_7", "conv2d_26", "conv2d_27", "conv2d_28"), 1),
        ]
        u = x32
        for (e, d, s1, s2, p), stride in blocks:
            y = hs(dw(hs(conv(u, e)), d, stride))
            y = conv(y * se(y, s1, s2), p)
            u = y + u if stride == 1 else y
        h = torch.relu(conv(u, "conv2d_29")) * torch.sigmoid(
            conv(u.mean(dim=(2, 3), keepdim=True), "conv2d_30")
        )
        for skip, (c1, g1, g2, c2, d) in [
            (x32, ("conv2d_31", "conv2d_32", "conv2d_33", "conv2d_34", "depthwise_conv2d_8")),
            (x64, ("conv2d_35", "conv2d_36", "conv2d_37", "conv2d_38", "depthwise_conv2d_9")),
            (x128, ("conv2d_39", "conv2d_40", "conv2d_41", "conv2d_42", "depthwise_conv2d_10")),
        ]:
            up = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            y = conv(up, c1)
            z = skip * se(skip + y, g1, g2) + y
            a = torch.relu(conv(z, c2))
            h = a + torch.relu(dw(a, d))
        return torch.sigmoid(
            F.conv_transpose2d(h, W[f"{last}.weight"], W[f"{last}.bias"], stride=2)
        )

    x = torch.from_numpy(x_hwc).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        y = net(x).numpy()
        diff = np.abs(y - golden)
        print(f"torch vs TFLite: mean abs {diff.mean():.2e}, max abs {diff.max():.2e}")
        assert diff.mean() < 1e-4, "the torch transcription disagrees with TFLite"
        torch.set_num_threads(2)
        times = []
        for i in range(25):
            xi = x + i * 1e-3
            t0 = time.perf_counter()
            net(xi).numpy()
            times.append(time.perf_counter() - t0)
        print(f"torch CPU (2 threads) median {np.median(times[5:]) * 1e3:.2f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflite")
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--model", choices=sorted(MODELS_IN_WHEEL), default="square")
    args = ap.parse_args()
    which = args.model
    if args.tflite:
        buf, lic = open(args.tflite, "rb").read(), None
    else:
        buf, lic = fetch_from_wheel(which)

    weights = extract_weights(buf)
    last = LAST[which]
    assert f"{last}.weight" in weights, sorted(weights)
    model_dir = os.path.join(ROOT, "models", "selfie_segmentation")
    os.makedirs(model_dir, exist_ok=True)
    model_file = "model.safetensors" if which == "square" else f"{which}.safetensors"
    save_file(weights, os.path.join(model_dir, model_file),
              metadata={"source": f"{WHEEL}:{MODELS_IN_WHEEL[which]}", "layout": "pytorch"})
    if lic is not None:
        open(os.path.join(model_dir, "LICENSE"), "wb").write(lic)
    print(f"{len(weights)} tensors, {sum(v.size for v in weights.values())} parameters")

    from PIL import Image

    img = astronaut()
    os.makedirs(os.path.join(ROOT, "examples", "data"), exist_ok=True)
    Image.fromarray(img).save(os.path.join(ROOT, "examples", "data", "astronaut.png"), optimize=True)

    x = box_half(img if which == "square" else img[112:400])
    feature = tflite_mask(buf, x)
    mask = last_layer(feature, weights[f"{last}.weight"], weights[f"{last}.bias"])
    os.makedirs(os.path.join(ROOT, "tests", "golden", "selfie"), exist_ok=True)
    mask_file = "mask.safetensors" if which == "square" else f"{which}_mask.safetensors"
    save_file({"mask": mask}, os.path.join(ROOT, "tests", "golden", "selfie", mask_file))
    print(f"mask {mask.shape} mean {mask.mean():.4f}, > 0.5 on {(mask > 0.5).mean() * 100:.1f}% of pixels")
    if args.torch:
        torch_check(weights, x, mask, last)


if __name__ == "__main__":
    main()
