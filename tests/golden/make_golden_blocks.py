#!/usr/bin/env python3
"""Writes tests/golden/blocks/: randomly initialised torchvision building blocks in eval
mode, each with its weights, an input and PyTorch's output, as safetensors files.

One file per case, tests/golden/blocks/<case>.safetensors, holding

  * the module's own state_dict under its exact torchvision names (float32, contiguous;
    the BatchNorm2d `num_batches_tracked` counters are dropped), and
  * `__input__` and `__output__`: the float32 input and `module.eval()(input)` under
    torch.no_grad().

tests/golden/blocks/cases.json lists every case: name, module class, constructor
arguments under torchvision's argument names, BatchNorm eps, input and output shapes,
the state_dict keys with their shapes, the file's size and SHA-256, and the largest
difference between the float32 output and the same module evaluated in float64.

Blocks: torchvision.models.resnet.Bottleneck (plain, strided with a downsample, ResNeXt
grouped, dilated) and, later, resnet.BasicBlock (plain, strided with a downsample), torchvision.models.mobilenetv2.InvertedResidual (expanding with and
without the residual, expand_ratio 1), torchvision.models.shufflenetv2.InvertedResidual
(stride 1 and 2), torchvision.models.mobilenetv3.InvertedResidual (with SE and hardswish,
stride 2; without SE, ReLU, residual) and torchvision.ops.misc.SqueezeExcitation, later
DeepLabV3's ASPP, DenseNet's dense block, FCN's head and CBAM as its authors wrote it, plus
two "_saturating" repeats whose weights are scaled up so that the ReLU6, Hardswish and
Hardsigmoid clamps are reached (see EXTRA_CASES).

Before export every BatchNorm2d gets non-trivial affine parameters and running
statistics: weight ~ U(0.5, 1.5), bias ~ N(0, 0.2), running_mean ~ N(0, 0.2),
running_var ~ U(0.5, 1.5).

Run from the repository root:

    /path/to/venv/bin/python tests/golden/make_golden_blocks.py

Needs torch, torchvision and safetensors. Deterministic for a given torch version: each
case calls torch.manual_seed before building its module, everything runs single-threaded
on the CPU with deterministic algorithms on. The script reads every file back, rebuilds
the module from a different seed, loads the stored state_dict (strict) and checks that it
reproduces `__output__` bit for bit.
"""

import copy
import hashlib
import json
import os
from functools import partial

import torch
import torch.nn as nn
import torchvision
from safetensors.torch import load_file, save_file
from torchvision.models import mobilenetv2, mobilenetv3, resnet, shufflenetv2
from torchvision.ops.misc import SqueezeExcitation

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "blocks")
SEED_BASE = 5000


# ---------------------------------------------------------------------------------------
# Case builders. Each returns (module, constructor-args dict for cases.json, bn eps).


def resnet_block(block, **kw):
    """resnet.Bottleneck or resnet.BasicBlock; `downsample` given as (in_planes, out_planes,
    stride)."""
    args = dict(kw)
    ds = kw.pop("downsample", None)
    if ds is not None:
        cin, cout, stride = ds
        kw["downsample"] = nn.Sequential(resnet.conv1x1(cin, cout, stride=stride), nn.BatchNorm2d(cout))
        args["downsample"] = [
            {"type": "torchvision.models.resnet.conv1x1", "in_planes": cin, "out_planes": cout, "stride": stride},
            {"type": "torch.nn.BatchNorm2d", "num_features": cout},
        ]
    return block(**kw), args, 1e-5


def bottleneck(**kw):
    """resnet.Bottleneck (see resnet_block)."""
    return resnet_block(resnet.Bottleneck, **kw)


def basic_block(**kw):
    """resnet.BasicBlock, ResNet-18 / 34's (see resnet_block)."""
    return resnet_block(resnet.BasicBlock, **kw)


def mbv2_ir(inp, oup, stride, expand_ratio):
    m = mobilenetv2.InvertedResidual(inp=inp, oup=oup, stride=stride, expand_ratio=expand_ratio)
    return m, {"inp": inp, "oup": oup, "stride": stride, "expand_ratio": expand_ratio}, 1e-5


def shufflenet_ir(inp, oup, stride):
    m = shufflenetv2.InvertedResidual(inp=inp, oup=oup, stride=stride)
    return m, {"inp": inp, "oup": oup, "stride": stride}, 1e-5


def mbv3_ir(**cnf_args):
    # As torchvision.models.mobilenetv3.MobileNetV3 builds its blocks: BatchNorm2d with
    # eps=0.001, momentum=0.01, and the default se_layer
    # partial(SqueezeExcitation, scale_activation=nn.Hardsigmoid).
    eps = 0.001
    cnf = mobilenetv3.InvertedResidualConfig(**cnf_args)
    norm_layer = partial(nn.BatchNorm2d, eps=eps, momentum=0.01)
    m = mobilenetv3.InvertedResidual(cnf, norm_layer)
    args = {
        "cnf": {"type": "torchvision.models.mobilenetv3.InvertedResidualConfig", **cnf_args},
        "norm_layer": "functools.partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.01)",
        "se_layer": "default: functools.partial(torchvision.ops.misc.SqueezeExcitation, "
        "scale_activation=torch.nn.Hardsigmoid)",
    }
    return m, args, eps


def squeeze_excitation(input_channels, squeeze_channels):
    m = SqueezeExcitation(input_channels, squeeze_channels)
    return m, {"input_channels": input_channels, "squeeze_channels": squeeze_channels}, None


# name, class name, builder, input shape
CASES = [
    ("resnet_bottleneck", "torchvision.models.resnet.Bottleneck",
     lambda: bottleneck(inplanes=64, planes=16), [2, 64, 9, 9]),
    ("resnet_bottleneck_stride2_downsample", "torchvision.models.resnet.Bottleneck",
     lambda: bottleneck(inplanes=32, planes=16, stride=2, downsample=(32, 64, 2)), [1, 32, 9, 9]),
    # width = int(32 * 4 / 64) * 32 = 64 channels in the grouped 3x3 (2 per group)
    ("resnext_bottleneck_g32", "torchvision.models.resnet.Bottleneck",
     lambda: bottleneck(inplanes=64, planes=32, groups=32, base_width=4, downsample=(64, 128, 1)), [1, 64, 8, 8]),
    ("resnet_bottleneck_dilation2", "torchvision.models.resnet.Bottleneck",
     lambda: bottleneck(inplanes=64, planes=16, dilation=2), [1, 64, 9, 9]),
    ("mobilenetv2_ir_residual", "torchvision.models.mobilenetv2.InvertedResidual",
     lambda: mbv2_ir(16, 16, 1, 6), [2, 16, 9, 9]),
    ("mobilenetv2_ir_stride2", "torchvision.models.mobilenetv2.InvertedResidual",
     lambda: mbv2_ir(16, 24, 2, 6), [1, 16, 9, 9]),
    ("mobilenetv2_ir_expand1", "torchvision.models.mobilenetv2.InvertedResidual",
     lambda: mbv2_ir(32, 16, 1, 1), [1, 32, 8, 8]),
    ("shufflenetv2_ir_stride1", "torchvision.models.shufflenetv2.InvertedResidual",
     lambda: shufflenet_ir(24, 24, 1), [2, 24, 8, 8]),
    ("shufflenetv2_ir_stride2", "torchvision.models.shufflenetv2.InvertedResidual",
     lambda: shufflenet_ir(24, 48, 2), [1, 24, 9, 9]),
    ("mobilenetv3_ir_se_hs_stride2", "torchvision.models.mobilenetv3.InvertedResidual",
     lambda: mbv3_ir(input_channels=16, kernel=3, expanded_channels=64, out_channels=24, use_se=True,
                     activation="HS", stride=2, dilation=1, width_mult=1.0), [1, 16, 9, 9]),
    ("mobilenetv3_ir_re_residual", "torchvision.models.mobilenetv3.InvertedResidual",
     lambda: mbv3_ir(input_channels=24, kernel=3, expanded_channels=72, out_channels=24, use_se=False,
                     activation="RE", stride=1, dilation=1, width_mult=1.0), [1, 24, 8, 8]),
    ("squeeze_excitation", "torchvision.ops.misc.SqueezeExcitation",
     lambda: squeeze_excitation(96, 24), [1, 96, 6, 6]),
]

# Extra cases beyond the list above. With the standard initialisation no ReLU6 input
# exceeds 6 and no Hardsigmoid input leaves [-3, 3] (the SE scale stays in 0.45..0.55), so
# a ReLU-for-ReLU6 or a clamp-free Hardsigmoid would still match. These two repeat a
# block with every BatchNorm2d weight (after randomise_bn) and the SE fc1/fc2 weights
# multiplied by a gain, so that the clamps are exercised:
#   mobilenetv2: ~2% / ~6% of the two ReLU6 inputs above 6;
#   mobilenetv3: Hardswish inputs beyond +-3, ~30% of the Hardsigmoid inputs beyond +-3.
GAIN = {"bn_weight": 4.0, "se_fc_weight": 3.0}
EXTRA_CASES = [
    ("mobilenetv2_ir_residual_saturating", "torchvision.models.mobilenetv2.InvertedResidual",
     lambda: mbv2_ir(16, 16, 1, 6), [2, 16, 9, 9]),
    ("mobilenetv3_ir_se_hs_stride2_saturating", "torchvision.models.mobilenetv3.InvertedResidual",
     lambda: mbv3_ir(input_channels=16, kernel=3, expanded_channels=64, out_channels=24, use_se=True,
                     activation="HS", stride=2, dilation=1, width_mult=1.0), [1, 16, 9, 9]),
]


# Segmentation blocks, added later; they run after the cases above, so the earlier files
# (and their seeds) are unchanged.
def aspp(in_channels, atrous_rates, out_channels):
    from torchvision.models.segmentation.deeplabv3 import ASPP
    m = ASPP(in_channels, atrous_rates, out_channels)
    return m, {"in_channels": in_channels, "atrous_rates": list(atrous_rates), "out_channels": out_channels}, 1e-5


def dense_block(num_layers, num_input_features, bn_size, growth_rate):
    from torchvision.models.densenet import _DenseBlock
    m = _DenseBlock(num_layers=num_layers, num_input_features=num_input_features, bn_size=bn_size,
                    growth_rate=growth_rate, drop_rate=0.0)
    args = {"num_layers": num_layers, "num_input_features": num_input_features, "bn_size": bn_size,
            "growth_rate": growth_rate}
    return m, args, 1e-5


def fcn_head(in_channels, channels):
    from torchvision.models.segmentation.fcn import FCNHead
    return FCNHead(in_channels, channels), {"in_channels": in_channels, "channels": channels}, 1e-5


# CBAM as its authors wrote it (Jongchan/attention-module, MODELS/cbam.py): the channel
# gate's MLP of nn.Linear layers with biases, the spatial gate's BasicConv (convolution
# without bias, BatchNorm2d with momentum 0.01, no ReLU), its ChannelPool in [max, mean]
# order. Loaded by segblocks' Cbam::load under these names.
class _Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class _BasicConv(nn.Module):
    def __init__(self, in_planes, out_planes, kernel_size, padding):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride=1, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_planes, eps=1e-5, momentum=0.01, affine=True)

    def forward(self, x):
        return self.bn(self.conv(x))


class _ChannelGate(nn.Module):
    def __init__(self, gate_channels, reduction_ratio):
        super().__init__()
        self.mlp = nn.Sequential(_Flatten(), nn.Linear(gate_channels, gate_channels // reduction_ratio),
                                 nn.ReLU(), nn.Linear(gate_channels // reduction_ratio, gate_channels))

    def forward(self, x):
        hw = (x.size(2), x.size(3))
        att = self.mlp(nn.functional.avg_pool2d(x, hw, stride=hw))
        att = att + self.mlp(nn.functional.max_pool2d(x, hw, stride=hw))
        return x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)


class _SpatialGate(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.spatial = _BasicConv(2, 1, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x):
        pooled = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    def __init__(self, gate_channels, reduction_ratio=16):
        super().__init__()
        self.ChannelGate = _ChannelGate(gate_channels, reduction_ratio)
        self.SpatialGate = _SpatialGate(7)

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


CBAM.__module__ = "cbam_reference"


def cbam(gate_channels, reduction_ratio):
    return CBAM(gate_channels, reduction_ratio), {"gate_channels": gate_channels,
                                                  "reduction_ratio": reduction_ratio}, 1e-5


LATER_CASES = [
    ("deeplabv3_aspp", "torchvision.models.segmentation.deeplabv3.ASPP",
     lambda: aspp(32, (2, 4, 6), 16), [2, 32, 9, 11]),
    ("densenet_dense_block", "torchvision.models.densenet._DenseBlock",
     lambda: dense_block(3, 8, 2, 4), [2, 8, 7, 6]),
    ("fcn_head", "torchvision.models.segmentation.fcn.FCNHead",
     lambda: fcn_head(32, 5), [1, 32, 7, 9]),
    ("cbam_authors_module", "cbam_reference.CBAM",
     lambda: cbam(32, 8), [2, 32, 7, 9]),
    # Found by scripts/fuzz_golden.py: torchvision's round(33 * 2.5) is Python's, halves to
    # even (82 expanded channels, not 83).
    ("mobilenetv2_ir_expand_half_to_even", "torchvision.models.mobilenetv2.InvertedResidual",
     lambda: mbv2_ir(33, 20, 2, 2.5), [2, 33, 7, 6]),
    # Fewer channels than the reduction ratio: the MLP's hidden layer is empty (its weights
    # are stored with a 0 in their shapes).
    ("cbam_authors_module_no_hidden", "cbam_reference.CBAM",
     lambda: cbam(6, 16), [2, 6, 5, 7]),
    # ResNet-18 / 34's block: plain (batch 2), and strided with a projection (odd size).
    ("resnet_basic_block", "torchvision.models.resnet.BasicBlock",
     lambda: basic_block(inplanes=24, planes=24), [2, 24, 9, 7]),
    ("resnet_basic_block_stride2_downsample", "torchvision.models.resnet.BasicBlock",
     lambda: basic_block(inplanes=16, planes=32, stride=2, downsample=(16, 32, 2)), [1, 16, 11, 9]),
]


# ---------------------------------------------------------------------------------------


def randomise_bn(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)


def apply_gain(module, gain):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.mul_(gain["bn_weight"])
            if isinstance(m, SqueezeExcitation):
                m.fc1.weight.mul_(gain["se_fc_weight"])
                m.fc2.weight.mul_(gain["se_fc_weight"])


def bn_eps_values(module):
    return sorted({m.eps for m in module.modules() if isinstance(m, nn.BatchNorm2d)})


def export_state(module):
    out = {}
    for k, v in module.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        assert v.dtype == torch.float32, (k, v.dtype)
        out[k] = v.detach().clone().contiguous()
    return out


def run(module, x):
    with torch.no_grad():
        # clone: no block should write into its input, but make sure `x` stays intact
        return module(x.clone())


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)

    entries = []
    all_cases = (
        [(c, None) for c in CASES] + [(c, GAIN) for c in EXTRA_CASES] + [(c, None) for c in LATER_CASES]
    )
    for index, ((name, cls, build, in_shape), gain) in enumerate(all_cases):
        torch.manual_seed(SEED_BASE + index)
        module, args, eps = build()
        assert f"{type(module).__module__}.{type(module).__name__}" == cls, (name, type(module))
        randomise_bn(module)
        if gain is not None:
            apply_gain(module, gain)
        module.eval()
        x = torch.randn(in_shape, dtype=torch.float32)
        y = run(module, x)
        assert y.dtype == torch.float32
        assert torch.isfinite(y).all(), name
        if eps is not None:
            assert bn_eps_values(module) == [eps], (name, bn_eps_values(module))
        else:
            assert bn_eps_values(module) == [], name

        # The same weights and input in float64, for the Rust side's tolerance.
        y64 = run(copy.deepcopy(module).double(), x.double())
        diff = (y.double() - y64).abs()
        f64_max_abs = diff.max().item()
        f64_max_rel = (diff / (1.0 + y64.abs())).max().item()

        state = export_state(module)
        tensors = dict(state)
        assert "__input__" not in tensors and "__output__" not in tensors
        tensors["__input__"] = x.contiguous()
        tensors["__output__"] = y.contiguous()
        path = os.path.join(OUT_DIR, f"{name}.safetensors")
        save_file(tensors, path)
        os.chmod(path, 0o644)  # safetensors writes 0600

        entries.append({
            "name": name,
            "file": f"{name}.safetensors",
            "class": cls,
            "args": args,
            "bn_eps": eps,
            "seed": SEED_BASE + index,
            "extra_weight_gain": gain,
            "input_shape": list(x.shape),
            "output_shape": list(y.shape),
            "state_dict": [{"key": k, "shape": list(v.shape)} for k, v in state.items()],
            "num_params": sum(v.numel() for v in state.values()),
            "f64_max_abs_diff": f64_max_abs,
            "f64_max_rel_diff": f64_max_rel,
            "size_bytes": os.path.getsize(path),
            "sha256": sha256(path),
        })

        # Read back and re-run: a freshly built module (other seed, so other weights)
        # loading the stored state_dict must reproduce __output__ exactly.
        loaded = load_file(path)
        assert set(loaded) == set(tensors), name
        for k, v in tensors.items():
            assert loaded[k].dtype == torch.float32 and torch.equal(loaded[k], v), (name, k)
        torch.manual_seed(12345)
        fresh, _, _ = build()
        fresh_state = {k: v for k, v in fresh.state_dict().items() if not k.endswith("num_batches_tracked")}
        assert list(fresh_state) == list(state), name
        assert any(not torch.equal(fresh_state[k], state[k]) for k in state), name
        fresh.load_state_dict({k: v for k, v in loaded.items() if not k.startswith("__")}, strict=True)
        fresh.eval()
        y2 = run(fresh, loaded["__input__"])
        assert torch.equal(y2, loaded["__output__"]), (name, (y2 - loaded["__output__"]).abs().max())

        print(f"{name:40s} {str(list(x.shape)):16s} -> {str(list(y.shape)):16s} "
              f"{entries[-1]['size_bytes']:7d} B  f64 max abs diff {f64_max_abs:.2e}")

    doc = {
        "generator": "tests/golden/make_golden_blocks.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "notes": "Each file holds the module's state_dict (float32, torchvision names, no "
                 "num_batches_tracked) plus __input__ and __output__ (module.eval() under "
                 "torch.no_grad()). bn_eps is the eps of every BatchNorm2d in the block "
                 "(null: none). extra_weight_gain (null on the standard cases): every BatchNorm2d weight "
                 "and the SE fc1/fc2 weights were multiplied by these factors after the standard "
                 "initialisation, to drive ReLU6/Hardswish/Hardsigmoid into their clamps. "
                 "f64_max_*_diff compare __output__ with the same weights and "
                 "input evaluated in float64 (rel: |d| / (1 + |y64|)).",
        "cases": entries,
    }
    with open(os.path.join(OUT_DIR, "cases.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    total = sum(e["size_bytes"] for e in entries) + os.path.getsize(os.path.join(OUT_DIR, "cases.json"))
    print(f"{len(entries)} cases, {total} bytes in {OUT_DIR}")


if __name__ == "__main__":
    main()
