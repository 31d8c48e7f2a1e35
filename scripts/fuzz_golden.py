#!/usr/bin/env python3
"""Random PyTorch cases in the golden files' formats, to fuzz the GPU kernels and the CPU
references against PyTorch on configurations nobody wrote down.

    torch.venv/bin/python scripts/fuzz_golden.py /tmp/fuzz --count 200 --seed 1
    SEGBLOCKS_GOLDEN_DIR=/tmp/fuzz cargo test --test golden_decoder --test golden_conv \
        --test golden_norm --test golden_channel --test copy -- matches_pytorch
    SEGBLOCKS_GOLDEN_DIR=/tmp/fuzz cargo test --test conv padding_modes
    SEGBLOCKS_GOLDEN_DIR=/tmp/fuzz cargo test --test pool avg_pool
    SEGBLOCKS_GOLDEN_DIR=/tmp/fuzz cargo test --release --test blocks torchvision_blocks
    SEGBLOCKS_GOLDEN_DIR=/tmp/fuzz cargo test --test channel pytorch
    SEGBLOCKS_GOLDEN_DIR=/tmp/fuzz cargo test --release --test networks

With SEGBLOCKS_GOLDEN_DIR set, tests/common/golden.rs reads a file of the same name from
that directory instead of the committed one (the tests that check the committed files'
coverage then fail: only the comparisons with PyTorch are meant to run). Writes
decoder.json (transposed conv, max pool with indices, max unpool, interpolate in every
mode with and without antialias, adaptive pools), conv2d.json, conv2d_padding.json,
avg_pool.json, pad.json, norm.json, channel.json, activation.json, blocks/
(torchvision's blocks with random widths, strides, dilations, groups and expand ratios)
and networks/ (whole networks at random configurations and sizes), each made by the committed
golden script's own case builders on random parameters; `--only` picks families. Cases PyTorch refuses are skipped, and
two PyTorch behaviours the library does not copy are left out: circular padding with
negative pads (PyTorch reads memory outside the input there) and antialiased resizing to
one column with a change of height (PyTorch's CPU kernel repeats the first row).

`--calibrated` gives the network cases batch-norm statistics measured on a random batch and
float64 outputs (make_golden_networks.calibrate; tests/golden/README.md), so that features
deep in an encoder reach the output at full scale.

`--non-finite P` puts NaN, +inf and -inf at a fraction P of each case's input (the first
tensor a builder draws; for average pooling, padding and the activations, the stored input,
whose output is then computed again), for the decoder, conv2d, channel, avg_pool, pad and
activation families; the other families' inputs are drawn otherwise and stay finite (the
norm scripts refuse NaN outputs; `tests/norm.rs` checks non-finite norms instead). Two differences from PyTorch's CPU
f32 kernels are expected there and not copied: its exact GELU gives NaN for +inf (its
f64 kernel, and the formula, give +inf, as the library does), and in antialiased resizes
PyTorch, the GPU kernel and the reference do not multiply the same taps of weight 0 at a
window's edge (NaN where one of them multiplies such a tap by an infinity).
"""

import argparse
import importlib
import importlib.util
import json
import math
import os
import random
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))


# Multipliers of the spatial sizes and channel counts drawn (`--scale`, `--channel-scale`):
# larger shapes reach the kernel variants and index ranges that small cases never do.
SCALE = {"size": 1, "channels": 1}


def sz(hi):
    return hi * SCALE["size"]


def ch(hi):
    return hi * SCALE["channels"]


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


class Fuzz:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def pr(self, lo, hi):
        """One size or a (height, width) pair, as PyTorch accepts both."""
        r = self.r
        return (r.randint(lo, hi), r.randint(lo, hi)) if r.random() < 0.4 else r.randint(lo, hi)

    def shape(self, maxc=4, lo=1, hi=12):
        r = self.r
        return [r.choice([1, 1, 2]), r.randint(1, ch(maxc)), r.randint(lo, sz(hi)),
                r.randint(lo, sz(hi))]


def conv_fits(shape, k, s, p, d):
    k, s, p, d = pair(k), pair(s), pair(p), pair(d)
    return all(shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1 >= 0 for i in range(2))


def write_list(path, cases):
    with open(path, "w") as f:
        json.dump(cases, f, separators=(",", ":"), allow_nan=False)
    print(f"wrote {len(cases)} cases to {path}")


# `--non-finite P`: the first tensor each case draws with torch.randn (its input, in the
# golden scripts' builders) gets NaN, +inf and -inf at a fraction P of its entries, so that
# PyTorch's answers on non-finite inputs become golden values (the Rust side's comparison
# takes matching NaNs and infinities as equal).
NON_FINITE = {"p": 0.0, "draws": 0, "depth": 0}
_RANDN = torch.randn


def with_non_finite(t, g):
    """`t` with NaN, +inf or -inf (drawn from `g`) at a fraction NON_FINITE["p"] of it."""
    hit = torch.rand(t.shape, generator=g) < NON_FINITE["p"]
    kind = torch.randint(0, 3, t.shape, generator=g)
    return torch.where(hit, torch.tensor([math.nan, math.inf, -math.inf])[kind], t)


def _randn_with_non_finite(*args, **kwargs):
    t = _RANDN(*args, **kwargs)
    NON_FINITE["draws"] += 1
    if NON_FINITE["p"] > 0 and NON_FINITE["draws"] == 1 and t.dtype == torch.float32:
        t = with_non_finite(t, torch.Generator().manual_seed(t.numel()))
    return t


torch.randn = _randn_with_non_finite


def redo_with_non_finite(path, op):
    """With --non-finite, for the golden scripts that draw their inputs in main() (average
    pooling, padding, activations): NaN / +inf / -inf put into each case's stored input,
    and the output computed again by `op(case, input)`, which is first checked to give the
    stored output on the stored input."""
    if NON_FINITE["p"] <= 0:
        return
    special = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

    def enc(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else v

    with open(path) as f:
        doc = json.load(f)
    cases = doc["cases"] if isinstance(doc, dict) else doc
    g = torch.Generator().manual_seed(len(cases))
    for c in cases:
        x = torch.tensor([special.get(v, v) if isinstance(v, str) else v for v in c["input"]],
                         dtype=torch.float32).view(c["input_shape"])
        # `op` must give the stored output on the stored input: it mirrors the script.
        y = op(c, x)
        want = torch.tensor(c["output"], dtype=y.dtype).view(y.shape)
        assert torch.allclose(y, want, rtol=1e-6, atol=1e-6, equal_nan=True), c["name"]
        x = with_non_finite(x, g)
        y = op(c, x)
        assert y.shape == want.shape, c["name"]
        c["input"] = [enc(float(v)) for v in x.reshape(-1)]
        c["output"] = ([enc(float(v)) for v in y.reshape(-1)] if y.is_floating_point()
                       else [int(v) for v in y.reshape(-1)])
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)


def run(builders, count, first_index, name_of):
    """Calls each (make, spec) builder until `count` cases are made; PyTorch's refusals skip."""
    cases, index = [], first_index
    for make, spec in builders:
        if len(cases) >= count:
            break
        index += 1
        NON_FINITE["draws"] = 0
        try:
            case, _ = make(index, spec)
        except (RuntimeError, ValueError, AssertionError, ZeroDivisionError) as e:
            print(f"  skip {name_of(spec)}: {e}")
            continue
        cases.append(case)
    return cases


def decoder(fz, count, out):
    m = importlib.import_module("make_golden_decoder")
    r = fz.r

    def conv_t(i):
        g = r.choice([1, 1, 1, 2, 3])
        cin, cout = g * r.randint(1, ch(3)), g * r.randint(1, ch(3))
        if r.random() < 0.2:
            g = cin = cout = r.randint(1, ch(5))
        s, d, k, p = fz.pr(1, 3), fz.pr(1, 2), fz.pr(1, 5), fz.pr(0, 2)
        sp, dp = pair(s), pair(d)
        op = tuple(r.randint(0, max(0, max(sp[a], dp[a]) - 1)) for a in range(2))
        sh = fz.shape()
        sh[1] = cin
        act = r.choice(["none", "relu", "sigmoid"])
        return m.make_conv_t, (f"fuzz{i}_convt", sh, cout, k, s, p, op, d, g, r.random() < 0.7, act)

    def pool(i):
        k = fz.pr(1, 4)
        kk = pair(k)
        p = (r.randint(0, kk[0] // 2), r.randint(0, kk[1] // 2))
        kind = r.choice(["randn", "randn", "ties"])
        return m.make_pool, (f"fuzz{i}_pool", fz.shape(3, 2, 13), k, fz.pr(1, 3), p, fz.pr(1, 2),
                             r.random() < 0.5, kind)

    def unpool(i):
        k = fz.pr(1, 3)
        kk = pair(k)
        p = (r.randint(0, kk[0] // 2), r.randint(0, kk[1] // 2))
        return m.make_unpool, (f"fuzz{i}_unpool", fz.shape(3, 3, 11), k, fz.pr(1, 3), p, None,
                               r.random() < 0.3)

    def interp(i):
        mode = r.choice(["nearest", "nearest-exact", "bilinear", "bicubic"])
        align = None if mode.startswith("nearest") else r.random() < 0.5
        if r.random() < 0.5:
            size, scale = (r.randint(1, sz(14)), r.randint(1, sz(14))), None
        else:
            size = None
            scale = r.choice([round(r.uniform(0.3, 3.0), 2),
                              (round(r.uniform(0.3, 3.0), 2), round(r.uniform(0.3, 3.0), 2))])
        return m.make_interp, (f"fuzz{i}_interp", fz.shape(3, 1, 9), mode, align, size, scale,
                               r.random() < 0.3)

    def adaptive(i):
        op = r.choice(["adaptive_avg_pool2d", "adaptive_max_pool2d"])
        size = (r.choice([None, r.randint(1, 9)]), r.randint(1, 9))
        return m.make_adaptive, (f"fuzz{i}_adaptive", op, fz.shape(3, 1, 12), size, "randn")

    def antialias(i):
        sh = fz.shape(2, 2, 16)
        if r.random() < 0.5:
            size, scale = (r.randint(1, 12), r.randint(2, 12)), None
        else:
            size, scale = None, round(r.uniform(0.2, 2.5), 2)
            if int(sh[3] * scale) <= 1:
                scale = 2.0 / sh[3]  # see the module docstring: not one column
        return m.make_aa, (f"fuzz{i}_aa", sh, r.choice(["bilinear", "bicubic"]), r.random() < 0.5,
                           size, scale)

    def area(i):
        sh = fz.shape(2, 1, 12)
        if r.random() < 0.5:
            return m.make_area, (f"fuzz{i}_area", sh, (r.randint(1, 12), r.randint(1, 12)), None)
        scale = round(r.uniform(0.5, 2.0), 2)
        if min(int(sh[2] * scale), int(sh[3] * scale)) == 0:
            scale = 1.5  # PyTorch pools to an empty tensor; the library refuses empty outputs
        return m.make_area, (f"fuzz{i}_area", sh, None, scale)

    makers = [conv_t, pool, unpool, interp, adaptive, antialias, area]
    builders = (makers[i % len(makers)](i) for i in range(count * 20))
    write_list(os.path.join(out, "decoder.json"), run(builders, count, 5000, lambda s: s[0]))


def with_cases(module, cases, out, name):
    """Runs a golden script whose main() writes its module-level CASES to OUT."""
    m = importlib.import_module(module)
    m.CASES, m.OUT = cases, os.path.join(out, name)
    for attr in [a for a in dir(m) if a.startswith("make")]:
        if callable(getattr(m, attr)):
            setattr(m, attr, drawing_anew(getattr(m, attr)))
    m.main()


def drawing_anew(make):
    """`make` with the first torch.randn of each outermost call counted as a case's first
    (see NON_FINITE)."""
    def wrapped(*args, **kwargs):
        if NON_FINITE["depth"] == 0:
            NON_FINITE["draws"] = 0
        NON_FINITE["depth"] += 1
        try:
            made = make(*args, **kwargs)
        finally:
            NON_FINITE["depth"] -= 1
        # The scripts' own f32-vs-f64 checks: NaN where the input has NaN or infinities.
        if isinstance(made, tuple) and len(made) == 2 and isinstance(made[1], float) \
                and math.isnan(made[1]):
            made = (made[0], 0.0)
        return made
    return wrapped


def conv2d(fz, count, out):
    r = fz.r
    acts = list(importlib.import_module("make_golden").ACTIVATIONS)
    cases = []
    while len(cases) < count:
        g = r.choice([1, 1, 1, 2, 3, 4])
        cin, cout = g * r.randint(1, ch(4)), g * r.randint(1, ch(4))
        if r.random() < 0.25:
            g = cin = r.randint(1, ch(9))
            cout = cin * r.choice([1, 1, 2])
        shape = [r.choice([1, 1, 2, 3]), cin, r.randint(1, sz(12)), r.randint(1, sz(12))]
        k, s, p, d = fz.pr(1, 5), fz.pr(1, 3), fz.pr(0, 3), fz.pr(1, 3)
        if conv_fits(shape, k, s, p, d):
            # The first cases use every activation (the script checks they are covered).
            act = acts[len(cases)] if len(cases) < len(acts) else r.choice(acts)
            cases.append((f"fuzz{len(cases)}", shape, cout, k, s, p, d, g, r.random() < 0.7, act))
    with_cases("make_golden", cases, out, "conv2d.json")


def conv2d_padding(fz, count, out):
    r = fz.r
    cases = []
    while len(cases) < count:
        g = r.choice([1, 1, 2, 3])
        cin, cout = g * r.randint(1, ch(3)), g * r.randint(1, ch(3))
        shape = [r.choice([1, 2]), cin, r.randint(2, sz(10)), r.randint(2, sz(10))]
        mode = r.choice(["zeros", "reflect", "replicate", "circular"])
        k, d = fz.pr(1, 5), fz.pr(1, 2)
        if r.random() < 0.4:
            p, s = "same", 1
            kk, dd = pair(k), pair(d)
            pads = [(dd[a] * (kk[a] - 1) + 1) // 2 for a in range(2)]
        else:
            p, s = fz.pr(0, 3), fz.pr(1, 3)
            pads = pair(p)
            if not conv_fits(shape, k, s, p, d):
                continue
        if mode == "reflect" and any(pads[a] >= shape[2 + a] for a in range(2)):
            continue
        if mode == "circular" and any(pads[a] > shape[2 + a] for a in range(2)):
            continue
        cases.append((f"fuzz{len(cases)}", shape, cout, k, s, p, d, g, mode))
    with_cases("make_golden_padding", cases, out, "conv2d_padding.json")


def avg_pool(fz, count, out):
    r = fz.r
    cases = []
    while len(cases) < count:
        k = fz.pr(1, 4)
        kk = pair(k)
        p = (r.randint(0, kk[0] // 2), r.randint(0, kk[1] // 2))
        shape = [r.choice([1, 2]), r.randint(1, ch(3)), r.randint(1, sz(11)), r.randint(1, sz(11))]
        if any(shape[2 + a] + 2 * p[a] < kk[a] for a in range(2)):
            continue
        div = r.choice([None, None, r.randint(1, 7)])
        cases.append((f"fuzz{len(cases)}", shape, k, fz.pr(1, 3), p, r.random() < 0.5,
                      r.random() < 0.5, div))
    with_cases("make_golden_avgpool", cases, out, "avg_pool.json")
    redo_with_non_finite(os.path.join(out, "avg_pool.json"), lambda c, x: F.avg_pool2d(
        x, c["kernel_size"], c["stride"], c["padding"], c["ceil_mode"],
        c["count_include_pad"], c["divisor_override"]))


def pad(fz, count, out):
    r = fz.r
    cases = []
    while len(cases) < count:
        mode = r.choice(["constant", "reflect", "replicate", "circular"])
        shape = [r.choice([1, 2]), r.randint(1, ch(3)), r.randint(1, sz(8)), r.randint(1, sz(8))]
        pads = tuple(r.randint(-3, 5) for _ in range(4))
        if mode == "circular" and min(pads) < 0:
            continue  # see the module docstring
        value = round(r.uniform(-2, 2), 2) if mode == "constant" else None
        try:
            kwargs = {"value": value} if value is not None else {}
            if torch.nn.functional.pad(torch.zeros(shape), pads, mode=mode, **kwargs).numel() == 0:
                continue
        except (RuntimeError, ValueError):
            continue
        cases.append((f"fuzz{len(cases)}", shape, pads, mode, value))
    with_cases("make_golden_pad", cases, out, "pad.json")
    redo_with_non_finite(os.path.join(out, "pad.json"), lambda c, x: F.pad(
        x, c["pad"], c["mode"], c["value"]) if c["mode"] == "constant" else F.pad(
        x, c["pad"], c["mode"]))


def norm(fz, count, out):
    m = importlib.import_module("make_golden_norm")
    r = fz.r

    def shape(minhw=1):
        return [r.choice([1, 2, 3]), r.randint(1, ch(6)), r.randint(minhw, sz(9)),
                r.randint(minhw, sz(9))]

    def eps():
        return r.choice([1e-5, 1e-3, 0.1])

    def bn_train(i):
        s = shape(2)
        return m.make_bn_train, (f"fuzz{i}_bn_train", s, eps(), r.choice([0.1, 0.3, None]),
                                 r.random() < 0.7, "randn")

    def group(i):
        g = r.randint(1, 4)
        s = shape()
        s[1] = g * r.randint(1, 3)
        return m.make_group, (f"fuzz{i}_group", s, g, eps())

    def adain(i):
        s = shape(2)
        st = [s[0], s[1], r.randint(2, 9), r.randint(2, 9)]
        return m.make_adain, (f"fuzz{i}_adain", s, st, eps())

    makers = [
        bn_train,
        lambda i: (m.make_bn_eval, (f"fuzz{i}_bn_eval", shape(), eps())),
        group,
        lambda i: (m.make_layer, (f"fuzz{i}_layer", shape(), eps())),
        lambda i: (m.make_instance, (f"fuzz{i}_instance", shape(2), eps(), r.random() < 0.5)),
        lambda i: (m.make_layer_trailing, (f"fuzz{i}_layer_trailing", shape(), r.randint(1, 3),
                                           r.random() < 0.5)),
        lambda i: (m.make_instance_running, (f"fuzz{i}_instance_running", shape(),
                                             r.random() < 0.5)),
        adain,
    ]
    builders = (makers[i % len(makers)](i) for i in range(count * 20))
    write_list(os.path.join(out, "norm.json"), run(builders, count, 7000, lambda s: s[0]))


def channel(fz, count, out):
    m = importlib.import_module("make_golden_channel")
    r = fz.r

    def job(i):
        n, h, w = r.choice([1, 2, 3]), r.randint(1, sz(9)), r.randint(1, sz(9))
        kind = i % 6
        if kind == 0:
            g = r.randint(1, 4)
            return m.make_shuffle, (f"fuzz{i}_shuffle", [n, g * r.randint(1, 5), h, w], g)
        if kind == 1:
            widths = [r.randint(1, 5) for _ in range(r.randint(1, 4))]
            return m.make_cat, [f"fuzz{i}_cat", n, widths, h, w]
        if kind == 2:
            c = r.randint(2, 12)
            if r.random() < 0.5:
                sections, left = [], c
                while left > 0:
                    sections.append(r.randint(1, left))
                    left -= sections[-1]
                return m.make_split, [f"fuzz{i}_split", [n, c, h, w], sections]
            return m.make_split, [f"fuzz{i}_split", [n, c, h, w], r.randint(1, c)]
        if kind == 3:
            gate = r.choice(["sigmoid", "hardsigmoid"])
            return m.make_se, (f"fuzz{i}_se", [n, r.randint(1, 40), h, w], r.randint(1, 16),
                               "relu", gate)
        if kind == 4:
            c = r.randint(1, 300)
            return m.make_eca, (f"fuzz{i}_eca_k{m.eca_kernel_size(c)}", [n, c, h, w])
        # Channels need not be a multiple of the ratio, and may be fewer (no hidden channel).
        ratio = r.choice([1, 2, 4, 16])
        return m.make_cbam, (f"fuzz{i}_cbam", [n, r.randint(1, 8 * ratio), h, w], ratio,
                             r.choice([3, 5, 7]), r.random() < 0.5)

    builders = (job(i) for i in range(count * 20))
    write_list(os.path.join(out, "channel.json"), run(builders, count, 9000, lambda s: s[0]))


def blocks(fz, count, out):
    """Random torchvision blocks (and the CBAM authors' module) in blocks/cases.json's format:
    odd sizes, batch up to 3, strides, dilations, groups, float expand ratios, SE, and
    weights scaled up so that the clamps saturate."""
    m = importlib.import_module("make_golden_blocks")
    r = fz.r

    def shape(c, lo=1, hi=13):
        return [r.choice([1, 1, 2, 3]), c, r.randint(lo, sz(hi)), r.randint(lo, sz(hi))]

    def mbv2(i):
        inp = r.randint(1, 40)
        stride = r.choice([1, 2])
        oup = inp if stride == 1 and r.random() < 0.5 else r.randint(1, 40)
        ratio = r.choice([1, 2, 3, 4, 6, 2.5, 0.5])
        if round(inp * ratio) == 0:
            ratio = 1
        return (f"fuzz{i}_mbv2", "torchvision.models.mobilenetv2.InvertedResidual",
                lambda: m.mbv2_ir(inp, oup, stride, ratio), shape(inp))

    def mbv3(i):
        # InvertedResidualConfig rounds every width to a multiple of 8; the stored
        # arguments are the rounded ones (width_mult 1 keeps them).
        c8 = lambda lo, hi: 8 * r.randint(lo, hi)  # noqa: E731
        cin = c8(1, 5)
        dilation = r.choice([1, 1, 2])
        stride = r.choice([1, 2]) if dilation == 1 else 1
        expanded = cin if r.random() < 0.25 else c8(1, 12)
        out_c = cin if stride == 1 and r.random() < 0.5 else c8(1, 6)
        kw = dict(input_channels=cin, kernel=r.choice([3, 5]), expanded_channels=expanded,
                  out_channels=out_c, use_se=r.random() < 0.5, activation=r.choice(["HS", "RE"]),
                  stride=stride, dilation=dilation, width_mult=1.0)
        return (f"fuzz{i}_mbv3", "torchvision.models.mobilenetv3.InvertedResidual",
                lambda: m.mbv3_ir(**kw), shape(cin))

    def bottleneck(i):
        groups = r.choice([1, 1, 2, 4])
        inplanes, planes = r.randint(1, 24), r.randint(1, 8)
        base_width = r.choice([64, 64, 32, 16]) if groups > 1 else 64
        if int(planes * (base_width / 64.0)) == 0:
            base_width = 64
        stride = r.choice([1, 2])
        dilation = r.choice([1, 1, 2, 3])
        kw = dict(inplanes=inplanes, planes=planes, stride=stride, groups=groups,
                  base_width=base_width, dilation=dilation)
        if stride != 1 or inplanes != planes * 4 or r.random() < 0.2:
            kw["downsample"] = (inplanes, planes * 4, stride)
        return (f"fuzz{i}_bottleneck", "torchvision.models.resnet.Bottleneck",
                lambda: m.bottleneck(**kw), shape(inplanes))

    def basic_block(i):
        inplanes, planes = r.randint(1, 24), r.randint(1, 24)
        stride = r.choice([1, 2])
        kw = dict(inplanes=inplanes, planes=planes, stride=stride)
        if stride != 1 or inplanes != planes or r.random() < 0.2:
            kw["downsample"] = (inplanes, planes, stride)
        return (f"fuzz{i}_basic_block", "torchvision.models.resnet.BasicBlock",
                lambda: m.basic_block(**kw), shape(inplanes))

    def shufflenet(i):
        stride = r.choice([1, 2])
        oup = 2 * r.randint(1, 16)
        inp = oup if stride == 1 else r.randint(1, 32)
        return (f"fuzz{i}_shufflenet", "torchvision.models.shufflenetv2.InvertedResidual",
                lambda: m.shufflenet_ir(inp, oup, stride), shape(inp))

    def se(i):
        c = r.randint(1, 48)
        s = r.randint(1, 24)
        return (f"fuzz{i}_se", "torchvision.ops.misc.SqueezeExcitation",
                lambda: m.squeeze_excitation(c, s), shape(c))

    def aspp(i):
        c = r.randint(1, 24)
        rates = tuple(r.randint(1, 8) for _ in range(r.randint(1, 4)))
        out_c = r.randint(1, 16)
        return (f"fuzz{i}_aspp", "torchvision.models.segmentation.deeplabv3.ASPP",
                lambda: m.aspp(c, rates, out_c), shape(c))

    def dense(i):
        kw = (r.randint(1, 4), r.randint(1, 12), r.randint(1, 4), r.randint(1, 8))
        return (f"fuzz{i}_dense", "torchvision.models.densenet._DenseBlock",
                lambda: m.dense_block(*kw), shape(kw[1]))

    def fcn(i):
        c = r.randint(4, 40)
        k = r.randint(1, 8)
        return (f"fuzz{i}_fcnhead", "torchvision.models.segmentation.fcn.FCNHead",
                lambda: m.fcn_head(c, k), shape(c))

    def cbam(i):
        ratio = r.choice([1, 2, 4, 8, 16])
        c = r.randint(1, 6 * ratio)
        return (f"fuzz{i}_cbam", "cbam_reference.CBAM", lambda: m.cbam(c, ratio), shape(c))

    makers = [mbv2, mbv3, bottleneck, shufflenet, se, aspp, dense, fcn, cbam, basic_block]
    plain, saturating = [], []
    for i in range(count):
        case = makers[i % len(makers)](i)
        (saturating if r.random() < 0.25 and case[1].endswith("InvertedResidual") else plain).append(case)
    m.OUT_DIR = os.path.join(out, "blocks")
    m.CASES, m.EXTRA_CASES, m.LATER_CASES = plain, saturating, []
    m.SEED_BASE = 20000 + fz.r.randint(0, 10**6)
    m.main()


def activation(fz, count, out):
    """Random slopes, alphas, ranges, betas and thresholds (either sign where PyTorch takes
    them), PReLU weights, and softmax / log softmax / argmax over random channel counts."""
    import torch.nn as nn
    m = importlib.import_module("make_golden_activation")
    r = fz.r

    def num(lo, hi):
        return round(r.uniform(lo, hi), r.choice([0, 1, 3]))

    def shape(maxc=6):
        return [r.choice([1, 1, 2, 3]), r.randint(1, maxc), r.randint(1, 7), r.randint(1, 7)]

    cases = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            slope = num(-2, 2)
            cases.append((f"fuzz{i}_leaky", nn.LeakyReLU(slope), {"op": "leaky_relu", "negative_slope": slope},
                          shape()))
        elif kind == 1:
            alpha = num(-2, 3)
            cases.append((f"fuzz{i}_elu", nn.ELU(alpha), {"op": "elu", "alpha": alpha}, shape()))
        elif kind == 2:
            lo = num(-8, 4)
            hi = lo + max(num(0.1, 8), 0.25)
            cases.append((f"fuzz{i}_hardtanh", nn.Hardtanh(lo, hi),
                          {"op": "hardtanh", "min_val": lo, "max_val": hi}, shape()))
        elif kind == 3:
            beta = r.choice([num(0.6, 5), num(-3, -0.6), 1.0])  # never 0 (PyTorch: inf)
            threshold = r.choice([num(-5, 25), 20.0])
            cases.append((f"fuzz{i}_softplus", nn.Softplus(beta, threshold),
                          {"op": "softplus", "beta": beta, "threshold": threshold}, shape()))
        else:
            s = shape(8)
            n = r.choice([1, s[1]])
            cases.append((f"fuzz{i}_prelu", None, {"op": "prelu", "num_parameters": n}, s))
    m.CHANNEL_CASES = [(f"fuzz{i}_{op}", op, shape(12))
                       for i, op in enumerate(r.choice(["softmax", "log_softmax", "argmax"])
                                              for _ in range(count // 3))]
    with_cases("make_golden_activation", cases, out, "activation.json")
    redo_with_non_finite(os.path.join(out, "activation.json"), activation_op)


def activation_op(c, x):
    """A case of activation.json computed again by PyTorch (with --non-finite)."""
    import torch.nn.functional as F
    op = c["op"]
    if op == "leaky_relu":
        return F.leaky_relu(x, c["negative_slope"])
    if op == "elu":
        return F.elu(x, c["alpha"])
    if op == "hardtanh":
        return F.hardtanh(x, c["min_val"], c["max_val"])
    if op == "softplus":
        return F.softplus(x, c["beta"], c["threshold"])
    if op == "prelu":
        return F.prelu(x, torch.tensor(c["weight"], dtype=torch.float32))
    if op in ("softmax", "log_softmax"):
        return getattr(torch, op)(x, 1)
    if op == "argmax":
        return x.argmax(1, keepdim=True)
    if op == "layer_norm_2d":
        from torchvision.models.convnext import LayerNorm2d
        ln = LayerNorm2d(c["input_shape"][1], eps=c["eps"])
        with torch.no_grad():
            ln.weight.copy_(torch.tensor(c["weight"]))
            ln.bias.copy_(torch.tensor(c["bias"]))
            return ln(x)
    raise ValueError(f"unknown activation op {op}")


# `--calibrated`: the network cases' batch norms calibrated (make_golden_networks.calibrate).
NETWORKS = {"calibrated": False}


def networks(fz, count, out):
    """Random whole networks in networks/cases.json's format: U-Net (depth, width,
    bilinear), SegNet (stages, widths, convolutions), FCN-8s (widths), MobileNetV2 / V3
    features (width, reduced tail, dilation), torchvision's segmentation models (classes,
    auxiliary head), ResNet feature extractors (basic and bottleneck, ResNeXt, Wide
    ResNet, dilation) and segmentation_models_pytorch's Unet and UnetPlusPlus (depth,
    decoder widths, norm,
    interpolation, scse attention, activation), FPN (depth, pyramid and segmentation
    widths, merge, interpolation, upsampling, activation), DeepLabV3 and DeepLabV3Plus
    (depth, output stride, widths, rates, separable ASPP, upsampling, activation), Linknet
    and PSPNet (depth, norm, widths, upsampling, activation), UPerNet (depth, widths, norm,
    upsampling, activation), Segformer (depth, widths, upsampling, activation), PAN (depth,
    output stride, widths, interpolation, upsampling, activation), U²-Net, U²-NetP and
    IS-Net (input and output channels), MODNet (every map or the matte), BiSeNetV2
    (classes, auxiliary heads), the face-parsing BiSeNet (classes), Fast-SCNN (classes,
    auxiliary head), STDC-Seg (backbone, classes, conv_last, detail heads), HRNetV2
    (trunk, classes, classifier kernel, corners), DPT on timm ViTs
    (timm's widths, register tokens, class token, pre-norm, qkv bias; depth, output
    indices, readout, widths, activation), each smp model with its
    classification head a quarter of the time, on
    ResNet, MobileNetV2, EfficientNet (both smp's kinds), VGG, DenseNet, SENet, MobileOne
    and Xception encoders at odd sizes and batch
    up to 3 (the bottleneck ResNets at batch 1 and at most 40 pixels a side: they take
    seconds a forward on a CPU adapter)."""
    m = importlib.import_module("make_golden_networks")
    r = fz.r

    def side(lo, hi=70):
        return [r.randint(lo, hi), r.randint(lo, hi)]

    # smp's EfficientNet encoders (the larger ones make slow cases).
    EFFNETS = ["efficientnet-b0", "efficientnet-b1", "efficientnet-b3"]
    # smp's VGG, DenseNet and Xception encoders (no dilation: not for DeepLab).
    UNDILATABLE = ["vgg11", "vgg13_bn", "vgg16_bn", "densenet121", "xception", "inceptionv4",
                   "inceptionresnetv2"]
    # smp's SENet encoders (SENet-154 makes slow cases).
    SENETS = ["se_resnet50", "se_resnext50_32x4d"]
    # timm's Selective Kernel ResNets (smp's timm-sk* encoders) go where the SENets go.
    SENETS += ["timm-skresnet18", "timm-skresnext50_32x4d"]
    # Cadene's Dual Path Networks (smp's dpn* encoders) too (the larger ones make slow
    # cases).
    SENETS += ["dpn68", "dpn68b", "dpn92"]
    # smp's timm EfficientNet encoders, and MobileOne's (trained branches folded at load).
    TIMM = ["timm-efficientnet-b0", "timm-efficientnet-b2", "timm-tf_efficientnet_lite0",
            "mobileone_s0", "mobileone_s4"]
    # smp's timm (`tu-`) ResNets and EfficientNets go there too (timm's dilation rule).
    TIMM += ["tu-resnet18", "tu-resnet26", "tu-resnext50_32x4d", "tu-efficientnet_b0",
             "tu-efficientnet_lite0"]
    # timm's MobileNetV3s, TensorFlow-padded ones and smp's deprecated names for them too.
    TIMM += ["tu-mobilenetv3_large_100", "tu-mobilenetv3_small_050",
             "tu-tf_mobilenetv3_small_minimal_100", "timm-mobilenetv3_large_075"]
    # timm's RegNets (smp's deprecated `timm-regnet*` names too) and MobileNetV2.
    TIMM += ["tu-regnetx_002", "tu-regnety_004", "timm-regnety_002", "tu-mobilenetv2_050"]
    # timm's deep-stem ResNets (`avg_down` projections: ceil-mode and `AvgPool2dSame` pools).
    TIMM += ["tu-resnet10t", "tu-resnet18d", "tu-resnet26t", "tu-resnet50c"]
    # timm's squeeze-and-excitation ResNets.
    TIMM += ["tu-seresnet18", "tu-seresnext26d_32x4d"]
    # timm's ECA ResNets and anti-aliased ResNets (PyTorch refuses the odd sizes an
    # anti-aliased stride meets: those cases are skipped).
    TIMM += ["tu-ecaresnet26t", "tu-ecaresnetlight", "tu-resnetaa34d", "tu-seresnetaa50d"]
    # timm's blur-pooled ResNets.
    TIMM += ["tu-resnetblur18", "tu-resnetblur50d"]
    # timm's Res2Nets (smp's deprecated `timm-res2*` names too).
    TIMM += ["timm-res2net50_26w_4s", "tu-res2net50_14w_8s", "timm-res2next50", "tu-res2net50d"]
    # timm's ResNeSts of radix 2, 4 and 1 (smp's deprecated `timm-resnest*` names too).
    TIMM += ["timm-resnest14d", "tu-resnest26d", "timm-resnest50d_4s2x40d", "tu-resnest50d_1s4x24d"]
    # timm's GENets (smp's deprecated `timm-gernet_*` names too).
    TIMM += ["timm-gernet_s", "tu-gernet_m"]
    # timm's TensorFlow-padded EfficientNets, EfficientNetV2s and EdgeTPU models.
    TIMM += ["tu-tf_efficientnet_b0", "tu-tf_efficientnetv2_b0", "tu-efficientnetv2_rw_t",
             "tu-tf_efficientnet_es"]
    # timm's convolutional MobileNetV4s.
    TIMM += ["tu-mobilenetv4_conv_small", "tu-mobilenetv4_conv_medium"]
    # timm's RepVGGs (branches folded at load).
    TIMM += ["tu-repvgg_a0", "tu-repvgg_a1"]
    # timm's ResNet-RS (SE at a quarter, the stem pool a strided convolution).
    TIMM += ["tu-resnetrs50"]
    # timm's MixNets (depthwise windows of several sizes in one layer, grouped 1x1 layers).
    TIMM += ["tu-mixnet_s", "tu-tf_mixnet_m"]
    # timm's NAS models on its EfficientNet builder.
    TIMM += ["tu-semnasnet_075", "tu-spnasnet_100", "tu-fbnetc_100", "tu-tinynet_c"]
    # timm's depth-scaled MobileNetV2 and V3.
    TIMM += ["tu-mobilenetv2_110d", "tu-mobilenetv3_large_150d"]
    # timm's first MobileNetV3 and PP-LCNet.
    TIMM += ["tu-mobilenetv3_rw", "tu-lcnet_075"]
    # timm's MobileNetV1.
    TIMM += ["tu-mobilenetv1_100"]
    # timm's FBNetV3.
    TIMM += ["tu-fbnetv3_b"]
    # timm's HRNets (not dilatable: DeepLab's cases are refused and skipped; sizes snapped
    # to those whose branches halve exactly, below).
    HRNETS = ["tu-hrnet_w18_small", "tu-hrnet_w18_small_v2"]
    TIMM += HRNETS
    # timm's Aligned Xception (features tapped inside its strided blocks).
    TIMM += ["tu-xception41"]
    # SegFormer's Mix Transformers (not in Linknet / UnetPlusPlus, which smp refuses them;
    # FPN at depth 5 only), and timm's ConvNeXts, which start at 1/4 too (in every model;
    # FPN at depth 5 only, where smp runs them).
    MIT = ["mit_b0", "mit_b1"]
    CONVNEXT = ["tu-convnext_atto", "tu-convnext_femto", "tu-convnextv2_atto", "tu-convnextv2_pico"]
    TIMM += CONVNEXT

    def least(encoder):
        # EfficientNet-PyTorch's padding is fixed at the resolution the model was defined
        # for: on a smaller map a strided kernel may not fit at all (PyTorch refuses it).
        # VGG's max pools floor: a map under 2^depth pixels pools to nothing.
        # SENet's stem pools without padding: its 7x7's output needs 3 pixels at least.
        if encoder.startswith("se_"):
            return 5
        # The first stage's 8x8 / 8 spatial reduction needs 8 pixels of the stride-4 map.
        if encoder.startswith("mit_"):
            return 32
        return 32 if encoder.startswith(("efficientnet", "vgg", "densenet")) else 1

    cases = []
    for i in range(count):
        kind = ["unet", "segnet", "fcn8s", "mbv2", "mbv3", "seg", "resnet", "smp_unet",
                "smp_fpn", "smp_deeplabv3", "smp_deeplabv3plus", "smp_linknet",
                "smp_pspnet", "smp_unetplusplus", "effnet", "tv_effnet", "smp_upernet", "vgg",
                "convnext", "densenet", "smp_segformer", "smp_pan", "senet", "shufflenet", "regnet", "mnasnet",
                "smp_manet", "smp_dpt", "u2net", "modnet", "bisenetv2", "bisenet", "fast_scnn",
                "enet", "erfnet", "pidnet", "ddrnet", "stdc", "hrnet_seg", "hrnet_ocr", "hf_segformer"][i % 41]
        if kind == "hf_segformer" and importlib.util.find_spec("transformers") is None:
            kind = "hrnet_ocr"  # transformers' SegFormer needs transformers installed
        n = r.choice([1, 1, 2, 3])
        if kind == "bisenetv2":
            # BiSeNetV2's branches meet where ceil(side / 8) is a multiple of 4: 32 k less
            # up to 7 pixels.
            a = dict(classes=r.randint(1, 5), aux_mode=r.choice(["eval", "train"]))
            shape = [n, 3] + [32 * r.randint(1, 3) - r.randint(0, 7) for _ in range(2)]
        elif kind == "fast_scnn":
            # Fast-SCNN's paths meet where its 1/8 map is a multiple of 4: 32 k + 27 .. 34.
            a = dict(classes=r.randint(1, 5), aux=r.random() < 0.5)
            shape = [n, 3] + [32 * r.randint(0, 2) + r.randint(27, 34) for _ in range(2)]
        elif kind == "enet":
            # ENet runs at any size from 7 x 7 (two rows after three halvings).
            a = dict(classes=r.randint(1, 5), encoder_relu=r.random() < 0.3,
                     decoder_relu=r.random() < 0.7)
            shape = [n, 3] + [r.randint(7, 70) for _ in range(2)]
        elif kind == "pidnet":
            # PIDNet's D branch meets the resized maps where the sides are multiples of 8;
            # m = 2 is PIDNet-S / -M's form (PAPPM, Light_Bag), other m PIDNet-L's.
            a = dict(m=r.choice([1, 2, 2, 3]), n=r.randint(1, 4), classes=r.randint(1, 5),
                     planes=r.randint(2, 8), ppm=r.randint(2, 12), head=r.randint(2, 12),
                     augment=r.random() < 0.5)
            shape = [n, 3] + [8 * r.randint(1, 20) for _ in range(2)]
        elif kind == "ddrnet":
            # DDRNet's high branch meets the resized maps where the sides are multiples of
            # 8; the 23 form or DDRNet-39's split third stage.
            a = dict(layers=[r.randint(1, 3) for _ in range(4)], classes=r.randint(1, 5),
                     planes=r.randint(2, 8), spp=r.randint(2, 12), head=r.randint(2, 12),
                     augment=r.random() < 0.5, split=r.random() < 0.4)
            shape = [n, 3] + [8 * r.randint(1, 20) for _ in range(2)]
        elif kind == "erfnet":
            # ERFNet's downsamplers meet where the sides halve exactly: multiples of 8.
            a = dict(classes=r.randint(1, 5), only_encode=r.random() < 0.25)
            shape = [n, 3] + [8 * r.randint(1, 9) for _ in range(2)]
        elif kind == "stdc":
            # STDC-Seg runs at any size; the detail heads in the forms its forward returns.
            a = dict(backbone=r.choice(["STDCNet813", "STDCNet813", "STDCNet1446"]),
                     classes=r.randint(1, 5), use_conv_last=r.random() < 0.3,
                     boundary=r.choice([[], [8], [4, 8], [2, 4, 8]]))
            shape = [n, 3] + side(1)
        elif kind == "hrnet_seg":
            # HRNetV2 (HRNet-Semantic-Segmentation) runs at any size: its fusions resize to
            # each branch's size.
            a = dict(stage1=[r.randint(1, 2), r.choice([4, 8, 16])],
                     modules=[r.randint(1, 2) for _ in range(3)],
                     blocks=[r.randint(1, 2) for _ in range(3)],
                     widths=[r.randint(2, 12) for _ in range(4)], classes=r.randint(1, 5),
                     final_kernel=r.choice([1, 3]), align=r.random() < 0.5)
            shape = [n, 3] + side(1)
        elif kind == "hf_segformer":
            # transformers' SegFormer: any patch embedding and stride, heads dividing their
            # stage, each spatial reduction within its stage's map (a side of 32 to 70
            # keeps it there for these strides).
            heads = [r.randint(1, 3) for _ in range(4)]
            a = dict(cin=r.randint(1, 4), hidden=[h * r.randint(1, 6) for h in heads],
                     depths=[r.randint(1, 2) for _ in range(4)], heads=heads,
                     sr=[r.choice([1, 2, 4]), r.choice([1, 2]), r.choice([1, 2]), 1],
                     patch=[r.choice([3, 5, 7])] + [r.choice([2, 3]) for _ in range(3)],
                     strides=[4, 2, 2, r.choice([1, 2])], mlp=[r.randint(1, 4) for _ in range(4)],
                     decoder=r.randint(1, 16), classes=r.randint(1, 5))
            shape = [n, a["cin"], r.randint(32, 70), r.randint(32, 70)]
        elif kind == "hrnet_ocr":
            # HRNet-OCR, the same trunk, any size: its head's attention over the classes'
            # regions takes any class count and key width.
            a = dict(stage1=[r.randint(1, 2), r.choice([4, 8, 16])],
                     modules=[r.randint(1, 2) for _ in range(3)],
                     blocks=[r.randint(1, 2) for _ in range(3)],
                     widths=[r.randint(2, 12) for _ in range(4)], classes=r.randint(1, 21),
                     mid=r.randint(1, 40), key=r.randint(1, 24), align=r.random() < 0.5)
            shape = [n, 3] + side(1)
        elif kind == "bisenet":
            # The face-parsing BiSeNet runs at any size.
            a = dict(classes=r.randint(1, 5))
            shape = [n, 3] + side(1)
        elif kind == "modnet":
            # MODNet runs at its defaults only; sizes are multiples of 32.
            a = dict(inference=r.random() < 0.5)
            shape = [n, 3, 32 * r.randint(1, 3), 32 * r.randint(1, 3)]
        elif kind == "u2net":
            # U²-Net, its small form and IS-Net (any size: ceil-mode pools).
            a = dict(name=r.choice(["u2netp", "u2netp", "u2net", "isnet"]), cin=r.randint(1, 4),
                     classes=r.randint(1, 3))
            shape = [n, a["cin"]] + side(1)
        elif kind == "unet":
            a = dict(cin=r.randint(1, 4), classes=r.randint(1, 4), base=r.choice([2, 4, 8]),
                     depth=r.randint(1, 4), bilinear=r.random() < 0.5)
            shape = [n, a["cin"]] + side(1 << a["depth"])
        elif kind == "segnet":
            stages = r.randint(1, 5)
            a = dict(cin=r.randint(1, 4), classes=r.randint(1, 5),
                     widths=[r.choice([4, 8, 12]) for _ in range(stages)],
                     convs=[r.randint(1, 3) for _ in range(stages)])
            shape = [n, a["cin"]] + side(1 << stages)
        elif kind == "fcn8s":
            a = dict(classes=r.randint(1, 5), widths=[r.choice([4, 8]) for _ in range(5)],
                     fc=r.choice([8, 16]))
            shape = [n, 3] + side(1)
        elif kind == "mbv2":
            a = dict(width_mult=r.choice([0.25, 0.35, 0.5, 0.6, 0.75, 1.0, 1.3]))
            shape = [n, 3] + side(7)
        elif kind == "mbv3":
            a = dict(arch=r.choice(["large", "small"]), width_mult=r.choice([0.35, 0.5, 0.75, 1.0, 1.25]),
                     reduced_tail=r.random() < 0.5, dilated=r.random() < 0.5)
            shape = [n, 3] + side(7)
        elif kind in ("smp_unet", "smp_unetplusplus"):
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "resnext50_32x4d",
                                "mobilenet_v2", "mobilenet_v2"] + EFFNETS + UNDILATABLE
                               + SENETS + TIMM + (MIT if kind == "smp_unet" else []))
            # smp's Unet runs any depth (a Mix Transformer's or EfficientNet-PyTorch's
            # from 2), UnetPlusPlus from 2.
            shallow = (kind == "smp_unetplusplus" or encoder in MIT + CONVNEXT
                       or encoder in EFFNETS)
            depth = r.randint(2 if shallow else 1, 5)
            a = dict(encoder=encoder, depth=depth, cin=r.randint(1, 4), classes=r.randint(1, 5),
                     decoder_channels=[r.choice([4, 8, 16, 24]) for _ in range(depth)],
                     use_norm=r.random() < 0.6,
                     interpolation=r.choice(["nearest", "nearest", "bilinear", "bicubic", "area",
                                             "nearest-exact"]),
                     activation=r.choice([None, None, "identity", "sigmoid", "tanh", "softmax2d",
                                          "softmax", "logsoftmax"]))
            if r.random() < 0.3:
                # scse's squeeze needs 16 channels (PyTorch refuses an empty one).
                a["attention"] = "scse"
                a["decoder_channels"] = [r.choice([16, 24, 32]) for _ in range(depth)]
            step = 1 << depth
            batch = n if encoder in ("resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0",
                                     "mit_b0") else 1
            # Any size for the Unet (smp 0.6 resizes each decoder stage to its skip);
            # UnetPlusPlus resizes by 2 and needs multiples of 2^depth.
            if kind == "smp_unet":
                lo = max(step // 2, least(encoder))
                shape = [batch, a["cin"], r.randint(lo, max(3 * step, lo + 16)),
                         r.randint(lo, max(3 * step, lo + 16))]
            else:
                k = -(-least(encoder) // step)
                shape = [batch, a["cin"], step * r.randint(k, k + 2), step * r.randint(k, k + 2)]
        elif kind == "smp_fpn":
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "mobilenet_v2"] + EFFNETS + UNDILATABLE
                               + SENETS + TIMM + MIT)
            depth = 5 if encoder in MIT + CONVNEXT else r.randint(3, 5)
            a = dict(encoder=encoder, depth=depth, cin=r.randint(1, 4), classes=r.randint(1, 5),
                     pyramid=r.choice([8, 16, 48, 64]), segmentation=r.choice([32, 64]),
                     merge=r.choice(["add", "cat"]),
                     interpolation=r.choice(["nearest", "nearest", "bilinear", "bicubic", "area",
                                             "nearest-exact"]),
                     upsampling=r.choice([1, 2, 4, 4]),
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d",
                                          "logsoftmax"]))
            step = 1 << depth
            batch = n if encoder not in ["resnet50"] + UNDILATABLE + SENETS else 1
            # Two pixels at least on the deepest level: PyTorch's group_norm refuses groups
            # of one value (C = 32 groups of one channel on a 1 x 1 map at batch 1).
            k = -(-least(encoder) // step)
            shape = [batch, a["cin"], step * r.randint(k, k + 2), step * r.randint(max(k, 2), k + 2)]
        elif kind in ("smp_deeplabv3", "smp_deeplabv3plus"):
            plus = kind == "smp_deeplabv3plus"
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v2"]
                               + EFFNETS + SENETS + TIMM + MIT)
            depth = r.randint(3 if plus else 1 + encoder.startswith(("efficientnet", "mit", "tu-convnext")), 5)
            stride = r.choice([8, 16])
            upsampling = r.choice([1, 2, 4, 4]) if plus else r.choice([None, None, 1, 2, 8])
            a = dict(encoder=encoder, depth=depth, output_stride=stride, cin=r.randint(1, 4),
                     classes=r.randint(1, 5), decoder_channels=r.choice([8, 16, 32]),
                     rates=[r.randint(1, 12) for _ in range(3)], separable=r.random() < 0.5,
                     upsampling=upsampling,
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d",
                                          "logsoftmax"]))
            step = min(stride, 1 << depth)
            batch = n if encoder not in ["resnet50"] + UNDILATABLE + SENETS else 1
            k = -(-least(encoder) // step)
            shape = [batch, a["cin"], step * r.randint(k, k + 3), step * r.randint(k, k + 3)]
        elif kind in ("smp_linknet", "smp_pspnet"):
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v2"]
                               + EFFNETS + UNDILATABLE
                               + SENETS + TIMM + (MIT if kind == "smp_pspnet" else []))
            depth = r.randint(1 + encoder.startswith(("efficientnet", "mit", "tu-convnext")), 5)
            a = dict(encoder=encoder, depth=depth, cin=r.randint(1, 4), classes=r.randint(1, 5),
                     use_norm=r.random() < 0.6,
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d",
                                          "logsoftmax"]))
            if kind == "smp_pspnet":
                a["psp_out"] = r.choice([8, 16, 64])
                a["upsampling"] = r.choice([1, 2, 4, 8, 8])
            step = 1 << depth
            batch = n if encoder not in ["resnet50"] + UNDILATABLE + SENETS else 1
            k = -(-least(encoder) // step)
            shape = [batch, a["cin"], step * r.randint(k, k + 2), step * r.randint(k, k + 2)]
        elif kind == "resnet":
            name = r.choice(["resnet18", "resnet34", "resnet50", "resnext50_32x4d",
                             "wide_resnet50_2"])
            basic = name in ("resnet18", "resnet34")
            # Basic blocks cannot dilate (torchvision refuses them).
            a = dict(name=name, dilation=[False] * 3 if basic else
                     [r.random() < 0.5 for _ in range(3)])
            shape = [n, 3] + side(1, 48) if basic else [1, 3] + side(1, 40)
        elif kind == "smp_upernet":
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v2"]
                               + EFFNETS + UNDILATABLE
                               + SENETS + TIMM + MIT)
            depth = r.randint(3, 5)
            a = dict(encoder=encoder, depth=depth, cin=r.randint(1, 4), classes=r.randint(1, 5),
                     decoder_channels=r.choice([8, 16, 32]), use_norm=r.random() < 0.6,
                     upsampling=r.choice([1, 2, 4, 4]),
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d",
                                          "logsoftmax"]))
            step = 1 << depth
            batch = n if encoder not in ["resnet50"] + UNDILATABLE + SENETS else 1
            k = -(-least(encoder) // step)
            shape = [batch, a["cin"], step * r.randint(k, k + 2), step * r.randint(k, k + 2)]
        elif kind == "smp_segformer":
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v2"]
                               + EFFNETS + UNDILATABLE
                               + SENETS + TIMM + MIT)
            depth = r.randint(3, 5)
            a = dict(encoder=encoder, depth=depth, cin=r.randint(1, 4), classes=r.randint(1, 5),
                     segmentation=r.choice([8, 16, 32]), upsampling=r.choice([1, 2, 4, 4]),
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d",
                                          "logsoftmax"]))
            step = 1 << depth
            batch = n if encoder not in ["resnet50"] + UNDILATABLE + SENETS else 1
            k = -(-least(encoder) // step)
            shape = [batch, a["cin"], step * r.randint(k, k + 2), step * r.randint(k, k + 2)]
        elif kind == "smp_pan":
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v2"]
                               + EFFNETS + SENETS + TIMM + MIT)
            depth = r.randint(3, 5)
            stride = r.choice([16, 32])
            a = dict(encoder=encoder, depth=depth, output_stride=stride, cin=r.randint(1, 4),
                     classes=r.randint(1, 5), decoder_channels=r.choice([8, 16, 32]),
                     interpolation=r.choice(["bilinear", "bilinear", "nearest", "bicubic",
                                             "area"]),
                     upsampling=r.choice([1, 2, 4, 4]),
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d",
                                          "logsoftmax"]))
            if r.random() < 0.2:
                # VGG and DenseNet encoders only undilated.
                a["encoder"], a["output_stride"] = r.choice(UNDILATABLE), 32
            step = min(a["output_stride"], 1 << depth)
            batch = n if a["encoder"] in ("resnet18", "mobilenet_v2", "efficientnet-b0") else 1
            # The pyramid pools the deepest feature three times: 8 pixels at least.
            k = max(8, -(-least(a["encoder"]) // step))
            shape = [batch, a["cin"], step * r.randint(k, k + 2), step * r.randint(k, k + 2)]
        elif kind == "smp_manet":
            encoder = r.choice(["resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v2"]
                               + EFFNETS + UNDILATABLE + SENETS + TIMM + MIT)
            depth = r.randint(1 + encoder.startswith(("efficientnet", "mit", "tu-convnext")), 5)
            a = dict(encoder=encoder, depth=depth, cin=r.randint(1, 4), classes=r.randint(1, 5),
                     decoder_channels=[r.choice([4, 8, 16, 24]) for _ in range(depth)],
                     pab=r.choice([4, 8, 16, 64]), use_norm=r.random() < 0.6,
                     interpolation=r.choice(["nearest", "nearest", "bilinear", "bicubic", "area",
                                             "nearest-exact"]),
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d",
                                          "logsoftmax"]))
            step = 1 << depth
            batch = n if encoder not in ["resnet50"] + UNDILATABLE + SENETS else 1
            k = -(-least(encoder) // step)
            shape = [batch, a["cin"], step * r.randint(k, k + 2), step * r.randint(k, k + 2)]
        elif kind == "smp_dpt":
            encoder = r.choice(["tu-vit_tiny_patch16_224", "tu-vit_small_patch8_224",
                                "tu-vit_base_patch32_224", "tu-deit3_small_patch16_224",
                                "tu-deit_tiny_patch16_224.fb_in1k"])
            patch = int(encoder.split("_patch")[1].split("_")[0])
            depth = r.randint(1, 5)
            heads = r.randint(1, 4)
            vit = dict(embed_dim=heads * r.choice([2, 4, 8]), num_heads=heads,
                       mlp_ratio=r.choice([4.0, 2.0, 1.5]), reg_tokens=r.choice([0, 0, 1, 3]),
                       qkv_bias=r.random() < 0.7, pre_norm=r.random() < 0.2)
            if r.random() < 0.2:
                vit.update(class_token=False, global_pool="avg")
            # The fused maps double each stage: the patch grid must halve evenly down to
            # the deepest feature's stride.
            unit = 1 << max(0, depth + 1 - (patch.bit_length() - 1))
            grid = [unit * r.randint(1, max(1, 6 // unit)) for _ in range(2)]
            vit["img_size"] = [g * patch for g in grid]
            hw = list(vit["img_size"])
            if r.random() < 0.3:
                # Another input size: the position embedding resampled to its grid.
                vit["dynamic_img_size"] = True
                hw = [unit * r.randint(1, max(1, 6 // unit)) * patch for _ in range(2)]
            indices = None
            if r.random() < 0.5:
                indices = r.sample(range(-12, 12), depth)
                if len({i % 12 for i in indices}) < depth:
                    indices = None
            a = dict(encoder=encoder, vit=vit, depth=depth, indices=indices,
                     readout=r.choice(["cat", "cat", "add", "ignore"]),
                     mid=[r.choice([4, 8, 12]) for _ in range(depth)],
                     fusion=r.choice([4, 8]), cin=r.randint(1, 4), classes=r.randint(1, 4),
                     activation=r.choice([None, None, "sigmoid", "tanh", "softmax2d"]))
            shape = [n, a["cin"]] + hw
        elif kind == "mnasnet":
            a = dict(name=r.choice(["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]))
            shape = [n, 3] + side(1, 64)
        elif kind == "regnet":
            a = dict(name=r.choice(["regnet_x_400mf", "regnet_y_400mf", "regnet_x_800mf",
                                    "regnet_y_800mf", "regnet_x_1_6gf", "regnet_y_1_6gf"]))
            shape = [n if a["name"].endswith("400mf") else 1, 3] + side(1, 64)
        elif kind == "shufflenet":
            a = dict(name=r.choice(["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                                    "shufflenet_v2_x2_0"]))
            shape = [n, 3] + side(1, 80)
        elif kind == "senet":
            a = dict(name=r.choice([e for e in SENETS if e.startswith("se_")]))
            shape = [1, 3] + side(5, 64)
        elif kind == "densenet":
            a = dict(name=r.choice(["densenet121", "densenet169"]))
            shape = [1, 3] + side(32)
        elif kind == "convnext":
            a = dict(name="convnext_tiny")
            shape = [r.choice([1, 2]), 3] + side(32, 80)
        elif kind == "vgg":
            a = dict(name=r.choice(["vgg11", "vgg11_bn", "vgg13", "vgg16_bn", "vgg19"]))
            shape = [1, 3] + side(32)
        elif kind == "tv_effnet":
            a = dict(name=r.choice(["efficientnet_b0", "efficientnet_b0", "efficientnet_b1",
                                    "efficientnet_b2", "efficientnet_v2_s"]))
            shape = [n if a["name"] == "efficientnet_b0" else 1, 3] + side(9)
        elif kind == "effnet":
            a = dict(variant=r.choice([0, 0, 1, 2, 3]))
            # EfficientNet-PyTorch's padding is fixed: a map smaller than a kernel fails.
            shape = [n if a["variant"] == 0 else 1, 3] + side(33, 100)
        else:
            name = r.choice(["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                             "deeplabv3_mobilenet_v3_large", "fcn_resnet50", "deeplabv3_resnet50"])
            a = dict(name=name, classes=r.randint(1, 25),
                     aux=not name.startswith("lraspp") and r.random() < 0.5)
            shape = [n, 3] + side(9) if "mobilenet" in name else [1, 3] + side(17, 40)
        if kind.startswith("smp_") and r.random() < 0.25:
            a["aux"] = dict(classes=r.randint(1, 5), pooling=r.choice(["avg", "max"]),
                            activation=r.choice([None, "sigmoid", "softmax", "logsoftmax",
                                                 "tanh"]))
        if a.get("encoder") in HRNETS:
            # An HRNet's fusion sums each branch with the next one upsampled by 2: a quarter
            # of each side, rounded up, must be a multiple of 8 (PyTorch fails otherwise).
            trim = r.randint(0, 3) if kind == "smp_unet" else 0  # the others divide by 2^depth
            shape[2:] = [32 * max(1, (v + 31) // 32) - trim for v in shape[2:]]
        if NETWORKS["calibrated"]:
            a["calibrated"] = True
        cases.append((f"fuzz{i}_{kind}", kind, a, shape))
    # SegNet's max_unpool2d has no kernel PyTorch calls deterministic (it is a sequential
    # loop on the CPU).
    torch.use_deterministic_algorithms(False)
    m.main(cases, os.path.join(out, "networks"), skip_refused=True)
    torch.use_deterministic_algorithms(True)


FAMILIES = [decoder, conv2d, conv2d_padding, avg_pool, pad, norm, channel, blocks, activation, networks]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="directory for the random golden files")
    ap.add_argument("--count", type=int, default=150, help="cases per file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=int, default=1,
                    help="multiply the spatial sizes drawn (not the networks')")
    ap.add_argument("--channel-scale", type=int, default=1,
                    help="multiply the channel counts drawn (ops' cases only)")
    ap.add_argument("--non-finite", type=float, default=0.0, metavar="P",
                    help="put NaN / +inf / -inf at a fraction P of each case's input")
    ap.add_argument("--calibrated", action="store_true",
                    help="networks: batch-norm statistics measured on a random batch, so that "
                         "deep features reach the output at full scale (stored in the files)")
    ap.add_argument("--only", nargs="+", choices=[f.__name__ for f in FAMILIES],
                    help="the families to write (default: all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    SCALE.update(size=args.scale, channels=args.channel_scale)
    NON_FINITE["p"] = args.non_finite
    NETWORKS["calibrated"] = args.calibrated
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for i, family in enumerate(FAMILIES):
        if args.only is None or family.__name__ in args.only:
            family(Fuzz(args.seed * 100 + i), args.count, args.out)


if __name__ == "__main__":
    sys.exit(main())
