#!/usr/bin/env python3
"""Writes tests/golden/channel.json: PyTorch's channel plumbing and attention blocks on
small, deterministic float32 cases, read by tests/golden_channel.rs.

Ops: F.channel_shuffle, torch.cat and torch.split along dim 1, a + b followed by an
activation and the activations alone (relu, relu6, hardswish, silu, sigmoid,
hardsigmoid), torchvision.ops.misc.SqueezeExcitation (default ReLU / Sigmoid, and ReLU /
Hardsigmoid as in MobileNetV3), ECA and CBAM (transcribed below from their reference
code), a highway connection and residual attention (elementwise, with given tensors),
ECA's kernel-size formula for every channel count up to 2048, and
F.scaled_dot_product_attention over the pixels of NCHW maps (heads on channel groups), and
HRNet-OCR's SpatialGather_Module (transcribed below). The file is kept under 470 KB.

Run from the repository root:

    /path/to/venv/bin/python tests/golden/make_golden_channel.py

Needs torch, torchvision and numpy. The output is deterministic for a given torch
version: each case seeds its own generator (module parameters are drawn from it and
copied in, not left to torch's global initialisation), everything runs single-threaded
on the CPU with torch.use_deterministic_algorithms(True), modules are in eval mode under
torch.no_grad(). Every non-copy case is also evaluated in float64 and the float32 result
is asserted to agree to 1e-6 * (1 + |y|).

Encoding as in decoder.json: float tensors are flat row-major lists, each with a
"<name>_shape" field; finite values are the shortest decimal that rounds to the float32
value (checked: parsing it as f64, even one or two f64 ulps off, and rounding to f32
gives the value back); NaN and infinities would be "nan", "inf", "-inf" (none occur).
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops.misc import SqueezeExcitation

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "channel.json")

ACTIVATIONS = {
    "none": lambda y: y,
    "relu": F.relu,
    "relu6": F.relu6,
    "hardswish": F.hardswish,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "hardsigmoid": F.hardsigmoid,
}

# Agreement of every float32 result with a float64 evaluation of the same case.
F64_TOL = 1e-6


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


def put(case, key, t):
    """Stores tensor `t` as case[key] (flat float32 list) and case[key + "_shape"]."""
    assert t.dtype == torch.float32, (key, t.dtype)
    case[key + "_shape"] = list(t.shape)
    case[key] = [enc_float(v) for v in t.detach().reshape(-1).numpy()]


def gen_for(index):
    return torch.Generator().manual_seed(3000 + index)


def randn(gen, shape, scale=1.0):
    return torch.randn(shape, generator=gen, dtype=torch.float32) * scale


def rel_err(y, y64):
    return ((y.double() - y64).abs() / (1 + y64.abs())).max().item()


def check_f64(name, y, y64):
    err = rel_err(y, y64)
    assert err < F64_TOL, (name, err)
    return f"f32 vs f64 rel err {err:.2e}"


def feature_map(gen, shape, offset=1.0, noise=0.7):
    """A feature map whose channels have distinct means (so that global pooling, and what
    an attention block computes from it, varies between channels)."""
    n, c, _, _ = shape
    return randn(gen, [n, c, 1, 1], offset) + randn(gen, shape, noise)


# ---------------------------------------------------------------------------------------
# Channel shuffle
# name, input_shape, groups
SHUFFLE = [
    ("shuffle_g2_c6", [1, 6, 3, 7], 2),
    ("shuffle_g3_c12", [1, 12, 2, 5], 3),
    ("shuffle_g4_c8_batch2", [2, 8, 3, 3], 4),
]


def make_shuffle(index, spec):
    name, shape, g = spec
    gen = gen_for(index)
    x = randn(gen, shape)
    y = F.channel_shuffle(x, g)
    n, c, h, w = shape
    manual = x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)
    assert torch.equal(y, manual), name
    assert torch.equal(y, nn.ChannelShuffle(g)(x)), name
    case = {"op": "channel_shuffle", "name": name, "groups": g}
    put(case, "input", x)
    put(case, "output", y)
    return case, ""


# ---------------------------------------------------------------------------------------
# Concatenation and split along channels
def make_cat(index, spec):
    name, n, channels, h, w = spec
    gen = gen_for(index)
    xs = [randn(gen, [n, c, h, w]) for c in channels]
    y = torch.cat(xs, dim=1)
    case = {"op": "cat", "name": name, "dim": 1, "num_inputs": len(xs)}
    for i, x in enumerate(xs):
        put(case, f"input{i}", x)
    put(case, "output", y)
    return case, ""


def make_split(index, spec):
    name, shape, split = spec
    gen = gen_for(index)
    x = randn(gen, shape)
    ys = torch.split(x, split, dim=1)
    case = {
        "op": "split",
        "name": name,
        "dim": 1,
        "split_size_or_sections": split,
        "sections": [y.shape[1] for y in ys],
        "num_outputs": len(ys),
    }
    put(case, "input", x)
    for i, y in enumerate(ys):
        put(case, f"output{i}", y.contiguous())
    return case, f"sections {case['sections']}"


# name, op, spec
CONCAT_SPLIT = [
    ("cat_3_inputs_c2_3_4_batch2", make_cat, [2, [2, 3, 4], 3, 5]),
    ("cat_3_inputs_c1_5_2", make_cat, [1, [1, 5, 2], 4, 7]),
    # ShuffleNet v2's channel split, uneven sections, and an int split size
    ("split_sections_3_1_5_batch2", make_split, [[2, 9, 3, 5], [3, 1, 5]]),
    ("split_size_3_of_8", make_split, [[1, 8, 4, 5], 3]),
]


# ---------------------------------------------------------------------------------------
# Add + activation, and activations alone
ACT_NAMES = ["none", "relu", "relu6", "hardswish", "silu", "sigmoid", "hardsigmoid"]

# Values placed at the start of every activation input: the bends of relu / relu6 /
# hardsigmoid / hardswish (0, +-3, 6), signed zeros, saturation of sigmoid and silu.
SPECIAL = [0.0, -0.0, 3.0, -3.0, 6.0, -6.0, 2.9999998, -2.9999998, 6.0000005, 20.0, -20.0,
           40.0, -40.0, 0.5, -0.5]


def act_input(gen, shape):
    x = randn(gen, shape, 4.0)  # spans the bends at +-3 and 6
    flat = x.view(-1)
    flat[: len(SPECIAL)] = torch.tensor(SPECIAL, dtype=torch.float32)
    return x


def make_add(index, act):
    name = f"add_{act}"
    gen = gen_for(index)
    shape = [1, 3, 4, 5] if index % 2 else [2, 2, 3, 6]
    a = act_input(gen, shape)
    b = randn(gen, shape, 2.0)
    fn = ACTIVATIONS[act]
    y = fn(a + b)
    note = check_f64(name, y, fn(a.double() + b.double()))
    case = {"op": "add", "name": name, "activation": act}
    put(case, "a", a)
    put(case, "b", b)
    put(case, "output", y)
    return case, note


def make_activation(index, act):
    name = f"activation_{act}"
    gen = gen_for(index)
    x = act_input(gen, [1, 4, 3, 7])
    fn = ACTIVATIONS[act]
    y = fn(x)
    note = check_f64(name, y, fn(x.double()))
    case = {"op": "activation", "name": name, "activation": act}
    put(case, "input", x)
    put(case, "output", y)
    return case, note


# ---------------------------------------------------------------------------------------
# torchvision SqueezeExcitation
# name, input_shape, squeeze_channels, activation, scale_activation
SE = [
    ("se_c8_s2_relu_sigmoid", [1, 8, 5, 5], 2, "relu", "sigmoid"),
    # MobileNetV3's SE: partial(SqueezeExcitation, scale_activation=nn.Hardsigmoid)
    ("se_c16_s4_relu_hardsigmoid_batch2", [2, 16, 4, 4], 4, "relu", "hardsigmoid"),
    ("se_c96_s24_relu_sigmoid", [1, 96, 6, 6], 24, "relu", "sigmoid"),
]
MODULES = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid}


def make_se(index, spec):
    name, shape, s, act, scale_act = spec
    c = shape[1]
    gen = gen_for(index)
    x = feature_map(gen, shape)
    # Pooled descriptors are ~N(0, 1): fc1 pre-activations of std ~1.5 (half cut by the
    # ReLU), logits of std ~3, so hardsigmoid's clamps at +-3 are hit on both sides.
    w1 = randn(gen, [s, c, 1, 1], 1.5 / c**0.5)
    b1 = randn(gen, [s], 0.3)
    w2 = randn(gen, [c, s, 1, 1], 4.0 / s**0.5)
    b2 = randn(gen, [c], 0.5)
    se = SqueezeExcitation(c, s, activation=MODULES[act], scale_activation=MODULES[scale_act])
    se.eval()
    with torch.no_grad():
        for p, v in [(se.fc1.weight, w1), (se.fc1.bias, b1), (se.fc2.weight, w2),
                     (se.fc2.bias, b2)]:
            assert p.shape == v.shape, (name, p.shape, v.shape)
            p.copy_(v)
        y = se(x)
        y64 = se.double()(x.double())
        # The gate itself, to report how many hardsigmoid values are clamped.
        logits = se.fc2(se.activation(se.fc1(se.avgpool(x.double()))))
    note = check_f64(name, y, y64)
    if scale_act == "hardsigmoid":
        lo, hi = int((logits <= -3).sum()), int((logits >= 3).sum())
        assert lo > 0 and hi > 0, (name, lo, hi)
        note += f", {lo} gates clamped to 0 and {hi} to 1"
    case = {
        "op": "squeeze_excitation",
        "name": name,
        "input_channels": c,
        "squeeze_channels": s,
        "activation": act,
        "scale_activation": scale_act,
    }
    put(case, "fc1_weight", w1)
    put(case, "fc1_bias", b1)
    put(case, "fc2_weight", w2)
    put(case, "fc2_bias", b2)
    put(case, "input", x)
    put(case, "output", y)
    return case, note


# ---------------------------------------------------------------------------------------
# ECA, transcribed from the reference code (BangguWu/ECANet, models/eca_module.py)
def eca_kernel_size(channels, gamma=2, b=1):
    # ECANet's adaptive kernel size, as written in the paper and the reference code.
    t = int(abs((math.log(channels, 2) + b) / gamma))
    return t if t % 2 else t + 1


class EcaLayer(nn.Module):
    def __init__(self, channel, k_size=3):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        y = self.sigmoid(y)
        return x * y.expand_as(x)


# name, input_shape (k from the formula)
ECA = [
    ("eca_c16_k3", [1, 16, 5, 5]),
    ("eca_c64_k3_batch2", [2, 64, 3, 3]),
    ("eca_c256_k5_2x2", [1, 256, 2, 2]),
]


def make_eca(index, spec):
    name, shape = spec
    c = shape[1]
    k = eca_kernel_size(c)
    assert f"_k{k}" in name, (name, k)
    gen = gen_for(index)
    x = feature_map(gen, shape)
    w = randn(gen, [1, 1, k], 1.5 / k**0.5)
    eca = EcaLayer(c, k).eval()
    with torch.no_grad():
        eca.conv.weight.copy_(w)
        y = eca(x)
        y64 = eca.double()(x.double())
    case = {"op": "eca", "name": name, "channels": c, "kernel_size": k}
    put(case, "weight", w.reshape(k))
    put(case, "input", x)
    put(case, "output", y)
    return case, check_f64(name, y, y64)


def make_eca_table(index, spec):
    name, max_c = spec
    channels = list(range(1, max_c + 1))
    ks = [eca_kernel_size(c) for c in channels]
    # The same with exact log2, to make sure math.log's rounding does not decide.
    for c, k in zip(channels, ks):
        t = int(abs((math.log2(c) + 1) / 2))
        assert k == (t if t % 2 else t + 1), c
    case = {"op": "eca_kernel_size", "name": name, "channels": channels, "kernel_size": ks}
    return case, f"k in {sorted(set(ks))}"


# ---------------------------------------------------------------------------------------
# CBAM, transcribed from the reference code (Jongchan/attention-module, MODELS/cbam.py)
# with the spatial gate's BasicConv reduced to a plain Conv2d (no batch norm, no ReLU).
class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class ChannelGate(nn.Module):
    def __init__(self, gate_channels, reduction_ratio=16):
        super().__init__()
        self.mlp = nn.Sequential(
            Flatten(),
            nn.Linear(gate_channels, gate_channels // reduction_ratio),
            nn.ReLU(),
            nn.Linear(gate_channels // reduction_ratio, gate_channels),
        )

    def forward(self, x):
        hw = (x.size(2), x.size(3))
        avg_pool = F.avg_pool2d(x, hw, stride=hw)
        channel_att_sum = self.mlp(avg_pool)
        max_pool = F.max_pool2d(x, hw, stride=hw)
        channel_att_sum = channel_att_sum + self.mlp(max_pool)
        scale = torch.sigmoid(channel_att_sum).unsqueeze(2).unsqueeze(3).expand_as(x)
        return x * scale


class ChannelPool(nn.Module):
    def forward(self, x):
        return torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)


class SpatialGate(nn.Module):
    def __init__(self, kernel_size=7, bias=False):
        super().__init__()
        self.compress = ChannelPool()
        self.spatial = nn.Conv2d(2, 1, kernel_size, stride=1, padding=(kernel_size - 1) // 2,
                                 bias=bias)

    def forward(self, x):
        x_compress = self.compress(x)
        x_out = self.spatial(x_compress)
        scale = torch.sigmoid(x_out)  # broadcasting
        return x * scale


class Cbam(nn.Module):
    def __init__(self, gate_channels, reduction_ratio=16, kernel_size=7, bias=False):
        super().__init__()
        self.channel_gate = ChannelGate(gate_channels, reduction_ratio)
        self.spatial_gate = SpatialGate(kernel_size, bias)

    def forward(self, x):
        return self.spatial_gate(self.channel_gate(x))


# name, input_shape, reduction_ratio, spatial kernel, spatial bias
CBAM = [
    ("cbam_c32_r8_k7_bias", [1, 32, 7, 9], 8, 7, True),
    ("cbam_c16_r4_k7_nobias_batch2", [2, 16, 6, 7], 4, 7, False),
]


def make_cbam(index, spec):
    name, shape, r, k, has_bias = spec
    c = shape[1]
    hidden = c // r
    gen = gen_for(index)
    x = feature_map(gen, shape)
    w1 = randn(gen, [hidden, c], 1.5 / c**0.5)
    b1 = randn(gen, [hidden], 0.3)
    w2 = randn(gen, [c, hidden], 2.0 / max(hidden, 1)**0.5)
    b2 = randn(gen, [c], 0.5)
    ws = randn(gen, [1, 2, k, k], 2.0 / (2 * k * k) ** 0.5)
    bs = randn(gen, [1], 0.5) if has_bias else None
    m = Cbam(c, r, k, has_bias).eval()
    with torch.no_grad():
        mlp = m.channel_gate.mlp
        params = [(mlp[1].weight, w1), (mlp[1].bias, b1), (mlp[3].weight, w2),
                  (mlp[3].bias, b2), (m.spatial_gate.spatial.weight, ws)]
        if has_bias:
            params.append((m.spatial_gate.spatial.bias, bs))
        else:
            assert m.spatial_gate.spatial.bias is None
        for p, v in params:
            assert p.shape == v.shape, (name, p.shape, v.shape)
            p.copy_(v)
        y = m(x)
        y64 = m.double()(x.double())
    case = {
        "op": "cbam",
        "name": name,
        "pool_order": "max_mean",
        "gate_channels": c,
        "reduction_ratio": r,
        "kernel_size": k,
        "bias": has_bias,
    }
    put(case, "mlp1_weight", w1)
    put(case, "mlp1_bias", b1)
    put(case, "mlp2_weight", w2)
    put(case, "mlp2_bias", b2)
    put(case, "spatial_weight", ws)
    if has_bias:
        put(case, "spatial_bias", bs)
    else:
        case["spatial_bias_shape"], case["spatial_bias"] = None, None
    put(case, "input", x)
    put(case, "output", y)
    return case, check_f64(name, y, y64)


# CBAM as the common PyTorch ports write it (luuuyi/CBAM.PyTorch, timm's order): the MLP
# as 1x1 convolutions without bias, the spatial maps in [mean, max] order, a spatial
# convolution without bias.
class CbamMeanMax(nn.Module):
    def __init__(self, channels, reduction_ratio, kernel_size):
        super().__init__()
        hidden = channels // reduction_ratio
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        mlp = lambda d: self.fc2(F.relu(self.fc1(d)))
        ca = torch.sigmoid(mlp(F.adaptive_avg_pool2d(x, 1)) + mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * ca
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


def make_cbam_mean_max(index, spec):
    name, shape, r, k = spec
    c = shape[1]
    hidden = c // r
    gen = gen_for(index)
    x = feature_map(gen, shape)
    w1 = randn(gen, [hidden, c, 1, 1], 1.5 / c**0.5)
    w2 = randn(gen, [c, hidden, 1, 1], 2.0 / hidden**0.5)
    ws = randn(gen, [1, 2, k, k], 2.0 / (2 * k * k) ** 0.5)
    m = CbamMeanMax(c, r, k).eval()
    with torch.no_grad():
        for p, v in [(m.fc1.weight, w1), (m.fc2.weight, w2), (m.conv.weight, ws)]:
            p.copy_(v)
        y = m(x)
        y64 = m.double()(x.double())
    case = {
        "op": "cbam",
        "name": name,
        "pool_order": "mean_max",
        "gate_channels": c,
        "reduction_ratio": r,
        "kernel_size": k,
        "bias": False,
    }
    # The MLP weights as the other CBAM cases store them: [out, in].
    put(case, "mlp1_weight", w1.reshape(hidden, c))
    case["mlp1_bias_shape"], case["mlp1_bias"] = None, None
    put(case, "mlp2_weight", w2.reshape(c, hidden))
    case["mlp2_bias_shape"], case["mlp2_bias"] = None, None
    put(case, "spatial_weight", ws)
    case["spatial_bias_shape"], case["spatial_bias"] = None, None
    put(case, "input", x)
    put(case, "output", y)
    return case, check_f64(name, y, y64)


# ---------------------------------------------------------------------------------------
# Highway and residual attention (elementwise, with given tensors)
def highway(x, h, t_logits):
    t = torch.sigmoid(t_logits)
    return h * t + x * (1 - t)


def residual_attention(x, f, mask):
    return (1 + mask) * f + x


def make_highway(index, spec):
    name, shape = spec
    gen = gen_for(index)
    x, h = randn(gen, shape), randn(gen, shape, 2.0)
    t_logits = randn(gen, shape, 3.0)
    y = highway(x, h, t_logits)
    note = check_f64(name, y, highway(x.double(), h.double(), t_logits.double()))
    case = {"op": "highway", "name": name}
    put(case, "input", x)
    put(case, "h", h)
    put(case, "t_logits", t_logits)
    put(case, "output", y)
    return case, note


def make_residual_attention(index, spec):
    name, shape = spec
    gen = gen_for(index)
    x, f = randn(gen, shape), randn(gen, shape, 2.0)
    mask = torch.sigmoid(randn(gen, shape, 2.0))  # a soft mask in (0, 1)
    y = residual_attention(x, f, mask)
    note = check_f64(name, y, residual_attention(x.double(), f.double(), mask.double()))
    case = {"op": "residual_attention", "name": name}
    put(case, "input", x)
    put(case, "f", f)
    put(case, "mask", mask)
    put(case, "output", y)
    return case, note


# ---------------------------------------------------------------------------------------
# Scaled dot-product attention over the pixels of NCHW maps: q [N, heads*E, Hq, Wq] and
# k / v [N, heads*E|heads*Ev, Hk, Wk], head h on channels h*E.., tokens in row-major pixel
# order (the Mix Transformer's layout after its Linear projections).
# name, batch, heads, E, Ev, query map, key map, scale (None: 1 / sqrt(E))
SDPA = [
    ("sdpa_h1_e32_q4x4_k2x2", 1, 1, 32, 32, [4, 4], [2, 2], None),
    ("sdpa_h3_e4_batch2_q5x3_k3x3", 2, 3, 4, 4, [5, 3], [3, 3], None),
    ("sdpa_h2_e3_ev5_q4x3_k7x2_scale", 1, 2, 3, 5, [4, 3], [7, 2], 0.37),
    ("sdpa_h1_e8_ev72_self_3x2", 1, 1, 8, 72, [3, 2], [3, 2], None),
]


def sdpa_tokens(q, k, v, heads, scale):
    """PyTorch's F.scaled_dot_product_attention on the maps' tokens, back to NCHW."""
    def heads_of(t):
        n, c, h, w = t.shape
        return t.reshape(n, heads, c // heads, h * w).transpose(2, 3)
    y = F.scaled_dot_product_attention(heads_of(q), heads_of(k), heads_of(v), scale=scale)
    n, _, hq, wq = q.shape
    return y.transpose(2, 3).reshape(n, -1, hq, wq)


def make_sdpa(index, spec):
    name, n, heads, e, ev, qs, ks, scale = spec
    gen = gen_for(index)
    q = randn(gen, [n, heads * e] + qs, 1.5)
    k = randn(gen, [n, heads * e] + ks, 1.5)
    v = randn(gen, [n, heads * ev] + ks)
    y = sdpa_tokens(q, k, v, heads, scale)
    # The explicit formula, in f64: softmax(q k^T * scale) v.
    def explicit(q, k, v):
        def heads_of(t):
            nn_, c, h, w = t.shape
            return t.reshape(nn_, heads, c // heads, h * w).transpose(2, 3)
        s = scale if scale is not None else e ** -0.5
        a = torch.softmax(heads_of(q) @ heads_of(k).transpose(-2, -1) * s, dim=-1)
        out = a @ heads_of(v)
        return out.transpose(2, 3).reshape(n, -1, qs[0], qs[1])
    note = check_f64(name, y, explicit(q.double(), k.double(), v.double()))
    case = {"op": "sdpa", "name": name, "num_heads": heads}
    if scale is not None:
        case["scale"] = scale
    put(case, "q", q)
    put(case, "k", k)
    put(case, "v", v)
    put(case, "output", y)
    return case, note


def make_position_attention(index, spec):
    """smp MAnet's PABBlock core, line by line: one softmax over the whole score map and
    the token-major product reshaped to the map (q = center, k = top, v = bottom)."""
    name, n, e, c, hw = spec
    gen = gen_for(index)
    center = randn(gen, [n, e] + hw, 0.7)
    top = randn(gen, [n, e] + hw, 0.7)
    bottom = randn(gen, [n, c] + hw)

    def pab(center, top, bottom):
        x_top = top.flatten(2)
        x_center = center.flatten(2).transpose(1, 2)
        x_bottom = bottom.flatten(2).transpose(1, 2)
        sp_map = torch.matmul(x_center, x_top)
        sp_map = torch.softmax(sp_map.view(n, -1), dim=1)
        sp_map = sp_map.view(n, hw[0] * hw[1], hw[0] * hw[1])
        sp_map = torch.matmul(sp_map, x_bottom)
        return sp_map.reshape(n, c, hw[0], hw[1])
    y = pab(center, top, bottom)
    note = check_f64(name, y, pab(center.double(), top.double(), bottom.double()))
    case = {"op": "sdpa", "name": name, "num_heads": 1, "scale": 1.0, "softmax": "all",
            "token_major": True}
    put(case, "q", center)
    put(case, "k", top)
    put(case, "v", bottom)
    put(case, "output", y)
    return case, note


def make_spatial_gather(index, spec):
    """HRNet-OCR's SpatialGather_Module(cls_num, scale).forward, line by line: each class's
    softmax over the pixels of its logits weights the features, `[N, C, K, 1]`."""
    name, n, classes, c, hw, scale = spec
    gen = gen_for(index)
    probs = randn(gen, [n, classes] + hw, 2.0)
    feats = randn(gen, [n, c] + hw)

    def gather(feats, probs):
        batch_size, c, h, w = probs.size(0), probs.size(1), probs.size(2), probs.size(3)
        probs = probs.view(batch_size, c, -1)
        feats = feats.view(batch_size, feats.size(1), -1)
        feats = feats.permute(0, 2, 1)
        probs = F.softmax(scale * probs, dim=2)
        return torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)
    y = gather(feats, probs)
    note = check_f64(name, y, gather(feats.double(), probs.double()))
    case = {"op": "spatial_gather", "name": name, "scale": scale}
    put(case, "probs", probs)
    put(case, "feats", feats)
    put(case, "output", y)
    return case, note


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    jobs = [(make_shuffle, spec) for spec in SHUFFLE]
    jobs += [(make, [name] + spec) for name, make, spec in CONCAT_SPLIT]
    jobs += [(lambda i, a: make_add(i, a), act) for act in ACT_NAMES]
    jobs += [(lambda i, a: make_activation(i, a), act) for act in ACT_NAMES]
    jobs += [(make_se, spec) for spec in SE]
    jobs += [(make_eca, spec) for spec in ECA]
    jobs += [(make_eca_table, ("eca_kernel_size_c1_to_2048", 2048))]
    jobs += [(make_cbam, spec) for spec in CBAM]
    jobs += [(make_highway, ("highway_2x3x4x5", [2, 3, 4, 5]))]
    jobs += [(make_residual_attention, ("residual_attention_2x3x4x5", [2, 3, 4, 5]))]
    # Added later, so the earlier cases keep their seeds.
    jobs += [(make_cbam_mean_max, ("cbam_c16_r4_k7_meanmax_nobias_batch2", [2, 16, 6, 7], 4, 7))]
    # Fewer channels than the reduction ratio: Linear(C, 0), whose output is empty, and
    # Linear(0, C), which gives its bias alone.
    jobs += [(make_cbam, ("cbam_c6_r16_k3_bias_batch2_no_hidden", [2, 6, 5, 7], 16, 3, True))]

    jobs += [(make_sdpa, spec) for spec in SDPA]
    jobs += [(make_position_attention, ("manet_position_attention_batch2", 2, 4, 6, [3, 4]))]
    jobs += [(make_spatial_gather, ("ocr_spatial_gather_19_classes_batch2", 2, 19, 3, [2, 3], 1.0))]
    jobs += [(make_spatial_gather, ("ocr_spatial_gather_scale_half", 1, 3, 4, [3, 4], 0.5))]

    cases = []
    for index, (make, spec) in enumerate(jobs):
        case, note = make(index, spec)
        cases.append(case)
        print(f"{case['name']:40s} {note}")

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"

    with open(OUT, "w") as f:
        f.write("[\n")
        for i, c in enumerate(cases):
            f.write(json.dumps(c, separators=(",", ":"), allow_nan=False))
            f.write(",\n" if i + 1 < len(cases) else "\n")
        f.write("]\n")
    size = os.path.getsize(OUT)
    assert size < 470_000, f"{OUT} is {size} bytes, keep it under 470 KB"
    print(
        f"wrote {len(cases)} cases to {OUT} ({size} bytes), "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    )


if __name__ == "__main__":
    sys.exit(main())
