"""Stand-in for STDC-Seg's `modules/bn.py` (written for segblocks, not the original).

The original's `InPlaceABNSync` runs batch norm and an activation through a CUDA
extension (mapillary/inplace_abn). `models/model_stages.py` builds every one with
`activation='none'`, where it is plain batch norm with PyTorch's defaults (eps 1e-5) and
the same parameters and buffers (`weight`, `bias`, `running_mean`, `running_var`), so
this stand-in is `nn.BatchNorm2d` that takes the same arguments.
"""
import torch.nn as nn


class InPlaceABNSync(nn.BatchNorm2d):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 activation="leaky_relu", slope=0.01):
        assert activation == "none", "only the form model_stages.py builds"
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
