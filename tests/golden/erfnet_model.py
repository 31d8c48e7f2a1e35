"""ERFNet (Romera et al. 2017) as Eromera/erfnet_pytorch's `train/erfnet.py` arranges it
(`Net(num_classes)`, the model of its Cityscapes checkpoint `erfnet_pretrained.pth`),
written out here from that description (its code, CC BY-NC 4.0, is not vendored) with the
same module names, so that its state dicts have the same keys and the same semantics:

- a downsampler block concatenates a 3x3 stride-2 convolution (with bias) to
  `noutput - ninput` channels and a 2x2 max pool of its input, then batch norm (eps 1e-3)
  and ReLU (the sides must halve exactly: PyTorch fails on odd ones);
- a non-bottleneck-1D block runs a 3x1 and a 1x3 convolution (with bias; ReLU between,
  batch norm and ReLU after), then the same dilated (the 3x1 along the height, the 1x3
  along the width; ReLU between, batch norm after), adds its input and applies ReLU;
- an upsampler block is a 3x3 stride-2 transposed convolution (padding 1, output
  padding 1, bias), batch norm and ReLU; the decoder ends in a 2x2 stride-2 transposed
  convolution to the classes;
- `forward(x, only_encode=True)` gives the encoder's 1x1 `output_conv` at 1/8 instead;
- dropout is the identity in evaluation.
"""
import torch
import torch.nn.functional as F
from torch import nn


class DownsamplerBlock(nn.Module):
    def __init__(self, ninput, noutput):
        super().__init__()
        self.conv = nn.Conv2d(ninput, noutput - ninput, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(noutput, eps=1e-3)

    def forward(self, x):
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class non_bottleneck_1d(nn.Module):  # noqa: N801 (the original's name)
    def __init__(self, chann, dropprob, dilated):
        super().__init__()
        d = dilated
        self.conv3x1_1 = nn.Conv2d(chann, chann, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(chann, chann, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(chann, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(chann, chann, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(chann, chann, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(chann, eps=1e-3)
        self.dropout = nn.Dropout2d(dropprob)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1x3_1(F.relu(self.conv3x1_1(x)))))
        y = self.bn2(self.conv1x3_2(F.relu(self.conv3x1_2(y))))
        return F.relu(self.dropout(y) + x)


class Encoder(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.initial_block = DownsamplerBlock(3, 16)
        layers = [DownsamplerBlock(16, 64)] + [non_bottleneck_1d(64, 0.03, 1) for _ in range(5)]
        layers.append(DownsamplerBlock(64, 128))
        for _ in range(2):
            layers += [non_bottleneck_1d(128, 0.3, d) for d in (2, 4, 8, 16)]
        self.layers = nn.ModuleList(layers)
        self.output_conv = nn.Conv2d(128, num_classes, 1)

    def forward(self, x, predict=False):
        x = self.initial_block(x)
        for layer in self.layers:
            x = layer(x)
        return self.output_conv(x) if predict else x


class UpsamplerBlock(nn.Module):
    def __init__(self, ninput, noutput):
        super().__init__()
        self.conv = nn.ConvTranspose2d(ninput, noutput, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(noutput, eps=1e-3)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Decoder(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.layers = nn.ModuleList([
            UpsamplerBlock(128, 64), non_bottleneck_1d(64, 0, 1), non_bottleneck_1d(64, 0, 1),
            UpsamplerBlock(64, 16), non_bottleneck_1d(16, 0, 1), non_bottleneck_1d(16, 0, 1)])
        self.output_conv = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.output_conv(x)


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.encoder = Encoder(num_classes)
        self.decoder = Decoder(num_classes)

    def forward(self, x, only_encode=False):
        if only_encode:
            return self.encoder(x, predict=True)
        return self.decoder(self.encoder(x))
