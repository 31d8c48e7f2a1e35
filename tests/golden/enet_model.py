"""ENet (Paszke et al. 2016) as davidtvs/PyTorch-ENet's `models/enet.py` arranges it since its
2021 revision (the one its CamVid and Cityscapes checkpoints were trained with), written out
here from that description (its code is not vendored) with the same module names, so that
its state dicts (`ENet(num_classes, encoder_relu=False, decoder_relu=True)`) have the same
keys and the same semantics:

- every activation is a module of its own, `nn.ReLU()` or a one-slope `nn.PReLU()`, after
  each batch norm of a block's extension branch (but the upsampling bottleneck's last) and
  after the sum (`out_activation`);
- the initial block concatenates a 3x3 stride-2 convolution (13 channels) and a 3x3
  stride-2 max pool of the image (3 channels), then batch norm and the activation;
- a downsampling bottleneck max-pools its input (2x2, indices kept) and pads it with zero
  channels to the extension branch's width before the sum;
- an upsampling bottleneck unpools its 1x1-projected input with the indices of its
  downsampling bottleneck, to that bottleneck's input size, and its extension branch's
  2x2 transposed convolution is sized to the same (`output_size`);
- the final 3x3 stride-2 transposed convolution is sized to the input (`output_size`);
- dropout is the identity in evaluation.
"""
import torch
from torch import nn


def _act(relu):
    return nn.ReLU() if relu else nn.PReLU()


def _conv_bn(cin, cout, relu, **kw):
    """Conv2d (no bias), BatchNorm2d and, unless `relu` is None, an activation."""
    layers = [nn.Conv2d(cin, cout, bias=False, **kw), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, _act(relu)) if relu is not None else nn.Sequential(*layers)


class InitialBlock(nn.Module):
    def __init__(self, in_channels, out_channels, relu=True):
        super().__init__()
        self.main_branch = nn.Conv2d(in_channels, out_channels - 3, 3, stride=2, padding=1,
                                     bias=False)
        self.ext_branch = nn.MaxPool2d(3, stride=2, padding=1)
        self.batch_norm = nn.BatchNorm2d(out_channels)
        self.out_activation = _act(relu)

    def forward(self, x):
        y = torch.cat((self.main_branch(x), self.ext_branch(x)), 1)
        return self.out_activation(self.batch_norm(y))


class RegularBottleneck(nn.Module):
    def __init__(self, channels, kernel_size=3, padding=0, dilation=1, asymmetric=False,
                 relu=True):
        super().__init__()
        inner = channels // 4
        self.ext_conv1 = _conv_bn(channels, inner, relu, kernel_size=1)
        if asymmetric:
            self.ext_conv2 = nn.Sequential(
                *_conv_bn(inner, inner, relu, kernel_size=(kernel_size, 1),
                          padding=(padding, 0), dilation=dilation),
                *_conv_bn(inner, inner, relu, kernel_size=(1, kernel_size),
                          padding=(0, padding), dilation=dilation))
        else:
            self.ext_conv2 = _conv_bn(inner, inner, relu, kernel_size=kernel_size,
                                      padding=padding, dilation=dilation)
        self.ext_conv3 = _conv_bn(inner, channels, relu, kernel_size=1)
        self.ext_regul = nn.Dropout2d(p=0.1)
        self.out_activation = _act(relu)

    def forward(self, x):
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        return self.out_activation(x + ext)


class DownsamplingBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, relu=True):
        super().__init__()
        inner = in_channels // 4
        self.main_max1 = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.ext_conv1 = _conv_bn(in_channels, inner, relu, kernel_size=2, stride=2)
        self.ext_conv2 = _conv_bn(inner, inner, relu, kernel_size=3, padding=1)
        self.ext_conv3 = _conv_bn(inner, out_channels, relu, kernel_size=1)
        self.ext_regul = nn.Dropout2d(p=0.1)
        self.out_activation = _act(relu)

    def forward(self, x):
        main, indices = self.main_max1(x)
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        n, c, h, w = ext.shape
        zeros = torch.zeros(n, c - main.shape[1], h, w, dtype=main.dtype)
        return self.out_activation(torch.cat((main, zeros), 1) + ext), indices


class UpsamplingBottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, relu=True):
        super().__init__()
        inner = in_channels // 4
        self.main_conv1 = _conv_bn(in_channels, out_channels, None, kernel_size=1)
        self.main_unpool1 = nn.MaxUnpool2d(kernel_size=2)
        self.ext_conv1 = _conv_bn(in_channels, inner, relu, kernel_size=1)
        self.ext_tconv1 = nn.ConvTranspose2d(inner, inner, kernel_size=2, stride=2, bias=False)
        self.ext_tconv1_bnorm = nn.BatchNorm2d(inner)
        self.ext_tconv1_activation = _act(relu)
        self.ext_conv2 = _conv_bn(inner, out_channels, None, kernel_size=1)
        self.ext_regul = nn.Dropout2d(p=0.1)
        self.out_activation = _act(relu)

    def forward(self, x, indices, output_size):
        main = self.main_unpool1(self.main_conv1(x), indices, output_size=output_size)
        ext = self.ext_tconv1(self.ext_conv1(x), output_size=output_size)
        ext = self.ext_tconv1_activation(self.ext_tconv1_bnorm(ext))
        ext = self.ext_regul(self.ext_conv2(ext))
        return self.out_activation(main + ext)


class ENet(nn.Module):
    def __init__(self, num_classes, encoder_relu=False, decoder_relu=True):
        super().__init__()
        enc, dec = encoder_relu, decoder_relu
        self.initial_block = InitialBlock(3, 16, relu=enc)
        self.downsample1_0 = DownsamplingBottleneck(16, 64, relu=enc)
        for i in range(1, 5):
            setattr(self, f"regular1_{i}", RegularBottleneck(64, padding=1, relu=enc))
        self.downsample2_0 = DownsamplingBottleneck(64, 128, relu=enc)
        # Stages 2 and 3 repeat one pattern (stage 2 numbered from 1, stage 3 from 0).
        pattern = [("regular", dict(padding=1)), ("dilated", dict(dilation=2, padding=2)),
                   ("asymmetric", dict(kernel_size=5, padding=2, asymmetric=True)),
                   ("dilated", dict(dilation=4, padding=4)), ("regular", dict(padding=1)),
                   ("dilated", dict(dilation=8, padding=8)),
                   ("asymmetric", dict(kernel_size=5, padding=2, asymmetric=True)),
                   ("dilated", dict(dilation=16, padding=16))]
        self.stage2_3 = []
        for stage, first in ((2, 1), (3, 0)):
            for j, (kind, kw) in enumerate(pattern):
                name = f"{kind}{stage}_{first + j}"
                setattr(self, name, RegularBottleneck(128, relu=enc, **kw))
                self.stage2_3.append(name)
        self.upsample4_0 = UpsamplingBottleneck(128, 64, relu=dec)
        self.regular4_1 = RegularBottleneck(64, padding=1, relu=dec)
        self.regular4_2 = RegularBottleneck(64, padding=1, relu=dec)
        self.upsample5_0 = UpsamplingBottleneck(64, 16, relu=dec)
        self.regular5_1 = RegularBottleneck(16, padding=1, relu=dec)
        self.transposed_conv = nn.ConvTranspose2d(16, num_classes, kernel_size=3, stride=2,
                                                  padding=1, bias=False)

    def forward(self, x):
        input_size = x.size()
        x = self.initial_block(x)
        size1 = x.size()
        x, indices1 = self.downsample1_0(x)
        for i in range(1, 5):
            x = getattr(self, f"regular1_{i}")(x)
        size2 = x.size()
        x, indices2 = self.downsample2_0(x)
        for name in self.stage2_3:
            x = getattr(self, name)(x)
        x = self.upsample4_0(x, indices2, output_size=size2)
        x = self.regular4_2(self.regular4_1(x))
        x = self.upsample5_0(x, indices1, output_size=size1)
        x = self.regular5_1(x)
        return self.transposed_conv(x, output_size=input_size)
