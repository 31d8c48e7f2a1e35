#!/usr/bin/env python3
"""Writes tests/golden/rvm/: Robust Video Matting (PeterL1n/RobustVideoMatting's
`MattingNetwork`) on two frames in a row, the second with the first's recurrent state,
for tests/rvm.rs.

RVM's code is GPL-3.0, so it is not vendored: the modules below write its architecture
out again under the same names (the state dicts are interchangeable), from torchvision's
MobileNetV3 and ResNet classes as RVM builds them. The weights are segblocks'
`StateDict::synthetic()` (make_golden_segmentation.fill); each file holds the frames
`x0`, `x1`, `project_mat.conv.bias` (the alpha's bias moved so that the made-up alpha
lands inside [0, 1] rather than clamped to 0) and, with the deep guided filter,
`refiner.box_filter.weight` (RVM's initial 1/9), which the test loads over the made-up
ones, and,
per frame `t`, the outputs `fgr{t}`, `pha{t}`, `r1_{t}` .. `r4_{t}` of
the matting pass and `seg{t}` of the segmentation pass (the same states), and in its
metadata the parameters the matting pass uses (`parameters`: all but `project_seg`, and
the refiner where the ratio is 1). The refiner runs where the ratio is not 1.

    torch.venv/bin/python tests/golden/make_golden_rvm.py
    # random cases (variant, refiner, batch 1-3, sides 1-70, ratio 1 or 0.2-0.9) into DIR/rvm,
    # then: SEGBLOCKS_GOLDEN_DIR=DIR cargo test --release --test rvm
    torch.venv/bin/python tests/golden/make_golden_rvm.py --random 12 --seed 1 --out DIR
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidualConfig, MobileNetV3
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.transforms.functional import normalize

sys.path.insert(0, os.path.dirname(__file__))
from make_golden_segmentation import fill  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "rvm")


class MobileNetV3LargeEncoder(MobileNetV3):
    def __init__(self):
        c = InvertedResidualConfig
        super().__init__(inverted_residual_setting=[
            c(16, 3, 16, 16, False, "RE", 1, 1, 1),
            c(16, 3, 64, 24, False, "RE", 2, 1, 1),
            c(24, 3, 72, 24, False, "RE", 1, 1, 1),
            c(24, 5, 72, 40, True, "RE", 2, 1, 1),
            c(40, 5, 120, 40, True, "RE", 1, 1, 1),
            c(40, 5, 120, 40, True, "RE", 1, 1, 1),
            c(40, 3, 240, 80, False, "HS", 2, 1, 1),
            c(80, 3, 200, 80, False, "HS", 1, 1, 1),
            c(80, 3, 184, 80, False, "HS", 1, 1, 1),
            c(80, 3, 184, 80, False, "HS", 1, 1, 1),
            c(80, 3, 480, 112, True, "HS", 1, 1, 1),
            c(112, 3, 672, 112, True, "HS", 1, 1, 1),
            c(112, 5, 672, 160, True, "HS", 2, 2, 1),
            c(160, 5, 960, 160, True, "HS", 1, 2, 1),
            c(160, 5, 960, 160, True, "HS", 1, 2, 1),
        ], last_channel=1280)
        del self.avgpool
        del self.classifier

    def forward(self, x):
        x = normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (1, 3, 6, 16):
                taps.append(x)
        return taps


class ResNet50Encoder(ResNet):
    def __init__(self):
        super().__init__(Bottleneck, [3, 4, 6, 3], replace_stride_with_dilation=[False, False, True])
        del self.avgpool
        del self.fc

    def forward(self, x):
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer4(self.layer3(f3))
        return [f1, f2, f3, f4]


class LRASPP(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.aspp1 = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))
        self.aspp2 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.aspp1(x) * self.aspp2(x)


class ConvGRU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.channels = c
        self.ih = nn.Sequential(nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.Tanh())

    def forward(self, x, h):
        if h is None:
            h = torch.zeros_like(x)
        r, z = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)
        c = self.hh(torch.cat([x, r * h], dim=1))
        h = (1 - z) * h + z * c
        return h, h


class BottleneckBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.channels = c
        self.gru = ConvGRU(c // 2)

    def forward(self, x, r):
        a, b = x.split(self.channels // 2, dim=1)
        b, r = self.gru(b, r)
        return torch.cat([a, b], dim=1), r


class UpsamplingBlock(nn.Module):
    def __init__(self, cin, skip, src, cout):
        super().__init__()
        self.out_channels = cout
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Sequential(nn.Conv2d(cin + skip + src, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout), nn.ReLU(True))
        self.gru = ConvGRU(cout // 2)

    def forward(self, x, f, s, r):
        x = self.upsample(x)[:, :, :s.size(2), :s.size(3)]
        x = self.conv(torch.cat([x, f, s], dim=1))
        a, b = x.split(self.out_channels // 2, dim=1)
        b, r = self.gru(b, r)
        return torch.cat([a, b], dim=1), r


class OutputBlock(nn.Module):
    def __init__(self, cin, src, cout):
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Sequential(
            nn.Conv2d(cin + src, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))

    def forward(self, x, s):
        x = self.upsample(x)[:, :, :s.size(2), :s.size(3)]
        return self.conv(torch.cat([x, s], dim=1))


class AvgPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.avgpool = nn.AvgPool2d(2, 2, count_include_pad=False, ceil_mode=True)

    def forward(self, s0):
        s1 = self.avgpool(s0)
        s2 = self.avgpool(s1)
        return s1, s2, self.avgpool(s2)


class RecurrentDecoder(nn.Module):
    def __init__(self, fc, dc):
        super().__init__()
        self.avgpool = AvgPool()
        self.decode4 = BottleneckBlock(fc[3])
        self.decode3 = UpsamplingBlock(fc[3], fc[2], 3, dc[0])
        self.decode2 = UpsamplingBlock(dc[0], fc[1], 3, dc[1])
        self.decode1 = UpsamplingBlock(dc[1], fc[0], 3, dc[2])
        self.decode0 = OutputBlock(dc[2], 3, dc[3])

    def forward(self, s0, f1, f2, f3, f4, r1, r2, r3, r4):
        s1, s2, s3 = self.avgpool(s0)
        x4, r4 = self.decode4(f4, r4)
        x3, r3 = self.decode3(x4, f3, s3, r3)
        x2, r2 = self.decode2(x3, f2, s2, r2)
        x1, r1 = self.decode1(x2, f1, s1, r1)
        return self.decode0(x1, s0), r1, r2, r3, r4


class Projection(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class DeepGuidedFilterRefiner(nn.Module):
    def __init__(self, hid_channels=16):
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False, groups=4)
        self.box_filter.weight.data[...] = 1 / 9
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels), nn.ReLU(True),
            nn.Conv2d(hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels), nn.ReLU(True),
            nn.Conv2d(hid_channels, 4, kernel_size=1, bias=True))

    def forward(self, fine_src, base_src, base_fgr, base_pha, base_hid):
        fine_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], dim=1)
        base_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], dim=1)
        base_y = torch.cat([base_fgr, base_pha], dim=1)
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        A = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))
        b = mean_y - A * mean_x
        H, W = fine_src.shape[2:]
        A = F.interpolate(A, (H, W), mode="bilinear", align_corners=False)
        b = F.interpolate(b, (H, W), mode="bilinear", align_corners=False)
        out = A * fine_x + b
        fgr, pha = out.split([3, 1], dim=1)
        return fgr, pha


class BoxFilter(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.r = r

    def forward(self, x):
        k = 2 * self.r + 1
        kernel_x = torch.full((x.data.shape[1], 1, 1, k), 1 / k, device=x.device, dtype=x.dtype)
        kernel_y = torch.full((x.data.shape[1], 1, k, 1), 1 / k, device=x.device, dtype=x.dtype)
        x = F.conv2d(x, kernel_x, padding=(0, self.r), groups=x.data.shape[1])
        return F.conv2d(x, kernel_y, padding=(self.r, 0), groups=x.data.shape[1])


class FastGuidedFilter(nn.Module):
    def __init__(self, r, eps=1e-5):
        super().__init__()
        self.r = r
        self.eps = eps
        self.boxfilter = BoxFilter(r)

    def forward(self, lr_x, lr_y, hr_x):
        mean_x = self.boxfilter(lr_x)
        mean_y = self.boxfilter(lr_y)
        cov_xy = self.boxfilter(lr_x * lr_y) - mean_x * mean_y
        var_x = self.boxfilter(lr_x * lr_x) - mean_x * mean_x
        A = cov_xy / (var_x + self.eps)
        b = mean_y - A * mean_x
        A = F.interpolate(A, hr_x.shape[2:], mode="bilinear", align_corners=False)
        b = F.interpolate(b, hr_x.shape[2:], mode="bilinear", align_corners=False)
        return A * hr_x + b


class FastGuidedFilterRefiner(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.guilded_filter = FastGuidedFilter(1)

    def forward(self, fine_src, base_src, base_fgr, base_pha, base_hid):
        fine_src_gray = fine_src.mean(1, keepdim=True)
        base_src_gray = base_src.mean(1, keepdim=True)
        fgr, pha = self.guilded_filter(
            torch.cat([base_src, base_src_gray], dim=1),
            torch.cat([base_fgr, base_pha], dim=1),
            torch.cat([fine_src, fine_src_gray], dim=1)).split([3, 1], dim=1)
        return fgr, pha


class MattingNetwork(nn.Module):
    """RVM's MattingNetwork with either refiner."""

    def __init__(self, variant, refiner="deep_guided_filter"):
        super().__init__()
        if variant == "mobilenetv3":
            self.backbone = MobileNetV3LargeEncoder()
            self.aspp = LRASPP(960, 128)
            self.decoder = RecurrentDecoder([16, 24, 40, 128], [80, 40, 32, 16])
        else:
            self.backbone = ResNet50Encoder()
            self.aspp = LRASPP(2048, 256)
            self.decoder = RecurrentDecoder([64, 256, 512, 256], [128, 64, 32, 16])
        self.project_mat = Projection(16, 4)
        self.project_seg = Projection(16, 1)
        self.refiner = (DeepGuidedFilterRefiner() if refiner == "deep_guided_filter"
                        else FastGuidedFilterRefiner())

    def forward(self, src, r1=None, r2=None, r3=None, r4=None, downsample_ratio=1,
                segmentation_pass=False):
        src_sm = src
        if downsample_ratio != 1:
            src_sm = F.interpolate(src, scale_factor=downsample_ratio, mode="bilinear",
                                   align_corners=False, recompute_scale_factor=False)
        f1, f2, f3, f4 = self.backbone(src_sm)
        f4 = self.aspp(f4)
        hid, *rec = self.decoder(src_sm, f1, f2, f3, f4, r1, r2, r3, r4)
        if segmentation_pass:
            return [self.project_seg(hid), *rec]
        fgr_residual, pha = self.project_mat(hid).split([3, 1], dim=-3)
        if downsample_ratio != 1:
            fgr_residual, pha = self.refiner(src, src_sm, fgr_residual, pha, hid)
        return [(fgr_residual + src).clamp(0., 1.), pha.clamp(0., 1.), *rec]


DEEP, FAST = "deep_guided_filter", "fast_guided_filter"
CASES = [
    # name, variant, frames' shape, downsample_ratio, refiner
    ("mobilenetv3_odd_batch2", "mobilenetv3", [2, 3, 45, 61], 1, DEEP),
    ("resnet50_odd", "resnet50", [1, 3, 37, 50], 1, DEEP),
    ("mobilenetv3_half", "mobilenetv3", [1, 3, 64, 90], 0.5, DEEP),
    ("resnet50_quarter_batch2", "resnet50", [2, 3, 75, 98], 0.25, DEEP),
    ("mobilenetv3_fast_batch2", "mobilenetv3", [2, 3, 50, 71], 0.4, FAST),
]


def random_cases(count, seed):
    """`count` cases drawn from `seed`: either variant, batch 1-3, each side 1-70, the
    ratio 1 or 0.2-0.9 (redrawn until the resized frame keeps a pixel a side)."""
    import random
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        variant = rng.choice(["mobilenetv3", "mobilenetv3", "resnet50"])
        shape = [rng.randint(1, 3), 3, rng.randint(1, 70), rng.randint(1, 70)]
        ratio = 1 if rng.random() < 0.5 else round(rng.uniform(0.2, 0.9), 3)
        if min(int(shape[2] * ratio), int(shape[3] * ratio)) < 1:
            continue
        refiner = rng.choice([DEEP, FAST])
        cases.append((f"random{seed}_{len(cases)}", variant, shape, ratio, refiner))
    return cases


def main():
    torch.set_num_threads(1)
    out_dir, cases = OUT, CASES
    if "--random" in sys.argv:
        arg = lambda flag: sys.argv[sys.argv.index(flag) + 1]  # noqa: E731
        cases = random_cases(int(arg("--random")), int(arg("--seed")))
        out_dir = os.path.join(arg("--out"), "rvm")
    os.makedirs(out_dir, exist_ok=True)
    listed = []
    for i, (name, variant, shape, ratio, refiner) in enumerate(cases):
        torch.manual_seed(0)
        model = MattingNetwork(variant, refiner).eval()
        fill(model)
        # RVM's own initial box filter (a mean), which training keeps near: made-up
        # weights around 0 would leave the refined alpha clamped to 0.
        if refiner == DEEP:
            model.refiner.box_filter.weight.data[...] = 1 / 9
        g = torch.Generator().manual_seed(300 + i)
        frames = [torch.rand(*shape, generator=g) for _ in range(2)]
        seen = []
        hook = model.project_mat.register_forward_hook(lambda m, i, o: seen.append(o[:, 3]))
        with torch.no_grad():
            model(frames[0], downsample_ratio=ratio)
            model.project_mat.conv.bias[3] += 0.5 - seen[0].mean()
        hook.remove()
        out = {"project_mat.conv.bias": model.project_mat.conv.bias.detach().clone()}
        if refiner == DEEP:
            out["refiner.box_filter.weight"] = model.refiner.box_filter.weight.detach().clone()
        state = [None] * 4
        with torch.no_grad():
            for t, x in enumerate(frames):
                out[f"x{t}"] = x
                fgr, pha, *rec = model(x, *state, downsample_ratio=ratio)
                out[f"fgr{t}"], out[f"pha{t}"] = fgr, pha
                seg, *rec_seg = model(x, *state, downsample_ratio=ratio, segmentation_pass=True)
                out[f"seg{t}"] = seg
                for k, r in enumerate(rec):
                    assert torch.equal(r, rec_seg[k])
                    out[f"r{k + 1}_{t}"] = r
                state = rec
        skip = ("project_seg.", "refiner.") if ratio == 1 else ("project_seg.",)
        params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))
        path = os.path.join(out_dir, f"{name}.safetensors")
        save_file({k: v.contiguous() for k, v in out.items()}, path,
                  metadata={"torch": torch.__version__, "parameters": str(params)})
        listed.append(dict(name=name, variant=variant, shape=shape, downsample_ratio=ratio,
                           refiner=refiner, parameters=params))
        print(name, shape, "parameters", params,
              {k: float(v.abs().mean()) for k, v in out.items() if not k.startswith(("x", "project", "refiner"))})
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(listed, f, indent=1)


if __name__ == "__main__":
    main()
