#!/usr/bin/env python3
"""The device benchmark's PyTorch half: the networks of examples/device_bench.rs in
PyTorch on CUDA (cuDNN, fp32 and fp16) or, without CUDA, on the CPU; input resident on
the device, median of 20 forwards after 3 warm-ups, each synchronised; prints
`torch_<precision>_<device> <network> <ms>` lines for scripts/device_table.py. The selfie model
is timed on the TFLite-equivalent torch transcription only when its weights load; U-Net is
tests/golden/make_golden_classic.py's. Before the networks, the per-layer suite of
examples/device_bench.rs (the same convolutions and memory-bound ops at the same sizes),
each timed as 50 calls then one synchronisation, median of 7 such batches after 2
warm-ups. Usage: python benches/torch_device.py [--quick] [--networks]
(`--networks`: the networks only)
"""
import os
import statistics
import sys
import time

import torch
import torchvision
from torchvision.models import segmentation as seg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
from make_golden_classic import UNet  # noqa: E402

QUICK = "--quick" in sys.argv
DEV = "cuda" if torch.cuda.is_available() else "cpu"
if DEV == "cpu":
    torch.set_num_threads(2)


def side(n):
    return n // 8 if QUICK else n


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


# cuDNN runs float32 convolutions on the tensor cores in TF32 by default (10-bit
# mantissas): `tf32` is PyTorch's default, `fp32` IEEE float32 as segblocks computes.
PRECISIONS = (("tf32", torch.float32, True), ("fp32", torch.float32, False),
              ("fp16", torch.float16, True))


def precisions():
    """The precisions to time on this device, each with TF32 set as it says."""
    for precision, dtype, tf32 in PRECISIONS:
        if DEV == "cpu" and precision != "fp32":
            continue
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        yield precision, dtype


def bench(name, make, shape):
    for precision, dtype in precisions():
        net = make().eval().to(DEV, dtype)
        x = torch.full(shape, 0.5, device=DEV, dtype=dtype)
        with torch.no_grad():
            for _ in range(3):
                net(x)
            sync()
            ts = []
            for _ in range(20):
                t = time.perf_counter()
                net(x)
                sync()
                ts.append((time.perf_counter() - t) * 1e3)
        print(f"torch_{precision}_{DEV} {name} {statistics.median(ts):.3f} ms", flush=True)


def shrink(shape):
    n, c, h, w = shape
    return (n, c, -(-h // 8), -(-w // 8)) if QUICK else shape


def time_op(op):
    """Milliseconds per call: 50 calls then one synchronisation, median of 7 batches."""
    def batch():
        t = time.perf_counter()
        outs = [op() for _ in range(50)]
        sync()
        del outs
        return (time.perf_counter() - t) * 1e3 / 50
    for _ in range(2):
        batch()
    return statistics.median(batch() for _ in range(7))


# (name, in, out, kernel, stride, padding, dilation, groups, input shape): as
# examples/device_bench.rs's conv_layers.
CONV_LAYERS = [
    ("conv3x3_64_56", 64, 64, 3, 1, 1, 1, 1, (1, 64, 56, 56)),
    ("conv3x3_256_128", 256, 256, 3, 1, 1, 1, 1, (1, 256, 128, 128)),
    ("conv3x3_s2_3_32_512", 3, 32, 3, 2, 1, 1, 1, (1, 3, 512, 512)),
    ("pointwise_144_24_56", 144, 24, 1, 1, 0, 1, 1, (1, 144, 56, 56)),
    ("pointwise_1024_256_64", 1024, 256, 1, 1, 0, 1, 1, (1, 1024, 64, 64)),
    ("pointwise_320_1280_7", 320, 1280, 1, 1, 0, 1, 1, (1, 320, 7, 7)),
    ("depthwise3x3_144_56_s1", 144, 144, 3, 1, 1, 1, 144, (1, 144, 56, 56)),
    ("depthwise3x3_144_56_s2", 144, 144, 3, 2, 1, 1, 144, (1, 144, 56, 56)),
    ("depthwise5x5_240_28_s1", 240, 240, 5, 1, 2, 1, 240, (1, 240, 28, 28)),
    ("group3x3_g32_128_28", 128, 128, 3, 1, 1, 1, 32, (1, 128, 28, 28)),
    ("dilated3x3_r6_128_32", 128, 128, 3, 1, 6, 6, 1, (1, 128, 32, 32)),
    ("dilated3x3_r12_256_64", 256, 256, 3, 1, 12, 12, 1, (1, 256, 64, 64)),
]


def report(who, name, op, work, unit):
    """Times `op` and prints its line: `work` (FLOPs or bytes) per millisecond in `unit`."""
    ms = time_op(op)
    print(f"{who} {name} {ms:.4f} ms ({work / ms / 1e6:.1f} {unit})", flush=True)


def layers():
    for precision, dtype in precisions():
        who = f"torch_{precision}_{DEV}"
        size = 4 if dtype == torch.float32 else 2
        with torch.no_grad():
            for name, cin, cout, k, s, p, d, g, shape in CONV_LAYERS:
                shape = shrink(shape)
                conv = torch.nn.Conv2d(cin, cout, k, s, p, d, g).to(DEV, dtype).eval()
                x = torch.rand(shape, device=DEV, dtype=dtype)
                n, _, h, w = shape
                ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
                wo = (w + 2 * p - d * (k - 1) - 1) // s + 1
                flops = 2 * n * cout * ho * wo * (cin // g) * k * k
                report(who, name, lambda: conv(x), flops, "GFLOP/s")
            a = torch.rand(shrink((1, 128, 512, 512)), device=DEV, dtype=dtype) - 0.5
            b = torch.rand_like(a)
            small = torch.rand(shrink((1, 128, 256, 256)), device=DEV, dtype=dtype)
            elems = a.numel()
            ops = [
                ("copy_128_512", 2 * elems, lambda: a.clone()),
                ("relu_128_512", 2 * elems, lambda: torch.relu(a)),
                ("add_128_512", 3 * elems, lambda: a + b),
                ("bilinear2x_128_256", 1.25 * elems, lambda: torch.nn.functional.interpolate(
                    small, scale_factor=2.0, mode="bilinear", align_corners=False)),
            ]
            for name, moved, op in ops:
                report(who, name, op, moved * size, "GB/s")


class Out(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


torch.backends.cudnn.benchmark = True
print(f"# torch {torch.__version__}, device {DEV}"
      + (f" ({torch.cuda.get_device_name()})" if DEV == "cuda" else ""))
if "--networks" not in sys.argv:
    layers()
bench("mobilenet_v2_features_224", lambda: torchvision.models.mobilenet_v2().features,
      (1, 3, side(224), side(224)))
bench("lraspp_mobilenet_v3_large_512",
      lambda: Out(seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)),
      (1, 3, side(512), side(512)))
bench("deeplabv3_mobilenet_v3_large_512",
      lambda: Out(seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None)),
      (1, 3, side(512), side(512)))
bench("fcn_resnet50_512", lambda: Out(seg.fcn_resnet50(weights=None, weights_backbone=None)),
      (1, 3, side(512), side(512)))
bench("deeplabv3_resnet50_512",
      lambda: Out(seg.deeplabv3_resnet50(weights=None, weights_backbone=None)),
      (1, 3, side(512), side(512)))
bench("unet_256", lambda: UNet(3, 2), (1, 3, side(256), side(256)))


class Logits(torch.nn.Module):
    """A transformers model's logits."""
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(pixel_values=x).logits


try:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    bench("hf_segformer_b0_ade_512",
          lambda: Logits(SegformerForSemanticSegmentation(SegformerConfig(num_labels=150))),
          (1, 3, side(512), side(512)))
except ImportError:
    print("# hf_segformer_b0_ade_512: needs transformers", flush=True)


class First(torch.nn.Module):
    """A network's first output (the logits) where it returns several."""
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        y = self.m(x)
        return y[0] if isinstance(y, (list, tuple)) else y


class Last(First):
    """A network's last output (HRNet-OCR's logits follow its auxiliary ones)."""
    def forward(self, x):
        return self.m(x)[-1]


# Real-time semantic segmentation (Cityscapes' 19 classes at 512 x 1024): the authors'
# modules vendored in tests/golden/third_party (they need torch and NumPy only; HRNetV2's
# configuration through tests/golden/hrnet_seg_model.py).
THIRD_PARTY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden",
                           "third_party")
sys.path.insert(0, THIRD_PARTY)
sys.path.insert(0, os.path.join(THIRD_PARTY, "stdc_seg"))
from bisenet import bisenetv2  # noqa: E402
from ddrnet import DDRNet_23_slim as ddrnet  # noqa: E402
from hrnet_seg_model import hrnet_ocr, hrnet_seg  # noqa: E402
from models.model_stages import BiSeNet as StdcSeg  # noqa: E402
from pidnet.pidnet import PIDNet  # noqa: E402

bisenetv2.BiSeNetV2.load_pretrain = lambda self: None  # its backbone download


cityscapes = (1, 3, side(512), side(1024))
bench("bisenetv2_512x1024", lambda: First(bisenetv2.BiSeNetV2(19, aux_mode="eval")), cityscapes)
bench("ddrnet_23_slim_512x1024",
      lambda: ddrnet.DualResNet(ddrnet.BasicBlock, [2, 2, 2, 2], num_classes=19, planes=32,
                                spp_planes=128, head_planes=64, augment=False), cityscapes)
bench("pidnet_s_512x1024", lambda: PIDNet(m=2, n=3, num_classes=19, planes=32, ppm_planes=96,
                                          head_planes=128, augment=False), cityscapes)
bench("stdc1_seg_512x1024", lambda: First(StdcSeg("STDCNet813", 19)), cityscapes)
bench("hrnet_w18_small_v2_seg_512x1024",
      lambda: hrnet_seg([2, 64], [1, 3, 2], [2, 2, 2], [18, 36, 72, 144], 19, 1, False), cityscapes)
# HRNetV2-W48 + OCR as the model zoo publishes it (forward returns [aux logits, logits]).
bench("hrnet_w48_ocr_512x1024",
      lambda: Last(hrnet_ocr([4, 64], [1, 4, 3], [4, 4, 4], [48, 96, 192, 384], 19, 512, 256,
                             True)), cityscapes)
