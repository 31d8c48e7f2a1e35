#!/usr/bin/env python3
"""Writes tests/golden/norm.json: PyTorch's normalisation ops on small, deterministic
float32 cases, read by tests/golden_norm.rs.

Ops: torch.nn.BatchNorm2d in training mode (output and running statistics, including
momentum=None's cumulative average over three consecutive calls), in eval mode (running
statistics), and its backward through autograd (grad_input, grad_weight, grad_bias);
torch.nn.GroupNorm; torch.nn.LayerNorm over (C, H, W) with an elementwise affine;
torch.nn.InstanceNorm2d with and without affine; and AdaIN written with torch ops
(per (n, c) population statistics, std = sqrt(var + eps)).

Run from the repository root:

    /path/to/venv/bin/python tests/golden/make_golden_norm.py

Needs torch and numpy. The output is deterministic for a given torch version: each case
seeds its own generator, everything runs single-threaded on the CPU, and
torch.use_deterministic_algorithms(True) is on. Every float32 result is also computed in
float64 from the same float32 inputs, and the script asserts they agree to 5e-6
relative (the notes it prints give the actual figures), which is what lets the Rust test
hold its f64 reference to 1e-5.

Encoding: as decoder.json. Float tensors are flat row-major lists; finite values are the
shortest decimal that rounds to the float32 value (checked, also for parses one or two
f64 ulps off); NaN and infinities would be "nan", "inf" and "-inf" (none occur here).
"""

import json
import math
import os
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "norm.json")
# f32 vs f64 agreement the script insists on: max |y32 - y64| / (scale + |y64|). Most
# cases agree to ~1e-7; the values-around-50 case to ~2e-6, because PyTorch subtracts a
# mean rounded to float32 (half an ulp at 50 is 1.9e-6) from each value.
F64_TOL = 5e-6


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
    assert t.dtype == torch.float32, t.dtype
    return [enc_float(v) for v in t.detach().reshape(-1).numpy()]


def gen_for(index):
    return torch.Generator().manual_seed(3000 + index)


def randn(gen, shape, scale=1.0, offset=0.0):
    return torch.randn(shape, generator=gen, dtype=torch.float32) * scale + offset


def affine_params(gen, shape):
    # Non-trivial scale and shift: weight around 1 (never the identity), bias around 0.
    w = randn(gen, shape, 0.5, 1.0)
    b = randn(gen, shape, 0.5)
    return w, b


def rel_err(y32, y64, scale=1.0):
    """max |y32 - y64| / (scale + |y64|), in f64."""
    return ((y32.double() - y64).abs() / (scale + y64.abs())).max().item()


def check_f64(name, what, y32, y64, scale=1.0):
    err = rel_err(y32, y64, scale)
    assert err < F64_TOL, (name, what, err)
    return err


def bn_module(c, eps, momentum, affine, w, b, rm, rv, dtype):
    bn = torch.nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine).to(dtype)
    with torch.no_grad():
        if affine:
            bn.weight.copy_(w)
            bn.bias.copy_(b)
        bn.running_mean.copy_(rm)
        bn.running_var.copy_(rv)
    return bn


# ---------------------------------------------------------------------------------------
# BatchNorm2d, training mode
# name, input_shape, eps, momentum (None: cumulative average over 3 calls), affine, data
BN_TRAIN = [
    ("bn_train_batch2_odd_5x7", [2, 3, 5, 7], 1e-5, 0.1, True, "randn"),
    # one sample, several pixels: statistics over H * W only
    ("bn_train_batch1_4x6", [1, 3, 4, 6], 1e-5, 0.1, True, "randn"),
    ("bn_train_momentum0.3", [2, 4, 3, 5], 1e-5, 0.3, True, "randn"),
    # momentum=None: factor 1 / num_batches_tracked, three calls on different inputs
    ("bn_train_momentum_none_3_calls", [2, 3, 4, 3], 1e-5, None, True, "randn"),
    # small variances so that eps matters
    ("bn_train_eps1e-3", [2, 3, 3, 5], 1e-3, 0.1, True, "small_spread"),
    ("bn_train_no_affine", [2, 3, 5, 4], 1e-5, 0.1, False, "randn"),
    # values around 50 with unit spread: the variance must not cancel (E[x^2] - E[x]^2)
    ("bn_train_large_mean_50", [2, 3, 5, 7], 1e-5, 0.1, True, "large_mean"),
    # 4096 values per channel: many strides of a 64-wide reduction. The input is on a
    # 1/4 grid (short decimals keep norm.json under 400 KB); the outputs are not.
    ("bn_train_1x4x64x64", [1, 4, 64, 64], 1e-5, 0.1, True, "grid"),
]


def norm_input(gen, shape, kind):
    c = shape[1]
    per_channel = [1, c, 1, 1]
    if kind == "randn":
        # channel means and spreads that differ
        return randn(gen, shape) * randn(gen, per_channel, 0.3, 1.0).abs() + randn(
            gen, per_channel, 0.5
        )
    if kind == "small_spread":
        # standard deviations 0.01 .. 0.05: var 1e-4 .. 2.5e-3, comparable to eps 1e-3
        spread = torch.linspace(0.01, 0.05, c).reshape(per_channel)
        return randn(gen, shape) * spread + randn(gen, per_channel, 0.5)
    if kind == "large_mean":
        return randn(gen, shape) + 50.0 + randn(gen, per_channel, 2.0)
    if kind == "grid":
        # multiples of 1/4, spread 1.5, channel offsets within about +-2
        offset = torch.round(randn(gen, per_channel, 4.0)) / 4
        return torch.round(randn(gen, shape, 6.0)) / 4 + offset
    raise ValueError(kind)


def make_bn_train(index, spec):
    name, shape, eps, momentum, affine, kind = spec
    gen = gen_for(index)
    c = shape[1]
    w, b = affine_params(gen, [c])
    rm = randn(gen, [c], 0.5)
    rv = torch.rand([c], generator=gen, dtype=torch.float32) + 0.5
    calls = 3 if momentum is None else 1
    xs = [norm_input(gen, shape, kind) for _ in range(calls)]
    bn = bn_module(c, eps, momentum, affine, w, b, rm, rv, torch.float32)
    bn64 = bn_module(c, eps, momentum, affine, w, b, rm, rv, torch.float64)
    bn.train()
    bn64.train()
    steps, errs = [], []
    with torch.no_grad():
        for x in xs:
            y = bn(x)
            y64 = bn64(x.double())
            assert y.dtype == torch.float32
            errs.append(check_f64(name, "output", y, y64))
            errs.append(check_f64(name, "running_mean", bn.running_mean, bn64.running_mean))
            errs.append(check_f64(name, "running_var", bn.running_var, bn64.running_var))
            steps.append(
                {
                    "input": f32_list(x),
                    "output": f32_list(y),
                    "running_mean": f32_list(bn.running_mean),
                    "running_var": f32_list(bn.running_var),
                }
            )
    assert int(bn.num_batches_tracked) == calls
    return {
        "op": "batch_norm_train",
        "name": name,
        "num_features": c,
        "eps": eps,
        "momentum": momentum,
        "affine": affine,
        "input_shape": list(shape),
        "weight": f32_list(w) if affine else None,
        "bias": f32_list(b) if affine else None,
        "running_mean": f32_list(rm),
        "running_var": f32_list(rv),
        "steps": steps,
    }, f"{calls} call(s), f32 vs f64 rel err {max(errs):.2e}"


# ---------------------------------------------------------------------------------------
# BatchNorm2d, eval mode (running statistics)
# name, input_shape, eps
BN_EVAL = [
    ("bn_eval_batch2_5x6", [2, 3, 5, 6], 1e-5),
    # running variances down to 1e-3: eps 1e-3 changes the scale by up to sqrt(2)
    ("bn_eval_eps1e-3_small_var", [1, 4, 4, 7], 1e-3),
    ("bn_eval_eps0.1", [2, 2, 3, 5], 0.1),
]


def make_bn_eval(index, spec):
    name, shape, eps = spec
    gen = gen_for(index)
    c = shape[1]
    w, b = affine_params(gen, [c])
    rm = randn(gen, [c], 0.5)
    rv = torch.rand([c], generator=gen, dtype=torch.float32) + 0.5
    rv[0] = 1e-3
    x = randn(gen, shape) * rv.sqrt().reshape(1, c, 1, 1) + rm.reshape(1, c, 1, 1)
    bn = bn_module(c, eps, 0.1, True, w, b, rm, rv, torch.float32).eval()
    bn64 = bn_module(c, eps, 0.1, True, w, b, rm, rv, torch.float64).eval()
    with torch.no_grad():
        y = bn(x)
        y64 = bn64(x.double())
    # eval mode leaves the running statistics alone
    assert torch.equal(bn.running_mean, rm) and torch.equal(bn.running_var, rv)
    err = check_f64(name, "output", y, y64)
    return {
        "op": "batch_norm_eval",
        "name": name,
        "num_features": c,
        "eps": eps,
        "input_shape": list(shape),
        "weight": f32_list(w),
        "bias": f32_list(b),
        "running_mean": f32_list(rm),
        "running_var": f32_list(rv),
        "input": f32_list(x),
        "output": f32_list(y),
    }, f"f32 vs f64 rel err {err:.2e}"


# ---------------------------------------------------------------------------------------
# BatchNorm2d backward (training-mode forward, autograd)
# name, input_shape, eps
BN_BACKWARD = [
    ("bn_backward_batch2_odd_5x7", [2, 3, 5, 7], 1e-5),
    ("bn_backward_batch1_4x6", [1, 3, 4, 6], 1e-5),
    ("bn_backward_c1_batch2_6x5", [2, 1, 6, 5], 1e-3),
]


def bn_backward(x, dy, c, eps, w, b, rm, rv, dtype):
    bn = bn_module(c, eps, 0.1, True, w, b, rm, rv, dtype).train()
    xx = x.to(dtype).clone().requires_grad_(True)
    y = bn(xx)
    y.backward(dy.to(dtype))
    return y.detach(), xx.grad, bn.weight.grad, bn.bias.grad


def make_bn_backward(index, spec):
    name, shape, eps = spec
    gen = gen_for(index)
    c = shape[1]
    w, b = affine_params(gen, [c])
    rm = randn(gen, [c], 0.5)
    rv = torch.rand([c], generator=gen, dtype=torch.float32) + 0.5
    x = norm_input(gen, shape, "randn")
    dy = randn(gen, shape)
    y, gx, gw, gb = bn_backward(x, dy, c, eps, w, b, rm, rv, torch.float32)
    y64, gx64, gw64, gb64 = bn_backward(x, dy, c, eps, w, b, rm, rv, torch.float64)
    for t in (y, gx, gw, gb):
        assert t.dtype == torch.float32
    errs = [
        check_f64(name, "output", y, y64),
        check_f64(name, "grad_input", gx, gx64),
        check_f64(name, "grad_weight", gw, gw64),
        check_f64(name, "grad_bias", gb, gb64),
    ]
    return {
        "op": "batch_norm_backward",
        "name": name,
        "num_features": c,
        "eps": eps,
        "input_shape": list(shape),
        "weight": f32_list(w),
        "bias": f32_list(b),
        "running_mean": f32_list(rm),
        "running_var": f32_list(rv),
        "input": f32_list(x),
        "grad_output": f32_list(dy),
        "output": f32_list(y),
        "grad_input": f32_list(gx),
        "grad_weight": f32_list(gw),
        "grad_bias": f32_list(gb),
    }, f"f32 vs f64 rel err {max(errs):.2e}"


# ---------------------------------------------------------------------------------------
# GroupNorm
# name, input_shape, num_groups, eps
GROUP = [
    # G = 1: layer norm with a per-channel affine
    ("group_norm_g1_c4", [2, 4, 5, 6], 1, 1e-5),
    # G = C: instance norm
    ("group_norm_g4_c4_instance", [2, 4, 5, 3], 4, 1e-5),
    ("group_norm_g2_c6", [2, 6, 5, 7], 2, 1e-5),
    # 32 groups of 2 channels, 3x3 pixels: 18 values per group
    ("group_norm_g32_c64_3x3", [2, 64, 3, 3], 32, 1e-3),
]


def make_group(index, spec):
    name, shape, g, eps = spec
    gen = gen_for(index)
    c = shape[1]
    w, b = affine_params(gen, [c])
    x = norm_input(gen, shape, "randn")
    gn = torch.nn.GroupNorm(g, c, eps=eps, affine=True)
    gn64 = torch.nn.GroupNorm(g, c, eps=eps, affine=True).double()
    with torch.no_grad():
        for m in (gn, gn64):
            m.weight.copy_(w)
            m.bias.copy_(b)
        y = gn(x)
        y64 = gn64(x.double())
    err = check_f64(name, "output", y, y64)
    return {
        "op": "group_norm",
        "name": name,
        "num_groups": g,
        "num_channels": c,
        "eps": eps,
        "affine": True,
        "input_shape": list(shape),
        "weight": f32_list(w),
        "bias": f32_list(b),
        "input": f32_list(x),
        "output": f32_list(y),
    }, f"f32 vs f64 rel err {err:.2e}"


# ---------------------------------------------------------------------------------------
# LayerNorm over (C, H, W), elementwise affine
# name, input_shape, eps
LAYER = [
    ("layer_norm_2x3x4x5", [2, 3, 4, 5], 1e-5),
    ("layer_norm_1x4x3x7_eps1e-3", [1, 4, 3, 7], 1e-3),
]


def make_layer(index, spec):
    name, shape, eps = spec
    gen = gen_for(index)
    norm_shape = shape[1:]
    w, b = affine_params(gen, norm_shape)
    x = norm_input(gen, shape, "randn")
    ln = torch.nn.LayerNorm(norm_shape, eps=eps, elementwise_affine=True)
    ln64 = torch.nn.LayerNorm(norm_shape, eps=eps, elementwise_affine=True).double()
    with torch.no_grad():
        for m in (ln, ln64):
            m.weight.copy_(w)
            m.bias.copy_(b)
        y = ln(x)
        y64 = ln64(x.double())
    err = check_f64(name, "output", y, y64)
    return {
        "op": "layer_norm",
        "name": name,
        "normalized_shape": list(norm_shape),
        "eps": eps,
        "input_shape": list(shape),
        "weight": f32_list(w),
        "bias": f32_list(b),
        "input": f32_list(x),
        "output": f32_list(y),
    }, f"f32 vs f64 rel err {err:.2e}"


# ---------------------------------------------------------------------------------------
# InstanceNorm2d (track_running_stats=False, PyTorch's default)
# name, input_shape, eps, affine
INSTANCE = [
    ("instance_norm_affine_2x3x5x6", [2, 3, 5, 6], 1e-5, True),
    ("instance_norm_no_affine_2x4x4x7_eps1e-3", [2, 4, 4, 7], 1e-3, False),
]


def make_instance(index, spec):
    name, shape, eps, affine = spec
    gen = gen_for(index)
    c = shape[1]
    w, b = affine_params(gen, [c])
    # per-plane offsets so that the statistics really are per (n, c)
    x = randn(gen, shape) * randn(gen, shape[:2] + [1, 1], 0.4, 1.0).abs() + randn(
        gen, shape[:2] + [1, 1]
    )
    inorm = torch.nn.InstanceNorm2d(c, eps=eps, affine=affine)
    inorm64 = torch.nn.InstanceNorm2d(c, eps=eps, affine=affine).double()
    with torch.no_grad():
        if affine:
            for m in (inorm, inorm64):
                m.weight.copy_(w)
                m.bias.copy_(b)
        y = inorm(x)
        y64 = inorm64(x.double())
    err = check_f64(name, "output", y, y64)
    return {
        "op": "instance_norm",
        "name": name,
        "num_features": c,
        "eps": eps,
        "affine": affine,
        "input_shape": list(shape),
        "weight": f32_list(w) if affine else None,
        "bias": f32_list(b) if affine else None,
        "input": f32_list(x),
        "output": f32_list(y),
    }, f"f32 vs f64 rel err {err:.2e}"


# ---------------------------------------------------------------------------------------
# LayerNorm over the trailing one or two dimensions ((H, W) per plane, (W,) per row), and
# without a bias (PyTorch's bias=False)
# name, input_shape, trailing dims normalised, bias
LAYER_TRAILING = [
    ("layer_norm_hw_2x2x5x6", [2, 2, 5, 6], 2, True),
    ("layer_norm_w_2x3x3x7", [2, 3, 3, 7], 1, True),
    ("layer_norm_w_1x2x3x24_no_bias", [1, 2, 3, 24], 1, False),
    ("layer_norm_chw_2x3x4x5_no_bias", [2, 3, 4, 5], 3, False),
]


def make_layer_trailing(index, spec):
    name, shape, dims, bias = spec
    gen = gen_for(index)
    norm_shape = shape[4 - dims:]
    w, b = affine_params(gen, norm_shape)
    x = norm_input(gen, shape, "randn")
    ln = torch.nn.LayerNorm(norm_shape, eps=1e-5, bias=bias)
    ln64 = torch.nn.LayerNorm(norm_shape, eps=1e-5, bias=bias).double()
    with torch.no_grad():
        for m in (ln, ln64):
            m.weight.copy_(w)
            if bias:
                m.bias.copy_(b)
        y = ln(x)
        y64 = ln64(x.double())
    err = check_f64(name, "output", y, y64)
    return {
        "op": "layer_norm",
        "name": name,
        "normalized_shape": list(norm_shape),
        "eps": 1e-5,
        "input_shape": list(shape),
        "weight": f32_list(w),
        "bias": f32_list(b) if bias else None,
        "input": f32_list(x),
        "output": f32_list(y),
    }, f"f32 vs f64 rel err {err:.2e}"


# ---------------------------------------------------------------------------------------
# InstanceNorm2d(track_running_stats=True) in eval(): the running statistics normalise
# name, input_shape, affine
INSTANCE_RUNNING = [
    ("instance_norm_running_affine_2x3x5x6", [2, 3, 5, 6], True),
    ("instance_norm_running_no_affine_1x4x3x3", [1, 4, 3, 3], False),
]


def make_instance_running(index, spec):
    name, shape, affine = spec
    gen = gen_for(index)
    c = shape[1]
    w, b = affine_params(gen, [c])
    rm = randn(gen, [c], 0.5)
    rv = randn(gen, [c], 0.3, 1.0).abs() + 0.2
    x = randn(gen, shape)
    inorm = torch.nn.InstanceNorm2d(c, affine=affine, track_running_stats=True)
    inorm64 = torch.nn.InstanceNorm2d(c, affine=affine, track_running_stats=True).double()
    with torch.no_grad():
        for m in (inorm, inorm64):
            m.running_mean.copy_(rm)
            m.running_var.copy_(rv)
            if affine:
                m.weight.copy_(w)
                m.bias.copy_(b)
            m.eval()
        y = inorm(x)
        y64 = inorm64(x.double())
    err = check_f64(name, "output", y, y64)
    return {
        "op": "instance_norm",
        "name": name,
        "num_features": c,
        "eps": 1e-5,
        "affine": affine,
        "track_running_stats": True,
        "input_shape": list(shape),
        "weight": f32_list(w) if affine else None,
        "bias": f32_list(b) if affine else None,
        "running_mean": f32_list(rm),
        "running_var": f32_list(rv),
        "input": f32_list(x),
        "output": f32_list(y),
    }, f"f32 vs f64 rel err {err:.2e}"


# ---------------------------------------------------------------------------------------
# AdaIN
# name, content_shape, style_shape, eps
ADAIN = [
    ("adain_2x3_5x6_style_7x4", [2, 3, 5, 6], [2, 3, 7, 4], 1e-5),
    ("adain_1x4_6x6_style_3x5", [1, 4, 6, 6], [1, 4, 3, 5], 1e-5),
]


def adain_torch(content, style, eps):
    mc = content.mean(dim=(2, 3), keepdim=True)
    vc = content.var(dim=(2, 3), keepdim=True, unbiased=False)
    ms = style.mean(dim=(2, 3), keepdim=True)
    vs = style.var(dim=(2, 3), keepdim=True, unbiased=False)
    return torch.sqrt(vs + eps) * (content - mc) / torch.sqrt(vc + eps) + ms


def make_adain(index, spec):
    name, c_shape, s_shape, eps = spec
    gen = gen_for(index)
    planes = c_shape[:2] + [1, 1]
    content = randn(gen, c_shape) * randn(gen, planes, 0.4, 1.0).abs() + randn(gen, planes)
    style = randn(gen, s_shape) * randn(gen, planes, 1.0, 2.0).abs() + randn(gen, planes, 2.0)
    y = adain_torch(content, style, eps)
    y64 = adain_torch(content.double(), style.double(), eps)
    assert y.dtype == torch.float32
    err = check_f64(name, "output", y, y64)
    return {
        "op": "adain",
        "name": name,
        "eps": eps,
        "content_shape": list(c_shape),
        "content": f32_list(content),
        "style_shape": list(s_shape),
        "style": f32_list(style),
        "output": f32_list(y),
    }, f"f32 vs f64 (cast) rel err {err:.2e}"


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cases = []
    index = 0
    for make, specs in [
        (make_bn_train, BN_TRAIN),
        (make_bn_eval, BN_EVAL),
        (make_bn_backward, BN_BACKWARD),
        (make_group, GROUP),
        (make_layer, LAYER),
        (make_instance, INSTANCE),
        (make_adain, ADAIN),
        (make_layer_trailing, LAYER_TRAILING),
        (make_instance_running, INSTANCE_RUNNING),
    ]:
        for spec in specs:
            case, note = make(index, spec)
            index += 1
            cases.append(case)
            print(f"{case['name']:42s} {note}")

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"

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
