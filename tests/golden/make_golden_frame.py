#!/usr/bin/env python3
"""Writes tests/golden/frame.json: what a PyTorch user does to a frame before a network
and to the network's output after it, read by tests/frame.rs.

Frames in: an 8-bit RGBA image (H x W x 4, uint8) becomes
`F.interpolate(img[..., :3].permute(2, 0, 1)[None].float() / 255, size, mode='bilinear',
align_corners=False)` followed by torchvision's `Normalize(mean, std)`, for a downscale
and an upscale (odd sizes). Masks out: one channel of a [2, 2, 6, 7] output resized with
the same interpolate to a frame's size.

Run from the repository root (needs torch, torchvision and numpy):

    /path/to/venv/bin/python tests/golden/make_golden_frame.py

Deterministic (seeded generator, CPU, single thread). Float tensors are flat row-major
lists of float32 values; the image is a flat list of bytes.
"""

import json
import os

import torch
import torch.nn.functional as F
from torchvision.transforms import Normalize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frame.json")
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def floats(t):
    return [float(v) for v in t.detach().to(torch.float32).flatten().tolist()]


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(7)
    h, w = 13, 19
    img = torch.randint(0, 256, (h, w, 4), generator=g, dtype=torch.uint8)
    x = img[..., :3].permute(2, 0, 1)[None].float() / 255
    frames = []
    for size in [(8, 12), (20, 30)]:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        y = Normalize(*IMAGENET)(y)
        frames.append({"size": list(size), "output": floats(y)})
    out = torch.randn(2, 2, 6, 7, generator=g)
    masks = []
    for (batch, channel, size) in [(1, 1, (11, 9)), (0, 0, (4, 3))]:
        m = F.interpolate(out[batch:batch + 1, channel:channel + 1], size=size,
                          mode="bilinear", align_corners=False)
        masks.append({"batch": batch, "channel": channel, "size": list(size),
                      "output": floats(m)})
    golden = {
        "image": {"height": h, "width": w, "bytes": img.flatten().tolist()},
        "mean": IMAGENET[0],
        "std": IMAGENET[1],
        "frames": frames,
        "network_output": {"shape": [2, 2, 6, 7], "values": floats(out)},
        "masks": masks,
        "torch": torch.__version__,
    }
    with open(OUT, "w") as f:
        json.dump(golden, f)
        f.write("\n")


if __name__ == "__main__":
    main()
