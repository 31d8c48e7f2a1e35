#!/usr/bin/env python3
"""Writes tests/golden/classic/*.safetensors: the classic segmentation architectures the
seeds' ops exist for, as PyTorch modules defined here, on seeded inputs with the weights
segblocks' `StateDict::synthetic()` makes up (reproduced bit for bit by
make_golden_segmentation.make_up), read by tests/classic.rs.

- U-Net (`UNet`): milesial/Pytorch-UNet's module and state-dict names (`inc`,
  `down{i}.maxpool_conv.1`, `up{i}.up` a 2x2 stride-2 transposed convolution or, with
  `bilinear=True`, nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True) with
  milesial's `factor = 2` widths and `mid_channels`, `up{i}.conv`, `outc.conv`;
  `DoubleConv` = (3x3 conv, BN, ReLU) x 2 with padding 1; the upsampled map F.pad-ded to
  the skip's size, so any input size works), depth and base width configurable.
- SegNet (`SegNet`): a VGG16-BN encoder (stages of 2, 2, 3, 3, 3 convolutions of 64,
  128, 256, 512, 512 channels, each 3x3 + BN + ReLU, then 2x2 max pooling with indices)
  and the mirrored decoder (max unpooling with the encoder's indices to the size before
  the pooling, then the stage's convolutions; the last of each decoder stage goes to the
  next shallower width), then a 3x3 classifier with bias. Names `encoders.{s}.{i}.0/1`,
  `decoders.{s}.{i}.0/1` (deepest stage first), `classifier`.

- FCN-8s (`FCN8s`): wkentaro/pytorch-fcn's module and names (`conv1_1` with padding 100,
  ceil-mode 2x2 poolings, `fc6` 7x7, `fc7`, `score_fr`, `score_pool4` / `score_pool3`
  cropped at 5 / 9, `upscore2`, `upscore_pool4`, `upscore8` without bias, the output
  cropped at 31), widths configurable (the golden is a narrow one).

Each file holds `x` and `out`. Run from the repository root (needs torch, numpy,
safetensors):

    /path/to/venv/bin/python tests/golden/make_golden_classic.py
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden_segmentation import fill  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "classic")


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None):
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout, bilinear=False):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(cin, cout, cin // 2)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
            self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, in_channels, num_classes, base=64, depth=4, bilinear=False):
        super().__init__()
        self.depth = depth
        factor = 2 if bilinear else 1
        self.inc = DoubleConv(in_channels, base)
        for i in range(1, depth + 1):
            out = (base << i) // factor if i == depth else base << i
            setattr(self, f"down{i}", Down(base << (i - 1), out))
        for i in range(1, depth + 1):
            c = base << (depth - i + 1)
            out = base if i == depth else c // 2 // factor
            setattr(self, f"up{i}", Up(c, out, bilinear))
        self.outc = OutConv(base, num_classes)

    def forward(self, x):
        skips = [self.inc(x)]
        for i in range(1, self.depth + 1):
            skips.append(getattr(self, f"down{i}")(skips[-1]))
        y = skips.pop()
        for i in range(1, self.depth + 1):
            y = getattr(self, f"up{i}")(y, skips.pop())
        return self.outc(y)


def cbr(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class SegNet(nn.Module):
    def __init__(self, in_channels, num_classes, widths=(64, 128, 256, 512, 512),
                 convs=(2, 2, 3, 3, 3)):
        super().__init__()
        self.encoders = nn.ModuleList()
        cin = in_channels
        for w, n in zip(widths, convs):
            self.encoders.append(nn.Sequential(*[cbr(cin if i == 0 else w, w) for i in range(n)]))
            cin = w
        self.decoders = nn.ModuleList()
        for s in reversed(range(len(widths))):
            w, n = widths[s], convs[s]
            nxt = widths[s - 1] if s > 0 else widths[0]
            self.decoders.append(
                nn.Sequential(*[cbr(w, nxt if i == n - 1 else w) for i in range(n)]))
        self.classifier = nn.Conv2d(widths[0], num_classes, 3, padding=1)

    def forward(self, x):
        indices, sizes = [], []
        for enc in self.encoders:
            x = enc(x)
            sizes.append(x.shape[-2:])
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            indices.append(idx)
        for dec in self.decoders:
            x = F.max_unpool2d(x, indices.pop(), 2, 2, output_size=sizes.pop())
            x = dec(x)
        return self.classifier(x)


class FCN8s(nn.Module):
    def __init__(self, n_class, widths=(64, 128, 256, 512, 512), fc=4096):
        super().__init__()
        cin = 3
        for s, (w, n) in enumerate(zip(widths, (2, 2, 3, 3, 3))):
            for i in range(n):
                pad = 100 if s == 0 and i == 0 else 1
                setattr(self, f"conv{s + 1}_{i + 1}", nn.Conv2d(cin, w, 3, padding=pad))
                cin = w
        self.fc6 = nn.Conv2d(cin, fc, 7)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.score_fr = nn.Conv2d(fc, n_class, 1)
        self.score_pool3 = nn.Conv2d(widths[2], n_class, 1)
        self.score_pool4 = nn.Conv2d(widths[3], n_class, 1)
        self.upscore2 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(n_class, n_class, 16, stride=8, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)

    def forward(self, x):
        h = x
        pools = []
        for s, n in enumerate((2, 2, 3, 3, 3)):
            for i in range(n):
                h = F.relu(getattr(self, f"conv{s + 1}_{i + 1}")(h))
            h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
            pools.append(h)
        h = F.relu(self.fc6(h))  # dropout: identity in eval
        h = F.relu(self.fc7(h))
        h = self.score_fr(h)
        upscore2 = self.upscore2(h)
        h = self.score_pool4(pools[3])
        h = h[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]
        h = upscore2 + h
        upscore_pool4 = self.upscore_pool4(h)
        h = self.score_pool3(pools[2])
        h = h[:, :, 9:9 + upscore_pool4.size(2), 9:9 + upscore_pool4.size(3)]
        h = upscore_pool4 + h
        h = self.upscore8(h)
        return h[:, :, 31:31 + x.size(2), 31:31 + x.size(3)].contiguous()


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    cases = [
        ("unet", UNet(3, 2, base=16, depth=4), [2, 3, 48, 80]),
        ("unet_depth3", UNet(1, 3, base=8, depth=3), [1, 1, 40, 24]),
        ("segnet", SegNet(3, 4, widths=(16, 32, 64, 64, 64)), [2, 3, 40, 52]),
        ("segnet_vgg16", SegNet(3, 5), [1, 3, 64, 96]),
        ("fcn8s", FCN8s(3, widths=(8, 16, 32, 64, 64), fc=96), [2, 3, 37, 45]),
        # Added later (the seeds above are unchanged): sizes that are not multiples of
        # 2^depth (the upsampled maps padded to their skips), and milesial's bilinear mode.
        ("unet_odd_size", UNet(3, 2, base=8, depth=4), [2, 3, 45, 67]),
        ("unet_bilinear", UNet(3, 3, base=8, depth=4, bilinear=True), [1, 3, 37, 50]),
        ("unet_bilinear_depth3", UNet(2, 1, base=8, depth=3, bilinear=True), [2, 2, 24, 40]),
    ]
    for i, (name, model, shape) in enumerate(cases):
        model = model.eval()
        fill(model)
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(200 + i))
        with torch.no_grad():
            y = model(x)
        params = sum(p.numel() for p in model.parameters())
        save_file({"x": x.numpy(), "out": y.numpy()}, os.path.join(OUT, f"{name}.safetensors"),
                  metadata={"torch": torch.__version__, "parameters": str(params)})
        print(name, shape, "parameters", params, "out", tuple(y.shape),
              "mean abs", float(y.abs().mean()))


if __name__ == "__main__":
    main()
