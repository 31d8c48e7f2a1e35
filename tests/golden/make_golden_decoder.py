#!/usr/bin/env python3
"""Writes tests/golden/decoder.json: PyTorch's decoder ops on small, deterministic float32
cases, read by tests/golden_decoder.rs.

Ops: F.conv_transpose2d (+ activation), F.max_pool2d(..., return_indices=True),
F.max_unpool2d, F.interpolate (nearest, nearest-exact, bilinear and bicubic with
align_corners on and off, recompute_scale_factor),
F.adaptive_avg_pool2d and F.adaptive_max_pool2d(x, 1) (global max).

Run from the repository root:

    /path/to/venv/bin/python tests/golden/make_golden_decoder.py

Needs torch and numpy. The output is deterministic for a given torch version: each case
seeds its own generator, everything runs single-threaded on the CPU, and
torch.use_deterministic_algorithms(True) is on except around F.max_unpool2d (PyTorch flags
it as nondeterministic because of its CUDA kernel; the CPU kernel is a sequential loop per
plane, which this script checks against a NumPy re-implementation).

Encoding: float tensors are flat row-major lists. Finite values are written as the
shortest decimal that rounds to the float32 value (the script checks that parsing it as
f64, even one or two f64 ulps off, and rounding to f32 gives the value back); NaN and
infinities, which JSON cannot hold, are the strings "nan", "inf" and "-inf". Indices are
int64 lists (flat h * W + w positions within each (n, c) plane, as PyTorch returns them).
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decoder.json")

ACTIVATIONS = {
    "none": lambda y: y,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
}


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def enc_float(v):
    v = np.float32(v)
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return -0.0 if np.signbit(v) else 0.0
    d = float(str(v))  # numpy's shortest repr that round-trips through float32
    # The reader parses the decimal as f64 and casts to f32: check that this, and any
    # parse up to two f64 ulps off, gives back exactly v.
    probe = d
    for _ in range(2):
        probe = math.nextafter(probe, math.inf)
    for _ in range(4):
        assert np.float32(probe) == v and np.signbit(np.float32(probe)) == np.signbit(v), (v, d)
        probe = math.nextafter(probe, -math.inf)
    return d


def f32_list(t):
    return [enc_float(v) for v in t.detach().reshape(-1).numpy()]


def i64_list(t):
    assert t.dtype == torch.int64
    return [int(v) for v in t.reshape(-1).tolist()]


def gen_for(index):
    return torch.Generator().manual_seed(2000 + index)


# ---------------------------------------------------------------------------------------
# conv_transpose2d
# name, input_shape, out_channels, kernel, stride, padding, output_padding, dilation,
# groups, bias, activation
CONV_T = [
    # FCN-style learned 2x upsampling
    ("convt_fcn2x_k4_s2_p1", [1, 4, 5, 6], 3, 4, 2, 1, 0, 1, 1, True, "none"),
    # FCN-8s final 8x upsampling (k16 s8 p4), small channels
    ("convt_fcn8x_k16_s8_p4", [1, 2, 3, 4], 2, 16, 8, 4, 0, 1, 1, True, "none"),
    # output_padding 1 to reach an exact 2x of an odd size
    ("convt_k3_s2_p1_op1_odd", [1, 3, 5, 7], 4, 3, 2, 1, 1, 1, 1, True, "relu"),
    # asymmetric stride and output_padding
    ("convt_asym_s2x3_op0x2", [1, 3, 4, 5], 2, 3, (2, 3), 1, (0, 2), 1, 1, True, "sigmoid"),
    # depthwise (groups == in_channels == out_channels)
    ("convt_depthwise_k4_s2_p1", [1, 4, 5, 5], 4, 4, 2, 1, 0, 1, 4, True, "relu"),
    # depthwise with channel multiplier 2
    ("convt_depthwise_m2_k3_s2", [1, 3, 4, 4], 6, 3, 2, 1, 1, 1, 3, True, "none"),
    # grouped, 2 in / 3 out channels per group
    ("convt_groups3_k3_s2_p0", [1, 6, 4, 5], 9, 3, 2, 0, 0, 1, 3, True, "none"),
    # dilation 2 with output_padding (allowed since op < stride)
    ("convt_dilation2_s2_p2_op1", [1, 3, 5, 5], 4, 3, 2, 2, 1, 2, 1, True, "sigmoid"),
    # batch 2, no bias
    ("convt_batch2_k2_s2_nobias", [2, 3, 4, 4], 5, 2, 2, 0, 0, 1, 1, False, "relu"),
    # stride 1 (plain transposed conv = full convolution), non-square kernel, no bias
    ("convt_s1_k2x3_p0x1_nobias", [1, 2, 4, 5], 3, (2, 3), 1, (0, 1), 0, 1, 1, False, "none"),
]


def make_conv_t(index, spec):
    name, in_shape, c_out, k, s, p, op, d, g, has_bias, act = spec
    k, s, p, op, d = pair(k), pair(s), pair(p), pair(op), pair(d)
    n, c_in, h, w = in_shape
    assert c_in % g == 0 and c_out % g == 0, name
    gen = gen_for(index)
    x = torch.randn(in_shape, generator=gen, dtype=torch.float32)
    # Each output receives about C_in/g * kH*kW / (sH*sW) products: scale so the
    # pre-activation std is about 2.5 (sigmoid and relu bends are crossed).
    fan = max(1.0, (c_in // g) * k[0] * k[1] / (s[0] * s[1]))
    wt = torch.randn([c_in, c_out // g, k[0], k[1]], generator=gen, dtype=torch.float32)
    wt = wt * (2.5 / fan**0.5)
    b = (torch.randn([c_out], generator=gen, dtype=torch.float32) * 0.5) if has_bias else None

    def run(xx, ww, bb):
        return ACTIVATIONS[act](
            F.conv_transpose2d(
                xx, ww, bb, stride=s, padding=p, output_padding=op, groups=g, dilation=d
            )
        )

    y = run(x, wt, b)
    assert y.dtype == torch.float32
    y64 = run(x.double(), wt.double(), None if b is None else b.double())
    err = ((y.double() - y64).abs() / (1 + y64.abs())).max().item()
    assert err < 1e-6, (name, err)
    return {
        "op": "conv_transpose2d",
        "name": name,
        "in_channels": c_in,
        "out_channels": c_out,
        "kernel_size": k,
        "stride": s,
        "padding": p,
        "output_padding": op,
        "dilation": d,
        "groups": g,
        "bias": has_bias,
        "activation": act,
        "input_shape": list(in_shape),
        "input": f32_list(x),
        "weight": f32_list(wt),
        "bias_values": None if b is None else f32_list(b),
        "output_shape": list(y.shape),
        "output": f32_list(y),
    }, f"f32 vs f64 rel err {err:.2e}"


# ---------------------------------------------------------------------------------------
# max_pool2d(return_indices=True)
# name, input_shape, kernel, stride, padding, dilation, ceil_mode, data
POOL = [
    ("maxpool_k2_s2_batch2", [2, 3, 8, 10], 2, 2, 0, 1, False, "randn"),
    # overlapping windows
    ("maxpool_k3_s2_p1_overlap", [1, 2, 9, 9], 3, 2, 1, 1, False, "randn"),
    # ceil mode on odd sizes: the last window hangs over the edge
    ("maxpool_ceil_k2_s2_odd_7x9", [1, 2, 7, 9], 2, 2, 0, 1, True, "randn"),
    ("maxpool_ceil_k3_s2_p1_7x8", [1, 2, 7, 8], 3, 2, 1, 1, True, "randn"),
    # ceil mode where the extra window would start in the right padding and is dropped
    ("maxpool_ceil_k2_s2_p1_dropped_5x7", [1, 2, 5, 7], 2, 2, 1, 1, True, "randn"),
    ("maxpool_dilation2_k3_s2_p1", [1, 2, 9, 10], 3, 2, 1, 2, False, "randn"),
    ("maxpool_k2x3_s1x2", [1, 2, 6, 9], (2, 3), (1, 2), 0, 1, False, "randn"),
    # exact ties everywhere: PyTorch keeps the first position in row-major window order
    ("maxpool_ties_k3_s2_p1", [2, 2, 7, 7], 3, 2, 1, 1, False, "ties"),
    ("maxpool_ties_k2_s2", [1, 3, 6, 8], 2, 2, 0, 1, False, "ties"),
    # -inf and +inf values, windows that are all -inf (with and without padding)
    ("maxpool_neg_inf_k3_s2_p1", [1, 2, 7, 8], 3, 2, 1, 1, False, "neginf"),
    # NaN: propagates, and the index is the last NaN's position
    ("maxpool_nan_k2_s2", [1, 2, 6, 8], 2, 2, 0, 1, False, "nan"),
    ("maxpool_nan_k3_s2_p1_overlap", [1, 1, 7, 7], 3, 2, 1, 1, False, "nan"),
]


def pool_input(gen, shape, kind):
    if kind == "ties":
        return torch.randint(0, 3, shape, generator=gen).to(torch.float32) - 1.0
    x = torch.randn(shape, generator=gen, dtype=torch.float32)
    inf, nan = float("inf"), float("nan")
    if kind == "neginf":
        x[0, 0, 0:3, 0:3] = -inf  # first windows all -inf (padding at the top-left)
        x[0, 0, 3:6, 3:6] = -inf  # an interior window all -inf
        x[0, 1, 2, 2] = inf
        x[0, 1, 4, 5] = -inf
        x[0, 1, 6, :] = -inf  # the bottom row of windows: partly -inf
    elif kind == "nan":
        c1 = min(1, shape[1] - 1)
        x[0, 0, 0, 0] = nan  # NaN first in its window, larger values after it
        x[0, 0, 0, 1] = 5.0
        x[0, 0, 2, 2] = nan  # two NaNs in one window: the last one's index
        x[0, 0, 3, 3] = nan
        x[0, 0, 4, 5] = inf  # NaN after +inf
        x[0, 0, 5, 5] = nan
        x[0, c1, 1, 1] = nan  # NaN last in its window
        x[0, c1, 2, 4] = -inf
        x[0, c1, 3, 4] = nan
    return x


def tied_windows(x, y, k, s, p, d):
    # How many windows hold their (non-NaN) maximum at more than one position.
    xs, ys = x.numpy(), y.numpy()
    n, c, h, w = xs.shape
    count = 0
    for a in range(n):
        for b in range(c):
            for oy in range(ys.shape[2]):
                for ox in range(ys.shape[3]):
                    hits = 0
                    for ky in range(k[0]):
                        for kx in range(k[1]):
                            iy = oy * s[0] - p[0] + ky * d[0]
                            ix = ox * s[1] - p[1] + kx * d[1]
                            if 0 <= iy < h and 0 <= ix < w:
                                hits += int(xs[a, b, iy, ix] == ys[a, b, oy, ox])
                    count += int(hits > 1)
    return count


def make_pool(index, spec):
    name, in_shape, k, s, p, d, ceil, kind = spec
    k, s, p, d = pair(k), pair(s), pair(p), pair(d)
    gen = gen_for(index)
    x = pool_input(gen, in_shape, kind)
    y, idx = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil, return_indices=True)
    assert y.dtype == torch.float32 and idx.dtype == torch.int64
    tied = tied_windows(x, y, k, s, p, d)
    if kind == "ties":
        # Make sure many windows really hold their maximum at several positions.
        assert tied > y.numel() // 4, (name, tied)
    if kind == "nan":
        assert torch.isnan(y).any() and (~torch.isnan(y)).any(), name
    if kind == "neginf":
        assert (y == -math.inf).any() and (y == math.inf).any(), name
    notes = [f"{tied} windows with a tied maximum"]
    if torch.isnan(x).any():
        notes.append(f"{int(torch.isnan(y).sum())} NaN outputs")
    if torch.isinf(x).any():
        notes.append(f"{int(torch.isinf(y).sum())} inf outputs")
    return {
        "op": "max_pool2d",
        "name": name,
        "kernel_size": k,
        "stride": s,
        "padding": p,
        "dilation": d,
        "ceil_mode": ceil,
        "input_shape": list(in_shape),
        "input": f32_list(x),
        "output_shape": list(y.shape),
        "output": f32_list(y),
        "indices": i64_list(idx),
    }, ", ".join(notes)


# ---------------------------------------------------------------------------------------
# max_unpool2d
# name, pooled input_shape, kernel, stride, padding, output_size (or None), fresh values
UNPOOL = [
    ("unpool_k2_s2", [1, 3, 6, 8], 2, 2, 0, None, False),
    # odd input: pooling 7x9 -> 3x4, unpooling back to 7x9 needs output_size
    ("unpool_k2_s2_output_size_7x9", [1, 2, 7, 9], 2, 2, 0, (7, 9), False),
    # overlapping 3x3 s2 p1 pooling: one input position can be the max of several windows,
    # so indices repeat. The unpooled values are fresh random numbers (not the pooled
    # maxima) so that which duplicate wins is visible: PyTorch's CPU loop keeps the last.
    ("unpool_k3_s2_p1_overlap_duplicates", [1, 2, 8, 8], 3, 2, 1, (8, 8), True),
    ("unpool_k2_s2_batch2", [2, 3, 4, 6], 2, 2, 0, None, False),
    # default output size with padding and overlap, ties input (many duplicates)
    ("unpool_k3_s2_p1_ties_duplicates", [1, 2, 7, 7], 3, 2, 1, None, True),
]


def unpool_numpy(x, idx, out_hw):
    # Sequential "last write wins" per plane, the semantics of PyTorch's CPU kernel.
    n, c = x.shape[:2]
    out = np.zeros((n, c, out_hw[0] * out_hw[1]), dtype=np.float32)
    xf = x.reshape(n, c, -1)
    jf = idx.reshape(n, c, -1)
    for a in range(n):
        for b in range(c):
            for i in range(xf.shape[2]):
                out[a, b, jf[a, b, i]] = xf[a, b, i]
    return out.reshape(n, c, out_hw[0], out_hw[1])


def make_unpool(index, spec):
    name, pool_shape, k, s, p, out_size, fresh = spec
    k, s, p = pair(k), pair(s), pair(p)
    gen = gen_for(index)
    kind = "ties" if "ties" in name else "randn"
    src = pool_input(gen, pool_shape, kind)
    pooled, idx = F.max_pool2d(src, k, s, p, return_indices=True)
    x = torch.randn(pooled.shape, generator=gen, dtype=torch.float32) if fresh else pooled
    torch.use_deterministic_algorithms(False)  # see the module docstring
    try:
        y = F.max_unpool2d(x, idx, k, s, p, output_size=out_size)
    finally:
        torch.use_deterministic_algorithms(True)
    assert y.dtype == torch.float32
    want = unpool_numpy(x.numpy(), idx.numpy(), list(y.shape[2:]))
    assert np.array_equal(want, y.numpy()), name
    flat = idx.reshape(idx.shape[0] * idx.shape[1], -1)
    dups = sum(len(r) - len(set(r.tolist())) for r in flat)
    if fresh:
        assert dups > 0, f"{name}: no duplicate indices"
    return {
        "op": "max_unpool2d",
        "name": name,
        "kernel_size": k,
        "stride": s,
        "padding": p,
        "output_size": None if out_size is None else list(out_size),
        "input_shape": list(x.shape),
        "input": f32_list(x),
        "indices": i64_list(idx),
        "output_shape": list(y.shape),
        "output": f32_list(y),
    }, f"{dups} duplicate indices"


# ---------------------------------------------------------------------------------------
# interpolate
# name, input_shape, mode, align_corners (bilinear and bicubic only), size, scale_factor
# [, recompute_scale_factor]
INTERP = [
    ("nearest_scale2", [1, 2, 4, 5], "nearest", None, None, 2.0),
    ("nearest_size_5x7_to_13x10", [1, 2, 5, 7], "nearest", None, (13, 10), None),
    ("nearest_down_size_9x11_to_4x5", [1, 2, 9, 11], "nearest", None, (4, 5), None),
    ("nearest_scale1.5", [1, 2, 5, 6], "nearest", None, None, 1.5),
    ("nearest_scale2x3", [1, 1, 3, 4], "nearest", None, None, (2.0, 3.0)),
    # 1 / 1.7 differs from in / out: the given scale must be used
    ("nearest_scale1.7", [1, 1, 5, 7], "nearest", None, None, 1.7),
    ("bilinear_size_up_5x7_to_11x16", [1, 2, 5, 7], "bilinear", False, (11, 16), None),
    ("bilinear_size_down_11x13_to_5x6", [1, 2, 11, 13], "bilinear", False, (5, 6), None),
    ("bilinear_align_size_5x6_to_9x13", [1, 2, 5, 6], "bilinear", True, (9, 13), None),
    ("bilinear_align_size_down_9x8_to_4x5", [1, 1, 9, 8], "bilinear", True, (4, 5), None),
    ("bilinear_scale2", [1, 2, 4, 5], "bilinear", False, None, 2.0),
    # 9x11 * 0.5 -> 4x5: the scale 2 differs from in / out (2.25, 2.2)
    ("bilinear_scale0.5_9x11", [1, 2, 9, 11], "bilinear", False, None, 0.5),
    ("bilinear_align_scale1.7", [1, 1, 5, 6], "bilinear", True, None, 1.7),
    ("bilinear_align_1x1_output", [1, 2, 4, 5], "bilinear", True, (1, 1), None),
    ("nearest_exact_scale2", [1, 2, 4, 5], "nearest-exact", None, None, 2.0),
    ("nearest_exact_size_5x7_to_13x10", [2, 2, 5, 7], "nearest-exact", None, (13, 10), None),
    ("nearest_exact_down_9x11_to_4x5", [1, 2, 9, 11], "nearest-exact", None, (4, 5), None),
    ("nearest_exact_scale1.7", [1, 1, 5, 7], "nearest-exact", None, None, 1.7),
    ("nearest_exact_same_size", [1, 1, 3, 5], "nearest-exact", None, (3, 5), None),
    ("bicubic_size_up_5x7_to_11x16", [2, 2, 5, 7], "bicubic", False, (11, 16), None),
    ("bicubic_size_down_11x13_to_5x6", [1, 2, 11, 13], "bicubic", False, (5, 6), None),
    ("bicubic_align_size_5x6_to_9x13", [1, 2, 5, 6], "bicubic", True, (9, 13), None),
    ("bicubic_scale2", [1, 2, 4, 5], "bicubic", False, None, 2.0),
    ("bicubic_align_scale1.7", [1, 1, 5, 6], "bicubic", True, None, 1.7),
    ("bicubic_1x1_input", [1, 2, 1, 1], "bicubic", False, (3, 4), None),
    ("bicubic_align_1x1_output", [1, 1, 4, 5], "bicubic", True, (1, 1), None),
    ("bicubic_2x3_to_7x2", [1, 1, 2, 3], "bicubic", False, (7, 2), None),
    # recompute_scale_factor: the size from the scale, positions from in / out
    ("nearest_scale1.7_recompute", [1, 1, 5, 7], "nearest", None, None, 1.7, True),
    ("nearest_exact_scale1.7_recompute", [1, 1, 5, 7], "nearest-exact", None, None, 1.7, True),
    ("bilinear_scale0.5_9x11_recompute", [1, 2, 9, 11], "bilinear", False, None, 0.5, True),
    ("bicubic_scale1.3_recompute", [1, 2, 6, 5], "bicubic", False, None, (1.3, 2.6), True),
]


def make_interp(index, spec):
    name, in_shape, mode, align, size, scale = spec[:6]
    recompute = spec[6] if len(spec) > 6 else None
    gen = gen_for(index)
    x = torch.randn(in_shape, generator=gen, dtype=torch.float32)
    kwargs = {"mode": mode}
    if mode in ("bilinear", "bicubic"):
        kwargs["align_corners"] = align
    if recompute is not None:
        kwargs["recompute_scale_factor"] = recompute
    if size is not None:
        kwargs["size"] = tuple(size)
    else:
        kwargs["scale_factor"] = scale if isinstance(scale, float) else tuple(scale)
    y = F.interpolate(x, **kwargs)
    assert y.dtype == torch.float32
    if isinstance(scale, float):
        scale = (scale, scale)
    return {
        "op": "interpolate",
        "name": name,
        "mode": mode,
        "align_corners": align,
        "size": None if size is None else list(size),
        "scale_factor": None if scale is None else list(scale),
        "recompute_scale_factor": bool(recompute),
        "input_shape": list(in_shape),
        "input": f32_list(x),
        "output_shape": list(y.shape),
        "output": f32_list(y),
    }, ""


# ---------------------------------------------------------------------------------------
# adaptive_avg_pool2d and global max (adaptive_max_pool2d(x, 1))
# name, op, input_shape, output_size, data
ADAPTIVE = [
    # also checked as GlobalPool::Avg
    ("adaptive_avg_to_1x1", "adaptive_avg_pool2d", [2, 3, 5, 7], (1, 1), "randn"),
    ("adaptive_avg_7x11_to_3x5", "adaptive_avg_pool2d", [1, 2, 7, 11], (3, 5), "randn"),
    ("adaptive_avg_4x4_to_6x6", "adaptive_avg_pool2d", [1, 2, 4, 4], (6, 6), "randn"),
    ("adaptive_avg_10x9_to_4x4", "adaptive_avg_pool2d", [1, 2, 10, 9], (4, 4), "randn"),
    ("global_max", "adaptive_max_pool2d", [2, 3, 5, 6], (1, 1), "randn"),
    # planes with NaN (first and later), all -inf, and +inf
    ("global_max_nan_inf", "adaptive_max_pool2d", [1, 4, 4, 5], (1, 1), "special"),
    # None keeps the input's size along that axis
    ("adaptive_avg_6x7_to_keep_x3", "adaptive_avg_pool2d", [2, 2, 6, 7], (None, 3), "randn"),
    ("adaptive_avg_5x9_to_2x_keep", "adaptive_avg_pool2d", [1, 3, 5, 9], (2, None), "randn"),
    # adaptive max pooling to any size, with indices
    ("adaptive_max_7x11_to_3x5", "adaptive_max_pool2d", [2, 2, 7, 11], (3, 5), "randn"),
    ("adaptive_max_4x5_to_6x7", "adaptive_max_pool2d", [1, 2, 4, 5], (6, 7), "randn"),
    ("adaptive_max_6x7_to_keep_x2", "adaptive_max_pool2d", [1, 2, 6, 7], (None, 2), "randn"),
    ("adaptive_max_nan_inf_6x6_to_2x2", "adaptive_max_pool2d", [1, 4, 6, 6], (2, 2), "special"),
    # bins too large for one pass (columns, then rows): ties across rows, NaNs in two rows
    ("adaptive_max_large_bins_65x65", "adaptive_max_pool2d", [1, 2, 65, 65], (1, 1), "rows"),
]


def make_adaptive(index, spec):
    name, op, in_shape, out_size, kind = spec
    gen = gen_for(index)
    x = torch.randn(in_shape, generator=gen, dtype=torch.float32)
    if kind == "special":
        x[0, 0, 2, 3] = float("nan")
        x[0, 1, 0, 0] = float("nan")
        x[0, 2] = -float("inf")
        x[0, 3, 1, 1] = float("inf")
    if kind == "rows":
        # channel 0: a tie in two rows (the first row's wins); channel 1: NaN in two rows
        # (the last wins)
        x[0, 0, 5, 60] = 10.0
        x[0, 0, 40, 3] = 10.0
        x[0, 1, 10, 50] = float("nan")
        x[0, 1, 30, 2] = float("nan")
    if op == "adaptive_avg_pool2d":
        y = F.adaptive_avg_pool2d(x, out_size)
        y64 = F.adaptive_avg_pool2d(x.double(), out_size)
        err = ((y.double() - y64).abs() / (1 + y64.abs())).max().item()
        assert err < 1e-6, (name, err)
        note = f"f32 vs f64 rel err {err:.2e}"
        indices = None
    else:
        y, indices = F.adaptive_max_pool2d(x, out_size, return_indices=True)
        note = ""
    assert y.dtype == torch.float32
    case = {
        "op": op,
        "name": name,
        "output_size": list(out_size),
        "input_shape": list(in_shape),
        "input": f32_list(x),
        "output_shape": list(y.shape),
        "output": f32_list(y),
    }
    if indices is not None:
        case["indices"] = [int(v) for v in indices.reshape(-1)]
    return case, note


# F.interpolate(mode='area'): adaptive average pooling to the output size
# name, input_shape, size, scale_factor
AREA = [
    ("area_size_down_9x11_to_4x5", [2, 2, 9, 11], (4, 5), None),
    ("area_size_up_4x5_to_7x9", [1, 2, 4, 5], (7, 9), None),
    ("area_scale0.5_9x11", [1, 2, 9, 11], None, 0.5),
    ("area_scale1.7x0.6", [1, 1, 5, 7], None, (1.7, 0.6)),
]


def make_area(index, spec):
    name, in_shape, size, scale = spec
    mode_spec = (name, in_shape, "area", None, size, scale)
    return make_interp(index, mode_spec)


# F.pixel_shuffle / F.pixel_unshuffle
# name, op, input_shape, factor
PIXEL = [
    ("pixel_shuffle_r2", "pixel_shuffle", [2, 8, 3, 5], 2),
    ("pixel_shuffle_r3_c2", "pixel_shuffle", [1, 18, 2, 3], 3),
    ("pixel_unshuffle_r2", "pixel_unshuffle", [2, 3, 4, 6], 2),
    ("pixel_unshuffle_r3", "pixel_unshuffle", [1, 2, 6, 3], 3),
]


def make_pixel(index, spec):
    name, op, in_shape, factor = spec
    gen = gen_for(index)
    x = torch.randn(in_shape, generator=gen, dtype=torch.float32)
    y = getattr(F, op)(x, factor)
    return {
        "op": op,
        "name": name,
        "factor": factor,
        "input_shape": list(in_shape),
        "input": f32_list(x),
        "output_shape": list(y.shape),
        "output": f32_list(y),
    }, ""


# F.interpolate(..., antialias=True): bilinear and bicubic, downsampling (the widened
# filter) and upsampling, by size and by scale factor, align_corners both ways
# name, input_shape, mode, align_corners, size, scale_factor
ANTIALIAS = [
    ("aa_bilinear_down_13x17_to_5x6", [2, 2, 13, 17], "bilinear", False, (5, 6), None),
    ("aa_bilinear_down_scale0.3", [1, 2, 16, 20], "bilinear", False, None, 0.3),
    ("aa_bilinear_align_down_12x9_to_4x5", [1, 1, 12, 9], "bilinear", True, (4, 5), None),
    ("aa_bilinear_up_4x5_to_9x7", [1, 2, 4, 5], "bilinear", False, (9, 7), None),
    ("aa_bicubic_down_15x14_to_6x4", [1, 2, 15, 14], "bicubic", False, (6, 4), None),
    ("aa_bicubic_down_scale0.45", [2, 1, 11, 13], "bicubic", False, None, 0.45),
    ("aa_bicubic_up_5x4_to_8x11", [1, 1, 5, 4], "bicubic", False, (8, 11), None),
]


def make_aa(index, spec):
    name, in_shape, mode, align, size, scale = spec
    if isinstance(scale, tuple):
        scale = list(scale)
    gen = gen_for(index)
    x = torch.randn(in_shape, generator=gen, dtype=torch.float32)
    kwargs = {"mode": mode, "align_corners": align, "antialias": True}
    if size is not None:
        kwargs["size"] = tuple(size)
    else:
        kwargs["scale_factor"] = scale
    y = F.interpolate(x, **kwargs)
    return {
        "op": "interpolate",
        "name": name,
        "mode": mode,
        "align_corners": align,
        "antialias": True,
        "size": None if size is None else list(size),
        "scale_factor": None if scale is None else (scale if isinstance(scale, list) else [scale, scale]),
        "recompute_scale_factor": False,
        "input_shape": list(in_shape),
        "input": f32_list(x),
        "output_shape": list(y.shape),
        "output": f32_list(y),
    }, ""


# Found by fuzzing against PyTorch (appended last so that the seeds above do not move):
# an axis whose size a scale factor leaves unchanged is copied by bilinear (PyTorch's
# compute_source_index_and_lambda) and skipped by antialiasing, but not by bicubic; and
# a bilinear source position PyTorch computes with one rounding (its compilers contract
# scale * (dst + 0.5) - 0.5 into a fused multiply-add).
# name, input_shape, mode, align_corners, size, scale_factor
INTERP_EQUAL_AXIS = [
    ("bilinear_scale1.19x2.45_height_kept", [1, 2, 2, 3], "bilinear", False, None, (1.19, 2.45)),
    ("bilinear_scale1.09x1.5_width_kept", [2, 1, 4, 11], "bilinear", False, None, (1.5, 1.09)),
    ("bicubic_scale1.19x1.2_sizes_kept", [1, 1, 2, 3], "bicubic", False, None, (1.19, 1.2)),
    ("bilinear_size_9x9_to_7x9_fma", [2, 2, 9, 9], "bilinear", False, (7, 9), None),
]
# name, input_shape, mode, align_corners, size, scale_factor
ANTIALIAS_EQUAL_AXIS = [
    ("aa_bilinear_scale1.5x1.09_width_kept", [1, 2, 6, 11], "bilinear", False, None, (1.5, 1.09)),
    ("aa_bicubic_scale0.5x1.09_width_kept", [1, 1, 6, 11], "bicubic", False, None, (0.5, 1.09)),
]
# Bilinear resampling whose widths are whole vec4s and grow by 1.75 or more: the
# library's strip kernel (bilinear_strips.wgsl), with row groups of several rows.
# name, input_shape, mode, align_corners, size, scale_factor
INTERP_STRIPS = [
    ("bilinear_strips_align_4x8_to_10x20", [1, 2, 4, 8], "bilinear", True, (10, 20), None),
    ("bilinear_strips_scale2.5x3", [2, 1, 3, 4], "bilinear", False, None, (2.5, 3.0)),
]


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cases = []
    index = 0
    for make, specs in [
        (make_conv_t, CONV_T),
        (make_pool, POOL),
        (make_unpool, UNPOOL),
        (make_interp, INTERP),
        (make_adaptive, ADAPTIVE),
        (make_area, AREA),
        (make_pixel, PIXEL),
        (make_aa, ANTIALIAS),
        (make_interp, INTERP_EQUAL_AXIS),
        (make_aa, ANTIALIAS_EQUAL_AXIS),
        (make_interp, INTERP_STRIPS),
    ]:
        for spec in specs:
            case, note = make(index, spec)
            index += 1
            cases.append(case)
            print(f"{case['name']:40s} out {case['output_shape']}  {note}")

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    used = {c["activation"] for c in cases if c["op"] == "conv_transpose2d"}
    assert used == set(ACTIVATIONS), f"activations not covered: {set(ACTIVATIONS) - used}"

    with open(OUT, "w") as f:
        f.write("[\n")
        for i, c in enumerate(cases):
            f.write(json.dumps(c, separators=(",", ":"), allow_nan=False))
            f.write(",\n" if i + 1 < len(cases) else "\n")
        f.write("]\n")
    size = os.path.getsize(OUT)
    assert size < 400_000, f"{OUT} is {size} bytes, keep it under 400 KB"
    print(f"wrote {len(cases)} cases to {OUT} ({size} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
