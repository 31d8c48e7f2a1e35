#!/usr/bin/env python3
"""Writes tests/golden/conv2d.json: PyTorch's F.conv2d (+ activation) on small,
deterministic float32 cases, read by tests/golden_conv.rs.

Run from the repository root:

    /path/to/venv/bin/python tests/golden/make_golden.py

Needs torch and numpy. The output is deterministic for a given torch version (each case
seeds its own generator, and the convolution runs single-threaded on the CPU).
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv2d.json")

ACTIVATIONS = {
    "none": lambda y: y,
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
    "silu": F.silu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
    "mish": F.mish,
}


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


# name, input_shape [n, c, h, w], out_channels, kernel, stride, padding, dilation, groups,
# bias, activation
CASES = [
    # plain 3x3 "same" convolution, batch 2
    ("plain3x3_pad1_batch2", [2, 3, 7, 7], 6, 3, 1, 1, 1, 1, True, "none"),
    # ResNet-like stem: 7x7 stride 2 pad 3, odd spatial size
    ("stem7x7_s2_p3", [1, 3, 13, 15], 6, 7, 2, 3, 1, 1, True, "relu"),
    ("kernel5x5_pad2", [1, 5, 9, 9], 6, 5, 1, 2, 1, 1, True, "hardswish"),
    # non-square kernels with asymmetric padding
    ("kernel1x7_pad0x3", [1, 4, 6, 11], 5, (1, 7), 1, (0, 3), 1, 1, True, "sigmoid"),
    ("kernel3x1_pad1x0_nobias", [1, 6, 7, 5], 3, (3, 1), 1, (1, 0), 1, 1, False, "relu6"),
    # atrous convolutions
    ("dilation2_pad2", [1, 4, 11, 10], 4, 3, 1, 2, 2, 1, True, "silu"),
    ("deeplab_dilation6_pad6", [1, 6, 13, 13], 4, 3, 1, 6, 6, 1, True, "relu"),
    # group convolutions
    ("groups4", [1, 8, 7, 7], 12, 3, 1, 1, 1, 4, True, "hardsigmoid"),
    ("groups3_stride2_nobias", [1, 6, 9, 8], 9, 3, 2, 1, 1, 3, False, "none"),
    # depthwise (groups == in_channels), channel multiplier 1 and 2
    ("depthwise_m1", [1, 6, 10, 9], 6, 3, 1, 1, 1, 6, True, "relu6"),
    ("depthwise_m2_stride2", [1, 5, 9, 7], 10, 3, 2, 1, 1, 5, True, "hardswish"),
    ("depthwise_5x5_dilation2_nobias", [1, 3, 12, 11], 3, 5, 1, 4, 2, 3, False, "silu"),
    # single input channel: groups == in_channels == 1 (depthwise and standard at once)
    ("single_channel_3x3", [1, 1, 9, 9], 2, 3, 1, 1, 1, 1, True, "none"),
    # pointwise: H*W divisible by 4 (pointwise kernel applies) and not
    ("pointwise_1x1_batch2", [2, 12, 4, 6], 10, 1, 1, 0, 1, 1, True, "silu"),
    ("pointwise_1x1_odd_hw_nobias", [1, 7, 5, 5], 9, 1, 1, 0, 1, 1, False, "sigmoid"),
    # padding larger than the kernel radius (outputs from padding alone on the border)
    ("pad_gt_radius_3x3_pad3x2_nobias", [1, 3, 5, 6], 4, 3, 1, (3, 2), 1, 1, False, "sigmoid"),
    ("stride3_dilation2", [1, 4, 14, 13], 6, 3, 3, 2, 2, 1, True, "relu"),
    # single-pixel inputs
    ("single_pixel_1x1_kernel", [1, 7, 1, 1], 9, 1, 1, 0, 1, 1, True, "none"),
    ("single_pixel_3x3_pad1", [1, 5, 1, 1], 3, 3, 1, 1, 1, 1, True, "hardsigmoid"),
    # a row longer than the 40-pixel register strip of the direct/depthwise shaders
    ("wide_row_3x3_pad1", [1, 3, 4, 45], 4, 3, 1, 1, 1, 1, True, "relu"),
    # depthwise on widths divisible by 4 (aligned vec4 row loads, vec4 stores), added later
    ("depthwise_vec_3x3_batch2", [2, 8, 9, 12], 8, 3, 1, 1, 1, 8, True, "relu6"),
    ("depthwise_vec_5x5_stride2", [1, 6, 10, 16], 6, 5, 2, 2, 1, 6, True, "hardswish"),
    # the transcendental activations (tanh, gelu exact and tanh-approximated, mish)
    ("tanh_3x3_pad1", [1, 3, 6, 7], 5, 3, 1, 1, 1, 1, True, "tanh"),
    ("gelu_pointwise_batch2", [2, 6, 4, 4], 5, 1, 1, 0, 1, 1, True, "gelu"),
    ("gelu_tanh_depthwise", [1, 4, 7, 8], 4, 3, 1, 1, 1, 4, True, "gelu_tanh"),
    ("mish_3x3_stride2", [1, 3, 9, 9], 4, 3, 2, 1, 1, 1, False, "mish"),
    # NaN, +inf and -inf at 5% of the input's values ("_nonfinite"): an output is NaN
    # where its window holds a NaN or both infinities, infinite where it holds one, and
    # no kernel may spread them further (by multiplying a zero weight or an idle lane
    # by them), added later
    ("grouped_3x3_pad1_nonfinite", [2, 4, 7, 9], 6, 3, 1, 1, 1, 2, True, "relu"),
    ("pointwise_nonfinite", [1, 8, 6, 5], 12, 1, 1, 0, 1, 1, True, "sigmoid"),
    ("depthwise_5x5_stride2_nonfinite", [1, 6, 11, 10], 6, 5, 2, 2, 1, 6, False, "none"),
]


def f32_list(t):
    # float(np.float32(v)) is the exact float32 value as a Python float; json writes its
    # shortest round-tripping repr, so parsing it as f64 and casting to f32 is exact.
    # NaN and infinities (JSON has no literal for them) as the strings "nan", "inf", "-inf".
    def enc(v):
        if np.isnan(v):
            return "nan"
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        return float(np.float32(v))
    return [enc(v) for v in t.detach().reshape(-1).numpy()]


def make_case(index, spec):
    name, in_shape, c_out, k, s, p, d, g, has_bias, act = spec
    k, s, p, d = pair(k), pair(s), pair(p), pair(d)
    n, c_in, h, w = in_shape
    assert c_in % g == 0 and c_out % g == 0, name
    gen = torch.Generator().manual_seed(1000 + index)
    x = torch.randn(in_shape, generator=gen, dtype=torch.float32)
    if name.endswith("_nonfinite"):
        hit = torch.rand(x.shape, generator=gen) < 0.05
        special = torch.tensor([math.nan, math.inf, -math.inf])[
            torch.randint(0, 3, x.shape, generator=gen)]
        x = torch.where(hit, special, x)
    fan_in = (c_in // g) * k[0] * k[1]
    # Scale so pre-activation values have a std of about 2.5: the activations' bends and
    # clamps (0, +-3, 6) are all crossed.
    wt = torch.randn([c_out, c_in // g, k[0], k[1]], generator=gen, dtype=torch.float32)
    wt = wt * (2.5 / fan_in**0.5)
    b = (torch.randn([c_out], generator=gen, dtype=torch.float32) * 0.5) if has_bias else None

    y = ACTIVATIONS[act](F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=g))
    assert y.dtype == torch.float32

    # Sanity check: float32 PyTorch against a float64 evaluation of the same formula.
    y64 = ACTIVATIONS[act](
        F.conv2d(
            x.double(), wt.double(), None if b is None else b.double(),
            stride=s, padding=p, dilation=d, groups=g,
        )
    )
    # Over the finite outputs (scripts/fuzz_golden.py --non-finite gives NaN and inf inputs).
    finite = torch.isfinite(y64)
    err = ((y.double() - y64).abs() / (1 + y64.abs()))[finite].max().item() if finite.any() else 0.0
    # Rounding grows with the sum's length (the fuzzer's larger cases).
    assert err < 1e-6 * max(1.0, fan_in**0.5 / 4), (name, err)

    return {
        "name": name,
        "in_channels": c_in,
        "out_channels": c_out,
        "kernel_size": k,
        "stride": s,
        "padding": p,
        "dilation": d,
        "groups": g,
        "bias": has_bias,
        "activation": act,
        "input_shape": list(in_shape),
        "input": f32_list(x),
        "weight": f32_list(wt),
        # JSON cannot hold the key "bias" twice: the flag is "bias", the values (a list,
        # or null without bias) are "bias_values".
        "bias_values": None if b is None else f32_list(b),
        "output_shape": list(y.shape),
        "output": f32_list(y),
    }, err


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cases = []
    for i, spec in enumerate(CASES):
        case, err = make_case(i, spec)
        cases.append(case)
        print(f"{case['name']:36s} out {case['output_shape']}  f32 vs f64 rel err {err:.2e}")

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    used = {c["activation"] for c in cases}
    assert used == set(ACTIVATIONS), f"activations not covered: {set(ACTIVATIONS) - used}"

    with open(OUT, "w") as f:
        f.write("[\n")
        for i, c in enumerate(cases):
            f.write(json.dumps(c, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(cases) else "\n")
        f.write("]\n")
    print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT)} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
