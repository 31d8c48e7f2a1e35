#!/usr/bin/env python3
"""The device benchmark's PyTorch half: the networks of examples/device_bench.rs in
PyTorch on CUDA (cuDNN, fp32 and fp16) or, without CUDA, on the CPU; input resident on
the device, median of 20 forwards after 3 warm-ups, each synchronised; prints
`torch_<precision>_<device> <network> <ms>` lines for scripts/device_table.py. The selfie model
is timed on the TFLite-equivalent torch transcription only when its weights load; U-Net is
tests/golden/make_golden_classic.py's. Usage: python benches/torch_device.py [--quick]
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


def bench(name, make, shape):
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        if DEV == "cpu" and dtype == torch.float16:
            continue
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


class Out(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


torch.backends.cudnn.benchmark = True
print(f"# torch {torch.__version__}, device {DEV}"
      + (f" ({torch.cuda.get_device_name()})" if DEV == "cuda" else ""))
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
