#!/usr/bin/env python3
"""PyTorch CPU (2 threads) peer of benches/segmentation.rs: the same networks at the same
sizes, same rule (a fresh input per call, the output read back), median of 7 calls after
2 warm-ups, in ms. The U-Net, SegNet and FCN-8s modules are the golden script's
(tests/golden/make_golden_classic.py). Usage, from the repository root:

    /path/to/venv/bin/python benches/torch_segmentation.py
    /path/to/venv/bin/python benches/torch_segmentation.py sdpa   # benches/sdpa.rs's peer
    /path/to/venv/bin/python benches/torch_segmentation.py --only smp_unet   # names containing it
"""
import os
import statistics
import sys
import time

import torch
import torchvision
from torchvision.models import resnet18
from torchvision.models import segmentation as seg
from torchvision.models._utils import IntermediateLayerGetter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
from make_golden_classic import FCN8s, SegNet, UNet  # noqa: E402

torch.set_num_threads(2)


# `--only TEXT`: time the networks whose names contain TEXT (criterion's filter, alike).
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv[:-1] else None


def bench(name, net, shape, reps=7):
    if ONLY is not None and ONLY not in name:
        return
    xs = [torch.randn(*shape) for _ in range(reps + 2)]
    with torch.no_grad():
        for x in xs[:2]:
            float(net(x).sum())
        ts = []
        for x in xs[2:]:
            t = time.perf_counter()
            float(net(x).sum())
            ts.append((time.perf_counter() - t) * 1e3)
    print(f"{name} {statistics.median(ts):.1f} ms", flush=True)


def out(m):
    return lambda x: m(x)["out"]


def first(m):
    return lambda x: m(x)[0]


def last(m):
    return lambda x: m(x)[-1]


def sdpa_on_maps(heads, qs, ks):
    """benches/sdpa.rs's attention: q / k / v as NCHW maps, heads on channel groups (the
    key and value maps fixed, a fresh query a call)."""
    k = torch.randn(ks)
    v = torch.randn(ks)

    def heads_of(t):
        n, c, h, w = t.shape
        return t.reshape(n, heads, c // heads, h * w).transpose(2, 3)

    def run(q):
        y = torch.nn.functional.scaled_dot_product_attention(heads_of(q), heads_of(k), heads_of(v))
        return y.transpose(2, 3).reshape(qs)
    return run


def spatial_gather(fs):
    """benches/sdpa.rs's OCR gather: HRNet-OCR's SpatialGather_Module (the features fixed, a
    fresh map of logits a call)."""
    feats = torch.randn(fs)

    def run(probs):
        n, k = probs.shape[:2]
        weights = torch.softmax(probs.view(n, k, -1), dim=2)
        f = feats.view(n, feats.shape[1], -1).permute(0, 2, 1)
        return torch.matmul(weights, f).permute(0, 2, 1).unsqueeze(3)
    return run


if sys.argv[1:] == ["sdpa"]:
    for name, heads, e, q_map, k_map in [("mit_b0_stage1_512", 1, 32, (128, 128), (16, 16)),
                                          ("mit_b1_stage1_512", 1, 64, (128, 128), (16, 16)),
                                          ("mit_b1_stage4_512", 8, 64, (16, 16), (16, 16)),
                                          ("split_keys_1024", 1, 64, (32, 32), (32, 32))]:
        qs, ks = (1, heads * e) + q_map, (1, heads * e) + k_map
        bench(f"sdpa_{name}", sdpa_on_maps(heads, qs, ks), qs, reps=15)
    bench("spatial_gather_ocr_cityscapes_512", spatial_gather((1, 512, 128, 256)),
          (1, 19, 128, 256), reps=15)
    sys.exit(0)

small = (1, 3, 160, 160)
bench("fcn_resnet50_160", out(seg.fcn_resnet50(weights=None, weights_backbone=None).eval()), small)
bench("deeplabv3_resnet50_160",
      out(seg.deeplabv3_resnet50(weights=None, weights_backbone=None).eval()), small)
bench("deeplabv3_mobilenet_v3_large_256",
      out(seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None).eval()),
      (1, 3, 256, 256))
features = IntermediateLayerGetter(resnet18(weights=None), return_layers={"layer4": "out"})
bench("resnet18_features_224", out(features.eval()), (1, 3, 224, 224))
regnet = torchvision.models.regnet_y_400mf().eval()
bench("regnet_y_400mf_features_224", lambda x: regnet.trunk_output(regnet.stem(x)), (1, 3, 224, 224))
bench("mnasnet1_0_features_224", torchvision.models.mnasnet1_0().layers.eval(), (1, 3, 224, 224))
shuffle = torchvision.models.shufflenet_v2_x1_0().eval()
bench("shufflenet_v2_x1_0_features_224",
      lambda x: shuffle.conv5(shuffle.stage4(shuffle.stage3(shuffle.stage2(shuffle.maxpool(shuffle.conv1(x)))))),
      (1, 3, 224, 224))
bench("densenet121_features_224", torchvision.models.densenet121().features.eval(),
      (1, 3, 224, 224))
bench("convnext_tiny_features_224", torchvision.models.convnext_tiny().features.eval(),
      (1, 3, 224, 224))
bench("efficientnet_b0_features_224", torchvision.models.efficientnet_b0().features.eval(),
      (1, 3, 224, 224))
try:
    import segmentation_models_pytorch as smp
    bench("smp_unet_resnet34_160", smp.Unet("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_unetplusplus_resnet34_160",
          smp.UnetPlusPlus("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_fpn_resnet34_160", smp.FPN("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_deeplabv3plus_resnet34_160",
          smp.DeepLabV3Plus("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_deeplabv3plus_mobilenet_v2_os8_256",
          smp.DeepLabV3Plus("mobilenet_v2", encoder_weights=None, encoder_output_stride=8,
                            classes=2).eval(), (1, 3, 256, 256))
    bench("smp_linknet_resnet34_160", smp.Linknet("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_pspnet_resnet34_160", smp.PSPNet("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_upernet_resnet34_160", smp.UPerNet("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_segformer_resnet34_160",
          smp.Segformer("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_segformer_mit_b0_256",
          smp.Segformer("mit_b0", encoder_weights=None, classes=2).eval(), (1, 3, 256, 256))
    try:
        from transformers import SegformerConfig, SegformerForSemanticSegmentation
        hf_b0 = SegformerForSemanticSegmentation(SegformerConfig(num_labels=150)).eval()
        bench("hf_segformer_b0_ade_512", lambda x: hf_b0(pixel_values=x).logits,
              (1, 3, 512, 512))
    except ImportError:
        print("hf_segformer_b0_ade_512: needs transformers", flush=True)
    bench("smp_dpt_vit_tiny_224",
          smp.DPT("tu-vit_tiny_patch16_224", encoder_weights=None, classes=2).eval(),
          (1, 3, 224, 224))
    bench("smp_manet_resnet34_160", smp.MAnet("resnet34", encoder_weights=None, classes=2).eval(), small)
    bench("smp_pan_resnet34_160", smp.PAN("resnet34", encoder_weights=None, classes=2).eval(), small)
    for encoder in ["mobileone_s0", "timm-efficientnet-b0", "timm-skresnet18", "dpn68",
                    "tu-regnety_004", "tu-resnet50d", "tu-convnext_atto", "tu-ecaresnet50d",
                    "timm-res2net50_26w_4s", "timm-resnest50d", "timm-resnest50d_4s2x40d",
                    "timm-gernet_s", "tu-gernet_m", "tu-resnetblur50", "tu-convnextv2_atto",
                    "tu-tf_efficientnet_b0", "tu-tf_efficientnetv2_b0", "tu-repvgg_a0",
                    "tu-resnetrs50", "tu-mixnet_m", "tu-hrnet_w18_small",
                    "tu-xception41"]:
        bench(f"smp_unet_{encoder.replace('-', '_')}_160",
              smp.Unet(encoder, encoder_weights=None, classes=2).eval(), small)
    bench("smp_unet_se_resnext50_32x4d_160",
          smp.Unet("se_resnext50_32x4d", encoder_weights=None, classes=2).eval(), small)
    bench("smp_unet_efficientnet_b0_256",
          smp.Unet("efficientnet-b0", encoder_weights=None, classes=2).eval(), (1, 3, 256, 256))
    for encoder in ["tu-mobilenetv3_large_100", "tu-mobilenetv4_conv_small"]:
        bench(f"smp_unet_{encoder.replace('-', '_')}_256",
              smp.Unet(encoder, encoder_weights=None, classes=2).eval(), (1, 3, 256, 256))
except ImportError:
    print("smp models skipped: pip install segmentation-models-pytorch")
bench("unet_160", UNet(3, 2).eval(), small)
bench("segnet_vgg16_bn_160", SegNet(3, 21).eval(), small)
bench("fcn8s_160", FCN8s(21).eval(), small)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden",
                                "third_party"))
import u2net  # noqa: E402
bench("u2netp_320", first(u2net.U2NETP(3, 1).eval()), (1, 3, 320, 320))
bench("u2net_160", first(u2net.U2NET(3, 1).eval()), small)
from modnet.modnet import MODNet  # noqa: E402
modnet = MODNet(backbone_pretrained=False).eval()
bench("modnet_256", lambda x: modnet(x, True)[2], (1, 3, 256, 256))
from bisenet import bisenetv2  # noqa: E402
bisenetv2.BiSeNetV2.load_pretrain = lambda self: None  # its backbone download
bench("bisenetv2_256x512", first(bisenetv2.BiSeNetV2(19, aux_mode="eval").eval()), (1, 3, 256, 512))
from facexlib_parsing.bisenet import BiSeNet  # noqa: E402
bench("bisenet_face_512", first(BiSeNet(19).eval()), (1, 3, 512, 512))
from fast_scnn.fast_scnn import FastSCNN  # noqa: E402
bench("fast_scnn_512x1024", first(FastSCNN(19).eval()), (1, 3, 512, 1024))
from enet_model import ENet  # noqa: E402
bench("enet_512x1024", ENet(20).eval(), (1, 3, 512, 1024))
from erfnet_model import Net as ERFNet  # noqa: E402
bench("erfnet_512x1024", ERFNet(20).eval(), (1, 3, 512, 1024))
from pidnet.pidnet import PIDNet  # noqa: E402
bench("pidnet_s_512x1024", PIDNet(m=2, n=3, num_classes=19, planes=32, ppm_planes=96, head_planes=128,
                                  augment=False).eval(), (1, 3, 512, 1024))
from ddrnet import DDRNet_23_slim as ddrnet  # noqa: E402
bench("ddrnet_23_slim_512x1024", ddrnet.DualResNet(ddrnet.BasicBlock, [2, 2, 2, 2], num_classes=19,
                                                   planes=32, spp_planes=128, head_planes=64,
                                                   augment=False).eval(), (1, 3, 512, 1024))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden",
                                "third_party", "stdc_seg"))
from models.model_stages import BiSeNet as StdcSeg  # noqa: E402
bench("stdc1_seg_512x1024", first(StdcSeg("STDCNet813", 19).eval()), (1, 3, 512, 1024))
from hrnet_seg_model import hrnet_ocr, hrnet_seg  # noqa: E402
bench("hrnet_w18_small_v2_seg_512x1024",
      hrnet_seg([2, 64], [1, 3, 2], [2, 2, 2], [18, 36, 72, 144], 19, 1, False).eval(),
      (1, 3, 512, 1024))
# HRNet-OCR's forward returns [aux logits, logits].
bench("hrnet_w18_small_v2_ocr_512x1024",
      last(hrnet_ocr([2, 64], [1, 3, 2], [2, 2, 2], [18, 36, 72, 144], 19, 512, 256,
                     True).eval()), (1, 3, 512, 1024))
# Robust Video Matting (the golden script's transcription of RVM's modules), each frame
# with the previous frame's state, the foreground and alpha read back.
from make_golden_rvm import MattingNetwork  # noqa: E402
rvm = MattingNetwork("mobilenetv3").eval()
for name, shape, ratio in [("rvm_mobilenetv3_256", (1, 3, 256, 256), 1),
                           ("rvm_mobilenetv3_288x512_half", (1, 3, 288, 512), 0.5)]:
    state = [None] * 4

    def frame(x, ratio=ratio):
        fgr, pha, *rec = rvm(x.abs().clamp(max=1), *state, downsample_ratio=ratio)
        state[:] = rec
        return torch.cat([fgr.flatten(), pha.flatten()])
    bench(name, frame, shape)
