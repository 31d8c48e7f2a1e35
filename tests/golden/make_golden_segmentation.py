#!/usr/bin/env python3
"""Writes tests/golden/segmentation/*.safetensors: torchvision's segmentation models on a
seeded input with synthetic weights, read by tests/segmentation.rs.

The ResNet-101 state dict alone is over 170 MB, so no weights are committed: both sides
make them up from each tensor's name with the generator of segblocks'
`StateDict::synthetic()` (FNV-1a of the name seeding a 64-bit linear congruential
sequence; values uniform in +-1/sqrt(fan_in), batch-norm weights and running variances
uniform in 1 +- 0.25), reproduced here bit for bit in float32. Each file holds the input
`x` and torchvision's outputs `out` and `aux` (the models are built with
`aux_loss=True`), computed in eval mode in float32 on the CPU, single-threaded.

Models and inputs (3 classes; sizes not multiples of 32, batch 2 where CI time allows):

    fcn_resnet50, deeplabv3_resnet50, deeplabv3_mobilenet_v3_large: x [2, 3, 42, 58]
    fcn_resnet101, deeplabv3_resnet101: x [1, 3, 34, 46]

And torchvision's `resnet50()` (not dilated) as a feature extractor:
`resnet50_features.safetensors` holds `x` [2, 3, 45, 61] and `layer3`, `layer4` (the
earlier stages are what the later ones are computed from; they are left out to keep the
file small); likewise `resnet18_features` (x [2, 3, 45, 61]) and `resnet34_features`
(x [2, 3, 37, 53]), the basic-block ResNets, and `resnext50_32x4d_features`,
`wide_resnet50_2_features` (x [1, 3, 33, 40]).

Run from the repository root (needs torch, torchvision, numpy, safetensors):

    /path/to/venv/bin/python tests/golden/make_golden_segmentation.py [later]
"""
import os

import numpy as np
import torch
from safetensors.numpy import save_file
import torchvision
from torchvision.models import segmentation as seg
from torchvision.models._utils import IntermediateLayerGetter

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "segmentation")
MASK = (1 << 64) - 1
A = 6364136223846793005
C = 1442695040888963407
BLOCK = 1 << 16


def _jump_tables():
    """a^(k+1) and c * (1 + a + ... + a^k) mod 2^64 for k < BLOCK."""
    ak = np.empty(BLOCK, dtype=np.uint64)
    ck = np.empty(BLOCK, dtype=np.uint64)
    a, c = 1, 0
    for k in range(BLOCK):
        a, c = (a * A) & MASK, (c * A + C) & MASK
        ak[k], ck[k] = a, c
    return ak, ck


AK, CK = _jump_tables()


def make_up(name, shape):
    """segblocks' StateDict::make_up, in float32."""
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    fan_in = max(int(np.prod(shape[1:])) if len(shape) > 1 else 1, 1)
    scale = np.float32(1.0) / np.sqrt(np.float32(fan_in))
    is_one = name.endswith("running_var") or (name.endswith(".weight") and len(shape) == 1)
    centre = np.float32(1.0 if is_one else 0.0)
    k = np.float32(0.5) if is_one else np.float32(2.0) * scale
    n = int(np.prod(shape))
    hs = np.empty(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, n, BLOCK):
            m = min(BLOCK, n - start)
            block = AK[:m] * np.uint64(h) + CK[:m]
            hs[start:start + m] = block
            h = int(block[-1])
    u = (hs >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) - np.float32(0.5)
    return (centre + u * k).astype(np.float32).reshape(shape)


def fill(model):
    sd = model.state_dict()
    for name, t in sd.items():
        if name.endswith("num_batches_tracked"):
            continue
        t.copy_(torch.from_numpy(make_up(name, tuple(t.shape))))
    model.load_state_dict(sd)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    cases = [
        ("fcn_resnet50", [2, 3, 42, 58]),
        ("deeplabv3_resnet50", [2, 3, 42, 58]),
        ("deeplabv3_mobilenet_v3_large", [2, 3, 42, 58]),
        ("fcn_resnet101", [1, 3, 34, 46]),
        ("deeplabv3_resnet101", [1, 3, 34, 46]),
    ]
    for i, (name, shape) in enumerate(cases):
        model = getattr(seg, name)(weights=None, weights_backbone=None, num_classes=3,
                                   aux_loss=True).eval()
        fill(model)
        g = torch.Generator().manual_seed(100 + i)
        x = torch.randn(*shape, generator=g)
        with torch.no_grad():
            y = model(x)
        out = {"x": x.numpy(), "out": y["out"].numpy(), "aux": y["aux"].numpy()}
        params = sum(p.numel() for p in model.parameters())
        save_file(out, os.path.join(OUT, f"{name}.safetensors"),
                  metadata={"torch": torch.__version__, "parameters": str(params)})
        print(name, shape, "parameters", params, "out", tuple(y["out"].shape),
              "mean abs", float(y["out"].abs().mean()))
    features("resnet50", [2, 3, 45, 61], 99)


def features(name, shape, seed):
    """torchvision's `{name}()` as a feature extractor: `layer3` and `layer4` on a seeded
    input, and the parameter count without `fc` in the metadata."""
    model = getattr(torchvision.models, name)(weights=None).eval()
    fill(model)
    layers = {"layer3": "layer3", "layer4": "layer4"}
    getter = IntermediateLayerGetter(model, return_layers=layers).eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = getter(x)
    out = {"x": x.numpy(), **{k: v.numpy() for k, v in y.items()}}
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("fc."))
    save_file(out, os.path.join(OUT, f"{name}_features.safetensors"),
              metadata={"torch": torch.__version__, "parameters": str(params)})
    print(f"{name} features", {k: tuple(v.shape) for k, v in y.items()}, "parameters", params)


def later_features():
    """Added later (the files above unchanged): the basic-block ResNets at batch 2 and
    odd sizes, ResNeXt-50 32x4d and Wide ResNet-50-2 at batch 1."""
    features("resnet18", [2, 3, 45, 61], 98)
    features("resnet34", [2, 3, 37, 53], 97)
    features("resnext50_32x4d", [1, 3, 33, 40], 96)
    features("wide_resnet50_2", [1, 3, 33, 40], 95)


if __name__ == "__main__":
    import sys
    # `later` writes only the files added later (later_features).
    if sys.argv[1:] == ["later"]:
        torch.set_num_threads(1)
        later_features()
    else:
        main()
        later_features()
