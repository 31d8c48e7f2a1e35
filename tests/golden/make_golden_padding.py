#!/usr/bin/env python3
"""Writes tests/golden/conv2d_padding.json: torch.nn.Conv2d with padding='same' and the
padding modes 'reflect', 'replicate' and 'circular', read by tests/golden_conv.rs.

Run from the repository root:  /path/to/venv/bin/python tests/golden/make_golden_padding.py
"""

import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv2d_padding.json")

# name, input [n, c, h, w], out_channels, kernel, stride, padding (int or "same"),
# dilation, groups, padding_mode
CASES = [
    ("reflect_k3_p1", [2, 3, 6, 7], 4, 3, 1, 1, 1, 1, "reflect"),
    ("replicate_k3_p1", [1, 3, 5, 6], 4, 3, 1, 1, 1, 1, "replicate"),
    ("circular_k3_p1", [1, 3, 5, 6], 4, 3, 1, 1, 1, 1, "circular"),
    ("reflect_k5_p2_s2", [1, 2, 9, 8], 3, 5, 2, 2, 1, 1, "reflect"),
    ("circular_k3_p2_d2", [1, 2, 7, 9], 3, 3, 1, 2, 2, 1, "circular"),
    ("replicate_depthwise_k3_p2", [1, 4, 6, 6], 4, 3, 1, 2, 1, 4, "replicate"),
    ("same_k4_even", [1, 3, 7, 8], 5, 4, 1, "same", 1, 1, "zeros"),
    ("same_k3_d2", [2, 3, 6, 5], 4, 3, 1, "same", 2, 1, "zeros"),
    ("same_k4_reflect", [1, 2, 6, 6], 3, (4, 2), 1, "same", 1, 1, "reflect"),
    ("same_depthwise_k5_circular", [1, 4, 7, 7], 8, 5, 1, "same", 1, 4, "circular"),
]


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def main():
    torch.set_num_threads(1)
    cases = []
    for i, (name, shape, cout, k, s, p, d, g, mode) in enumerate(CASES):
        torch.manual_seed(2000 + i)
        conv = torch.nn.Conv2d(shape[1], cout, k, stride=s, padding=p, dilation=d, groups=g,
                               bias=True, padding_mode=mode)
        x = torch.randn(*shape)
        with torch.no_grad():
            y = conv(x)
        flat = lambda t: [float(v) for v in t.detach().reshape(-1).tolist()]
        cases.append({
            "name": name, "in_channels": shape[1], "out_channels": cout,
            "kernel_size": pair(k), "stride": pair(s), "padding": p if p == "same" else pair(p),
            "dilation": pair(d), "groups": g, "padding_mode": mode,
            "input_shape": shape, "input": flat(x), "weight": flat(conv.weight),
            "bias": flat(conv.bias), "output_shape": list(y.shape), "output": flat(y),
        })
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
