"""HRNet-Semantic-Segmentation's HighResolutionNet (third_party/hrnet_seg/seg_hrnet.py) and
its OCR network (seg_hrnet_ocr.py) built from plain arguments in place of its yacs configuration, for the golden script and
benches/torch_device.py (which must not import the golden script: it needs safetensors).
Needs torch and NumPy only."""
import os
import sys

import numpy as np

if not hasattr(np, "int"):
    np.int = int  # seg_hrnet.py calls np.int, which NumPy 1.24 removed
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
from hrnet_seg.seg_hrnet import HighResolutionNet  # noqa: E402
from hrnet_seg.seg_hrnet_ocr import HighResolutionNet as HighResolutionNetOcr  # noqa: E402


class Cfg(dict):
    """yacs' attribute access (the model keeps its stage configurations)."""
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def extra(stage1, modules, blocks, widths, final_kernel):
    """`MODEL.EXTRA`: `stage1` (bottlenecks, their channels), `modules` and `blocks` (per
    branch) of stages 2 to 4, the four branches' `widths`, `final_kernel`."""
    def stage(n):
        return Cfg(NUM_MODULES=modules[n - 2], NUM_BRANCHES=n, BLOCK="BASIC",
                   NUM_BLOCKS=[blocks[n - 2]] * n, NUM_CHANNELS=widths[:n], FUSE_METHOD="SUM")
    first = Cfg(NUM_MODULES=1, NUM_BRANCHES=1, BLOCK="BOTTLENECK", NUM_BLOCKS=[stage1[0]],
                NUM_CHANNELS=[stage1[1]], FUSE_METHOD="SUM")
    return Cfg(FINAL_CONV_KERNEL=final_kernel, STAGE1=first, STAGE2=stage(2), STAGE3=stage(3),
               STAGE4=stage(4))


def hrnet_seg(stage1, modules, blocks, widths, classes, final_kernel, align):
    """`HighResolutionNet(config)` of seg_hrnet.py: the trunk as `extra` takes it,
    `classes`, `final_kernel` (FINAL_CONV_KERNEL) and `align` (ALIGN_CORNERS)."""
    e = extra(stage1, modules, blocks, widths, final_kernel)
    return HighResolutionNet(Cfg(MODEL=Cfg(ALIGN_CORNERS=align, EXTRA=e),
                                 DATASET=Cfg(NUM_CLASSES=classes)))


def hrnet_ocr(stage1, modules, blocks, widths, classes, mid, key, align):
    """`HighResolutionNet(config)` of seg_hrnet_ocr.py: the trunk as `extra` takes it,
    `classes`, the OCR head's `mid` and `key` channels (MODEL.OCR.MID_CHANNELS,
    KEY_CHANNELS) and `align` (ALIGN_CORNERS). Its forward returns [aux logits, logits]."""
    e = extra(stage1, modules, blocks, widths, 1)
    ocr = Cfg(MID_CHANNELS=mid, KEY_CHANNELS=key)
    return HighResolutionNetOcr(Cfg(MODEL=Cfg(ALIGN_CORNERS=align, EXTRA=e, OCR=ocr),
                                    DATASET=Cfg(NUM_CLASSES=classes)))
