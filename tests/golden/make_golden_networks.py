#!/usr/bin/env python3
"""Writes tests/golden/networks/: whole networks at configurations the other golden files
do not use (widths, depths, upsampling modes, class counts, batch sizes, odd input sizes),
every one through the same harness, tests/networks.rs.

Each case is a network built by its PyTorch definition, torchvision's or the classic
modules of make_golden_classic.py, filled with the weights segblocks'
`StateDict::synthetic()` makes up (make_golden_segmentation.fill), so only the input `x`
and the outputs (`out`, and `aux` for a torchvision model with `aux_loss=True`) are
stored. networks/cases.json lists each case's kind, its arguments under the Rust
configuration's names, its file and PyTorch's parameter count. Kinds:

  unet     make_golden_classic.UNet(cin, classes, base, depth, bilinear)
  segnet   make_golden_classic.SegNet(cin, classes, widths, convs)
  fcn8s    make_golden_classic.FCN8s(classes, widths, fc)
  mbv2     torchvision mobilenet_v2(width_mult).features
  mbv3     torchvision mobilenet_v3_{arch}(width_mult, reduced_tail, dilated).features
  seg      torchvision.models.segmentation.<name>(num_classes, aux_loss)
  resnet   torchvision.models.<name>(replace_stride_with_dilation) up to layer4 (the
           feature extractor: IntermediateLayerGetter, torchvision's own names)
  smp_unet segmentation_models_pytorch.Unet(encoder, encoder_depth, in_channels, classes,
           decoder_channels, decoder_use_norm, decoder_interpolation, activation,
           decoder_attention_type) with a
           ResNet or the MobileNetV2 encoder (needs segmentation-models-pytorch, 0.6.0 wrote the files; the
           parameter count leaves out what smp keeps but never runs: the encoder stages
           past encoder_depth and, with scse, the last block's attention1)
  smp_fpn  segmentation_models_pytorch.FPN(encoder, encoder_depth, in_channels, classes,
           decoder_pyramid_channels, decoder_segmentation_channels, decoder_merge_policy,
           decoder_interpolation, upsampling, activation), the same encoders
  smp_deeplabv3, smp_deeplabv3plus
           segmentation_models_pytorch.DeepLabV3 / DeepLabV3Plus(encoder, encoder_depth,
           encoder_output_stride, in_channels, classes, decoder_channels,
           decoder_atrous_rates, decoder_aspp_separable, upsampling, activation), the same
           encoders; with legacy=True the file also holds the state dict under smp's
           older DeepLabV3 names (decoder.0 / .1 / .2), which the test loads instead;
           any smp case with aux=dict(classes, pooling, activation) has smp's classification
           head (aux_params) too, its labels stored as `aux` ([N, classes, 1, 1])
  smp_unetplusplus segmentation_models_pytorch.UnetPlusPlus, smp_unet's arguments
  smp_linknet segmentation_models_pytorch.Linknet(encoder, encoder_depth, in_channels,
           classes, decoder_use_norm, activation), the same encoders
  smp_pspnet segmentation_models_pytorch.PSPNet(encoder, encoder_depth, in_channels,
           classes, psp_out_channels, decoder_use_norm, upsampling, activation)
  smp_upernet segmentation_models_pytorch.UPerNet(encoder, encoder_depth, in_channels,
           classes, decoder_channels, decoder_use_norm, upsampling, activation)
  smp_segformer segmentation_models_pytorch.Segformer(encoder, encoder_depth, in_channels,
           classes, decoder_segmentation_channels, upsampling, activation)
  smp_pan  segmentation_models_pytorch.PAN(encoder, encoder_depth, encoder_output_stride,
           in_channels, classes, decoder_channels, decoder_interpolation, upsampling,
           activation)
  smp_manet segmentation_models_pytorch.MAnet(encoder, encoder_depth, in_channels, classes,
           decoder_channels, decoder_pab_channels, decoder_use_norm, decoder_interpolation,
           activation)
  smp_dpt  segmentation_models_pytorch.DPT(encoder, encoder_depth, encoder_output_indices,
           decoder_readout, decoder_intermediate_channels, decoder_fusion_channels,
           in_channels, classes, activation, **vit) on timm Vision Transformers
  mnasnet  torchvision mnasnet0_5 / 0_75 / 1_0 / 1_3 (name).layers
  regnet   torchvision regnet_x_400mf .. regnet_y_128gf (name): stem and trunk_output
  shufflenet torchvision shufflenet_v2_x0_5 .. x2_0 (name) up to conv5 (no pool, no fc)
  senet    pretrainedmodels' (smp's vendored) SENet (name: se_resnet50 .. senet154)
           .features; the smp kinds take these as encoders too
           with reparam=True (a MobileOne encoder) the file holds the state dict after
           MobileOne's reparameterize_model, which the test loads; the output is the
           trained model's
  sknet    timm's Selective Kernel ResNet as smp builds it (name: timm-skresnet18 /
           timm-skresnet34 / timm-skresnext50_32x4d), its deepest feature; the smp kinds
           take these as encoders too
  inceptionv4 pretrainedmodels' Inception-v4 as smp builds it (3x3 convolutions and max
           pools padded by 1), its deepest feature; the smp kinds take it as an encoder too
  inceptionresnetv2 pretrainedmodels' Inception-ResNet-v2 as smp builds it, its deepest
           feature; the smp kinds take it as an encoder too
  dpn      pretrainedmodels' Dual Path Network as smp builds it (name: dpn68 .. dpn131),
           its deepest feature; the smp kinds take these as encoders too
  densenet torchvision densenet121 / 161 / 169 / 201 (name).features; the smp kinds take
           these as encoders too
  convnext torchvision convnext_tiny / _small / _base / _large (name).features
  vgg      torchvision vgg11 .. vgg19(_bn) (name).features; the smp kinds take these as
           encoders too (vgg11 .. vgg19_bn)
  tv_effnet torchvision efficientnet_b0 .. b7 / efficientnet_v2_s / m / l (name).features
  effnet   EfficientNet-PyTorch's efficientnet-b{variant} (smp's vendored copy)
           .extract_features; the smp kinds also take its efficientnet-b* encoders
  u2net    xuebinqin/U-2-Net's U2NET / U2NETP and xuebinqin/DIS's ISNetDIS (name: u2net,
           u2netp, isnet; in_ch=cin, out_ch=classes), the files vendored unchanged in
           third_party/ (Apache-2.0); every map forward returns: `out` (U2NET's fused
           d0, ISNet's d1) and `side{i}`
  modnet   ZHKKKe/MODNet's MODNet() with forward(x, inference), vendored unchanged in third_party/modnet (Apache-2.0): `out` the
           matte, and without inference `side1` the semantic map and `side2` the detail
  bisenetv2 CoinCheung/BiSeNet's BiSeNetV2(n_classes, aux_mode) ('eval' or 'train'),
           vendored unchanged in third_party/bisenet (MIT): `out` the logits, and with
           'train' `side1` .. `side4` the auxiliary heads aux2, aux3, aux4, aux5_4
  bisenet  facexlib's (zllrunning/face-parsing.PyTorch's) face parsing BiSeNet(num_class),
           vendored unchanged in third_party/facexlib_parsing (MIT): `out`, `side1`, `side2`
           its three logits (out, out16, out32)
  fast_scnn Tramac/Fast-SCNN-pytorch's FastSCNN(num_classes, aux), vendored unchanged in
           third_party/fast_scnn (Apache-2.0): `out` the logits, with aux `aux` the auxiliary head's
  enet     davidtvs/PyTorch-ENet's ENet(num_classes, encoder_relu, decoder_relu) as its
           models/enet.py defines it since 2021, written out in enet_model.py under its
           names: `out` the logits
  erfnet   Eromera/erfnet_pytorch's Net(num_classes) with forward(x, only_encode), written
           out in erfnet_model.py under its names: `out` the logits (the parameter count
           leaves out the output layer the forward does not run)
  ddrnet   ydhongHIT/DDRNet's DualResNet(BasicBlock, layers, num_classes, planes, spp_planes,
           head_planes, augment) of segmentation/DDRNet_23_slim.py (split false) or
           DDRNet_39.py (split true), vendored unchanged in third_party/ddrnet (MIT): `out`
           the logits, with augment `side1` the auxiliary head's logits
  pidnet   XuJiacong/PIDNet's PIDNet(m, n, num_classes, planes, ppm_planes, head_planes,
           augment), vendored unchanged in third_party/pidnet (MIT): `out` the logits, with
           augment `out` the P branch's logits, `side1` the logits, `side2` the boundary map
  stdc     MichaelFan01/STDC-Seg's BiSeNet(backbone, n_classes, use_boundary_2/4/8,
           use_conv_last) (backbone STDCNet813 / STDCNet1446; boundary: the use_boundary
           flags set), vendored unchanged in third_party/stdc_seg (MIT; its CUDA batch
           norm replaced by nn.BatchNorm2d, the same thing in the form it is built):
           `out`, `side1`, `side2` the logits (out, out16, out32), then `side3` .. the
           detail heads' maps
  hrnet_seg HRNet/HRNet-Semantic-Segmentation's HighResolutionNet(config) of seg_hrnet.py
           (HRNetV2), vendored unchanged in third_party/hrnet_seg (MIT), its config built
           from stage1 (blocks, channels), modules, blocks, widths, classes, final_kernel,
           align: `out` the quarter-size logits
  hf_segformer Hugging Face transformers' SegformerForSemanticSegmentation(SegformerConfig(
           num_channels=cin, hidden_sizes=hidden, depths, num_attention_heads=heads,
           sr_ratios=sr, patch_sizes=patch, strides, mlp_ratios=mlp,
           decoder_hidden_size=decoder, num_labels=classes)), its weights made up under
           the names transformers saves its checkpoints with (`save_pretrained`'s, the
           Hub files'; needs transformers): `out` the logits at the first stage's size;
           the entry's `hf_config` is the config.json transformers writes for it
  hrnet_ocr the same repository's HighResolutionNet(config) of seg_hrnet_ocr.py (HRNet-OCR),
           vendored unchanged beside it, the trunk's arguments as hrnet_seg's, classes,
           mid, key (MODEL.OCR's MID_CHANNELS, KEY_CHANNELS), align: `out` the logits,
           `aux` the auxiliary logits (forward's [aux, out])

scripts/fuzz_golden.py --only networks writes random cases in the same format.

Run from the repository root (needs torch, torchvision, numpy, safetensors; the smp kinds
segmentation-models-pytorch, hf_segformer transformers):

    /path/to/venv/bin/python tests/golden/make_golden_networks.py
"""
import copy
import json
import os
import sys

import torch
import torchvision
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden_classic import FCN8s, SegNet, UNet  # noqa: E402
from make_golden_segmentation import fill, make_up  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "networks")

# name, kind, arguments, input shape
CASES = [
    ("unet_bilinear_depth2", "unet", dict(cin=2, classes=3, base=4, depth=2, bilinear=True), [2, 2, 19, 27]),
    ("segnet_three_stages", "segnet", dict(cin=3, classes=2, widths=[4, 8, 8], convs=[2, 1, 2]), [1, 3, 23, 37]),
    ("fcn8s_narrow", "fcn8s", dict(classes=2, widths=[4, 4, 8, 8, 8], fc=8), [2, 3, 9, 50]),
    ("mobilenet_v2_width_0.5", "mbv2", dict(width_mult=0.5), [1, 3, 41, 29]),
    ("mobilenet_v3_small_dilated", "mbv3",
     dict(arch="small", width_mult=0.75, reduced_tail=True, dilated=True), [2, 3, 33, 47]),
    ("lraspp_one_class", "seg", dict(name="lraspp_mobilenet_v3_large", classes=1, aux=False), [2, 3, 45, 37]),
    ("deeplabv3_mobilenet_v3_large_7", "seg",
     dict(name="deeplabv3_mobilenet_v3_large", classes=7, aux=False), [1, 3, 33, 65]),
    ("resnet18_batch3", "resnet", dict(name="resnet18", dilation=[False, False, False]), [3, 3, 35, 29]),
    ("smp_unet_resnet34", "smp_unet",
     dict(encoder="resnet34", depth=5, cin=3, classes=3, decoder_channels=[256, 128, 64, 32, 16],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 96]),
    ("smp_unet_resnet50_depth4_bilinear", "smp_unet",
     dict(encoder="resnet50", depth=4, cin=1, classes=4, decoder_channels=[64, 32, 16, 8],
          use_norm=False, interpolation="bilinear", activation="softmax2d"), [1, 1, 48, 32]),
    ("smp_unet_resnet18_scse_depth3", "smp_unet",
     dict(encoder="resnet18", depth=3, cin=2, classes=2, decoder_channels=[32, 16, 16],
          use_norm=True, interpolation="bicubic", activation="sigmoid", attention="scse"),
     [3, 2, 24, 40]),
    ("smp_unet_mobilenet_v2", "smp_unet",
     dict(encoder="mobilenet_v2", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 32, 64]),
    ("smp_fpn_resnet34", "smp_fpn",
     dict(encoder="resnet34", depth=5, cin=3, classes=3, pyramid=256, segmentation=128, merge="add",
          interpolation="nearest", upsampling=4, activation=None), [2, 3, 64, 64]),
    ("smp_fpn_mobilenet_v2_cat_depth4", "smp_fpn",
     dict(encoder="mobilenet_v2", depth=4, cin=1, classes=4, pyramid=48, segmentation=32, merge="cat",
          interpolation="bilinear", upsampling=2, activation="softmax2d"), [1, 1, 32, 48]),
    ("smp_deeplabv3_resnet34", "smp_deeplabv3",
     dict(encoder="resnet34", depth=5, output_stride=8, cin=3, classes=3, decoder_channels=256,
          rates=[12, 24, 36], separable=False, upsampling=None, activation=None), [2, 3, 48, 64]),
    ("smp_deeplabv3plus_resnet34", "smp_deeplabv3plus",
     dict(encoder="resnet34", depth=5, output_stride=16, cin=3, classes=2, decoder_channels=256,
          rates=[12, 24, 36], separable=True, upsampling=4, activation=None), [2, 3, 64, 48]),
    ("smp_deeplabv3plus_mobilenet_v2_os8", "smp_deeplabv3plus",
     dict(encoder="mobilenet_v2", depth=5, output_stride=8, cin=1, classes=4, decoder_channels=64,
          rates=[2, 4, 6], separable=True, upsampling=4, activation=None), [1, 1, 40, 56]),
    ("smp_deeplabv3_mobilenet_v2_os8", "smp_deeplabv3",
     dict(encoder="mobilenet_v2", depth=5, output_stride=8, cin=3, classes=4, decoder_channels=64,
          rates=[2, 4, 6], separable=False, upsampling=None, activation="logsoftmax"), [2, 3, 40, 56]),
    ("smp_deeplabv3plus_resnet50_depth4_os8", "smp_deeplabv3plus",
     dict(encoder="resnet50", depth=4, output_stride=8, cin=3, classes=1, decoder_channels=32,
          rates=[3, 5, 7], separable=False, upsampling=2, activation="sigmoid"), [1, 3, 32, 40]),
    ("smp_deeplabv3_mobilenet_v2_depth3_legacy", "smp_deeplabv3",
     dict(encoder="mobilenet_v2", depth=3, output_stride=16, cin=2, classes=2, decoder_channels=16,
          rates=[1, 2, 3], separable=True, upsampling=None, activation="tanh", legacy=True),
     [3, 2, 24, 40]),
    ("smp_unet_resnet18_odd_size", "smp_unet",
     dict(encoder="resnet18", depth=4, cin=3, classes=2, decoder_channels=[32, 16, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 37, 54]),
    ("smp_unet_mobilenet_v2_odd_size_bilinear", "smp_unet",
     dict(encoder="mobilenet_v2", depth=5, cin=3, classes=3, decoder_channels=[32, 24, 16, 16, 8],
          use_norm=True, interpolation="bilinear", activation="sigmoid"), [1, 3, 33, 47]),
    ("smp_linknet_resnet34", "smp_linknet",
     dict(encoder="resnet34", depth=5, cin=3, classes=2, use_norm=True, activation=None), [2, 3, 64, 96]),
    ("smp_linknet_mobilenet_v2_depth4_no_norm", "smp_linknet",
     dict(encoder="mobilenet_v2", depth=4, cin=2, classes=3, use_norm=False, activation="sigmoid"),
     [1, 2, 48, 32]),
    ("smp_pspnet_resnet34", "smp_pspnet",
     dict(encoder="resnet34", depth=3, cin=3, classes=3, psp_out=512, use_norm=True, upsampling=8,
          activation=None), [2, 3, 64, 48]),
    ("smp_pspnet_mobilenet_v2_depth5_no_norm", "smp_pspnet",
     dict(encoder="mobilenet_v2", depth=5, cin=3, classes=4, psp_out=64, use_norm=False,
          upsampling=32, activation="softmax2d"), [1, 3, 64, 64]),
    ("smp_pspnet_resnet50_depth4", "smp_pspnet",
     dict(encoder="resnet50", depth=4, cin=1, classes=2, psp_out=32, use_norm=True, upsampling=4,
          activation="logsoftmax"), [1, 1, 48, 32]),
    ("smp_unetplusplus_resnet34", "smp_unetplusplus",
     dict(encoder="resnet34", depth=5, cin=3, classes=2, decoder_channels=[256, 128, 64, 32, 16],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 64]),
    ("smp_unetplusplus_mobilenet_v2_depth4_scse_bilinear", "smp_unetplusplus",
     dict(encoder="mobilenet_v2", depth=4, cin=3, classes=3, decoder_channels=[32, 24, 16, 16],
          use_norm=True, interpolation="bilinear", activation="sigmoid", attention="scse"),
     [1, 3, 48, 32]),
    ("smp_unetplusplus_resnet50_depth3_no_norm_area", "smp_unetplusplus",
     dict(encoder="resnet50", depth=3, cin=1, classes=2, decoder_channels=[16, 16, 8],
          use_norm=False, interpolation="area", activation="softmax2d"), [1, 1, 24, 40]),
    ("smp_unet_resnet18_aux_max", "smp_unet",
     dict(encoder="resnet18", depth=3, cin=3, classes=2, decoder_channels=[16, 16, 8],
          use_norm=True, interpolation="nearest", activation=None,
          aux=dict(classes=5, pooling="max", activation="softmax")), [2, 3, 32, 32]),
    ("smp_deeplabv3plus_mobilenet_v2_aux", "smp_deeplabv3plus",
     dict(encoder="mobilenet_v2", depth=5, output_stride=16, cin=3, classes=2, decoder_channels=32,
          rates=[1, 2, 3], separable=True, upsampling=4, activation=None,
          aux=dict(classes=3, pooling="avg", activation="sigmoid")), [1, 3, 32, 32]),
    ("smp_pspnet_resnet18_aux", "smp_pspnet",
     dict(encoder="resnet18", depth=3, cin=3, classes=2, psp_out=32, use_norm=True, upsampling=8,
          activation=None, aux=dict(classes=2, pooling="avg", activation="logsoftmax")),
     [2, 3, 32, 40]),
    ("efficientnet_b0_features", "effnet", dict(variant=0), [2, 3, 45, 61]),
    ("smp_unet_efficientnet_b0_odd_size", "smp_unet",
     dict(encoder="efficientnet-b0", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_efficientnet_b1_os16", "smp_deeplabv3plus",
     dict(encoder="efficientnet-b1", depth=5, output_stride=16, cin=1, classes=3, decoder_channels=32,
          rates=[2, 4, 6], separable=True, upsampling=4, activation=None), [1, 1, 64, 48]),
    ("smp_deeplabv3_efficientnet_b2_depth4_os8", "smp_deeplabv3",
     dict(encoder="efficientnet-b2", depth=4, output_stride=8, cin=3, classes=2, decoder_channels=32,
          rates=[1, 2, 3], separable=False, upsampling=None, activation="sigmoid"), [1, 3, 40, 56]),
    ("smp_fpn_efficientnet_b3_depth4", "smp_fpn",
     dict(encoder="efficientnet-b3", depth=4, cin=3, classes=2, pyramid=32, segmentation=32, merge="add",
          interpolation="nearest", upsampling=4, activation=None), [1, 3, 32, 48]),
    ("smp_pspnet_efficientnet_b0_depth2", "smp_pspnet",
     dict(encoder="efficientnet-b0", depth=2, cin=2, classes=2, psp_out=16, use_norm=True, upsampling=4,
          activation=None), [2, 2, 32, 32]),
    ("efficientnet_b0_torchvision", "tv_effnet", dict(name="efficientnet_b0"), [2, 3, 45, 61]),
    ("efficientnet_b5_torchvision", "tv_effnet", dict(name="efficientnet_b5"), [1, 3, 33, 40]),
    ("efficientnet_v2_s_torchvision", "tv_effnet", dict(name="efficientnet_v2_s"), [2, 3, 40, 52]),
    ("smp_upernet_resnet34", "smp_upernet",
     dict(encoder="resnet34", depth=5, cin=3, classes=3, decoder_channels=64, use_norm=True,
          upsampling=4, activation=None), [2, 3, 64, 96]),
    ("smp_upernet_mobilenet_v2_depth3_no_norm", "smp_upernet",
     dict(encoder="mobilenet_v2", depth=3, cin=1, classes=2, decoder_channels=16, use_norm=False,
          upsampling=2, activation="sigmoid"), [1, 1, 40, 24]),
    ("smp_upernet_efficientnet_b0_depth4_aux", "smp_upernet",
     dict(encoder="efficientnet-b0", depth=4, cin=3, classes=4, decoder_channels=32, use_norm=True,
          upsampling=4, activation="softmax2d",
          aux=dict(classes=3, pooling="max", activation=None)), [2, 3, 48, 64]),
    ("smp_unet_vgg16_bn", "smp_unet",
     dict(encoder="vgg16_bn", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 96]),
    ("smp_fpn_vgg11_depth4", "smp_fpn",
     dict(encoder="vgg11", depth=4, cin=1, classes=3, pyramid=32, segmentation=32, merge="cat",
          interpolation="nearest", upsampling=4, activation="sigmoid"), [1, 1, 48, 32]),
    ("smp_pspnet_vgg13_bn_depth3_aux", "smp_pspnet",
     dict(encoder="vgg13_bn", depth=3, cin=2, classes=2, psp_out=16, use_norm=True, upsampling=8,
          activation=None, aux=dict(classes=2, pooling="avg", activation=None)), [2, 2, 32, 40]),
    ("vgg19_features", "vgg", dict(name="vgg19"), [1, 3, 40, 56]),
    # Shallow, so that the synthetic weights leave the deep path (the center block) a
    # visible part of the output: through VGG16's 13 plain layers it fades to 1e-6.
    ("smp_unet_vgg11_depth3_no_norm", "smp_unet",
     dict(encoder="vgg11", depth=3, cin=3, classes=2, decoder_channels=[32, 16, 8],
          use_norm=False, interpolation="bilinear", activation=None), [2, 3, 24, 40]),
    ("convnext_tiny_features", "convnext", dict(name="convnext_tiny"), [2, 3, 64, 96]),
    ("convnext_tiny_odd_size", "convnext", dict(name="convnext_tiny"), [1, 3, 45, 70]),
    ("densenet121_features", "densenet", dict(name="densenet121"), [1, 3, 45, 61]),
    ("smp_unet_densenet121", "smp_unet",
     dict(encoder="densenet121", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 64]),
    ("smp_linknet_densenet169_depth3_no_norm", "smp_linknet",
     dict(encoder="densenet169", depth=3, cin=1, classes=3, use_norm=False, activation="sigmoid"),
     [1, 1, 32, 40]),
    ("smp_segformer_resnet34", "smp_segformer",
     dict(encoder="resnet34", depth=5, cin=3, classes=3, segmentation=32, upsampling=4,
          activation=None), [2, 3, 64, 96]),
    ("smp_segformer_mobilenet_v2_depth3_aux", "smp_segformer",
     dict(encoder="mobilenet_v2", depth=3, cin=1, classes=2, segmentation=16, upsampling=2,
          activation="sigmoid", aux=dict(classes=3, pooling="avg", activation=None)),
     [1, 1, 40, 24]),
    ("smp_segformer_vgg11_depth4", "smp_segformer",
     dict(encoder="vgg11", depth=4, cin=3, classes=2, segmentation=16, upsampling=4,
          activation="softmax2d"), [1, 3, 48, 32]),
    # The smallest input its default output stride 16 takes (the pyramid pools 8 x 8 three
    # times); one input channel and the head at stride 4 keep the file small.
    ("smp_pan_resnet34", "smp_pan",
     dict(encoder="resnet34", depth=5, output_stride=16, cin=1, classes=3, decoder_channels=16,
          interpolation="bilinear", upsampling=1, activation=None), [2, 1, 128, 144]),
    ("smp_pan_mobilenet_v2_os32_depth4_nearest", "smp_pan",
     dict(encoder="mobilenet_v2", depth=4, output_stride=32, cin=2, classes=2,
          decoder_channels=8, interpolation="nearest", upsampling=2, activation="sigmoid",
          aux=dict(classes=2, pooling="max", activation=None)), [1, 2, 160, 128]),
    ("smp_pan_efficientnet_b0_depth3", "smp_pan",
     dict(encoder="efficientnet-b0", depth=3, output_stride=16, cin=3, classes=4,
          decoder_channels=32, interpolation="bicubic", upsampling=4, activation="logsoftmax"),
     [2, 3, 64, 72]),
    # 52 x 70: the stem's 26 x 35 pools with ceil_mode to 13 x 17 (floor would give 12).
    ("smp_unet_se_resnext50_32x4d", "smp_unet",
     dict(encoder="se_resnext50_32x4d", depth=5, cin=3, classes=2,
          decoder_channels=[64, 32, 24, 16, 8], use_norm=True, interpolation="nearest",
          activation=None), [1, 3, 52, 70]),
    ("smp_deeplabv3_se_resnet50_os16", "smp_deeplabv3",
     dict(encoder="se_resnet50", depth=5, output_stride=16, cin=3, classes=3,
          decoder_channels=32, rates=[2, 4, 6], separable=False, upsampling=None,
          activation=None), [1, 3, 48, 64]),
    ("smp_pspnet_senet154_depth3_aux", "smp_pspnet",
     dict(encoder="senet154", depth=3, cin=3, classes=2, psp_out=16, use_norm=True, upsampling=8,
          activation=None, aux=dict(classes=2, pooling="avg", activation=None)), [2, 3, 40, 48]),
    ("se_resnet50_features", "senet", dict(name="se_resnet50"), [1, 3, 45, 58]),
    ("smp_unet_timm_efficientnet_b0", "smp_unet",
     dict(encoder="timm-efficientnet-b0", depth=5, cin=3, classes=2,
          decoder_channels=[64, 32, 24, 16, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_fpn_timm_tf_efficientnet_lite2_depth4", "smp_fpn",
     dict(encoder="timm-tf_efficientnet_lite2", depth=4, cin=3, classes=2, pyramid=32,
          segmentation=32, merge="add", interpolation="nearest", upsampling=4,
          activation="sigmoid"), [1, 3, 64, 96]),
    ("smp_deeplabv3plus_timm_efficientnet_b3_os8", "smp_deeplabv3plus",
     dict(encoder="timm-efficientnet-b3", depth=5, output_stride=8, cin=2, classes=3,
          decoder_channels=16, rates=[3, 6, 9], separable=True, upsampling=4, activation=None),
     [1, 2, 48, 64]),
    ("smp_linknet_timm_efficientnet_b2_depth3", "smp_linknet",
     dict(encoder="timm-efficientnet-b2", depth=3, cin=1, classes=2, use_norm=True,
          activation="softmax2d"), [2, 1, 32, 40]),
    ("smp_unet_mobileone_s0", "smp_unet",
     dict(encoder="mobileone_s0", depth=5, cin=3, classes=2,
          decoder_channels=[64, 32, 24, 16, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_mobileone_s4_os16", "smp_deeplabv3",
     dict(encoder="mobileone_s4", depth=5, output_stride=16, cin=3, classes=3,
          decoder_channels=16, rates=[2, 4, 6], separable=False, upsampling=None,
          activation=None), [1, 3, 48, 64]),
    ("smp_fpn_mobileone_s1_depth4_one_channel", "smp_fpn",
     dict(encoder="mobileone_s1", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="cat", interpolation="bilinear", upsampling=4, activation="sigmoid"),
     [1, 1, 64, 64]),
    # The state dict re-parameterised by MobileOne's reparameterize_model (reparam_conv),
    # stored in the file; the output is the trained (multi-branch) model's.
    ("smp_linknet_mobileone_s0_depth2_reparam", "smp_linknet",
     dict(encoder="mobileone_s0", depth=2, cin=3, classes=2, use_norm=True, activation=None,
          reparam=True), [1, 3, 32, 40]),
    ("smp_unet_xception", "smp_unet",
     dict(encoder="xception", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 3, 45, 61]),
    ("smp_fpn_xception_depth4_one_channel", "smp_fpn",
     dict(encoder="xception", depth=4, cin=1, classes=3, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation="softmax2d"),
     [2, 1, 48, 64]),
    ("shufflenet_v2_x1_0_features", "shufflenet", dict(name="shufflenet_v2_x1_0"), [2, 3, 45, 61]),
    ("shufflenet_v2_x0_5_features", "shufflenet", dict(name="shufflenet_v2_x0_5"), [1, 3, 64, 33]),
    ("regnet_y_400mf_features", "regnet", dict(name="regnet_y_400mf"), [2, 3, 45, 61]),
    ("regnet_x_800mf_features", "regnet", dict(name="regnet_x_800mf"), [1, 3, 40, 33]),
    # Stage 1's group width (80) differs from the others' (120).
    ("regnet_x_8gf_features", "regnet", dict(name="regnet_x_8gf"), [1, 3, 33, 35]),
    ("mnasnet1_0_features", "mnasnet", dict(name="mnasnet1_0"), [2, 3, 45, 61]),
    ("mnasnet0_75_features", "mnasnet", dict(name="mnasnet0_75"), [1, 3, 40, 33]),
    # SegFormer's Mix Transformer encoders: attention over the pixels, its empty stride-2
    # feature (dropped by Segformer, a size only for Unet's last skip), and smp's dilation
    # of the stride-16 / 32 stages (the 2x2 spatial reduction then dilated and padded).
    ("smp_segformer_mit_b0", "smp_segformer",
     dict(encoder="mit_b0", depth=5, cin=3, classes=2, segmentation=32, upsampling=4,
          activation=None), [2, 3, 64, 96]),
    ("smp_unet_mit_b0_odd_size", "smp_unet",
     dict(encoder="mit_b0", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 3, 70, 90]),
    ("smp_deeplabv3_mit_b0_os8", "smp_deeplabv3",
     dict(encoder="mit_b0", depth=5, output_stride=8, cin=3, classes=3, decoder_channels=16,
          rates=[2, 4, 6], separable=False, upsampling=None, activation=None), [1, 3, 64, 64]),
    ("smp_fpn_mit_b1", "smp_fpn",
     dict(encoder="mit_b1", depth=5, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [1, 1, 64, 64]),
    # smp's MAnet: the position attention block (one softmax over every pair of the
    # deepest feature's pixels, the token-major product read back as a map) and the
    # multi-scale fusion attention blocks.
    ("smp_manet_resnet34", "smp_manet",
     dict(encoder="resnet34", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          pab=16, use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 96]),
    ("smp_manet_mobilenet_v2_depth4_bilinear_aux", "smp_manet",
     dict(encoder="mobilenet_v2", depth=4, cin=1, classes=3, decoder_channels=[32, 24, 16, 8],
          pab=8, use_norm=False, interpolation="bilinear", activation="sigmoid",
          aux=dict(classes=2, pooling="max", activation=None)), [1, 1, 48, 80]),
    ("smp_manet_mit_b0", "smp_manet",
     dict(encoder="mit_b0", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          pab=16, use_norm=True, interpolation="nearest", activation=None), [1, 3, 64, 64]),
    # The position attention reaches the output measurably only through a short decoder
    # (made-up weights damp a deep path ~20x a block): depth 1, 8 x 12 tokens, batch 2.
    ("smp_manet_resnet18_depth1", "smp_manet",
     dict(encoder="resnet18", depth=1, cin=3, classes=2, decoder_channels=[16], pab=32,
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 16, 24]),
    # timm's Selective Kernel ResNets (smp's timm-sk* encoders): two 3x3 paths on the
    # halves of the input channels (the second dilated 2), weighed per channel by a
    # softmax across the paths; smp's dilation sets every convolution of a patched stage
    # to one dilation, both paths alike.
    ("sknet_timm_skresnet18_features", "sknet", dict(name="timm-skresnet18"), [2, 3, 45, 61]),
    ("smp_unet_timm_skresnet34", "smp_unet",
     dict(encoder="timm-skresnet34", depth=5, cin=3, classes=2,
          decoder_channels=[64, 32, 24, 16, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 52, 70]),
    ("smp_deeplabv3plus_timm_skresnet18_os8", "smp_deeplabv3plus",
     dict(encoder="timm-skresnet18", depth=5, output_stride=8, cin=1, classes=3,
          decoder_channels=16, rates=[2, 4, 6], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 64]),
    ("smp_fpn_timm_skresnext50_32x4d_depth4", "smp_fpn",
     dict(encoder="timm-skresnext50_32x4d", depth=4, cin=3, classes=2, pyramid=32,
          segmentation=32, merge="cat", interpolation="nearest", upsampling=4, activation=None),
     [1, 3, 48, 64]),
    # The attention measurably in the output: a short decoder on layer1's SK blocks.
    ("smp_unet_timm_skresnext50_32x4d_depth2", "smp_unet",
     dict(encoder="timm-skresnext50_32x4d", depth=2, cin=2, classes=2,
          decoder_channels=[16, 8], use_norm=False, interpolation="nearest",
          activation=None), [2, 2, 20, 28]),
    # smp's Unet at any depth its encoder gives (1 and 2 as well), UnetPlusPlus from 2.
    ("smp_unet_resnet18_depth1", "smp_unet",
     dict(encoder="resnet18", depth=1, cin=3, classes=2, decoder_channels=[8], use_norm=True,
          interpolation="nearest", activation=None), [2, 3, 21, 30]),
    ("smp_unetplusplus_mobilenet_v2_depth2", "smp_unetplusplus",
     dict(encoder="mobilenet_v2", depth=2, cin=3, classes=3, decoder_channels=[16, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 3, 24, 32]),
    ("smp_unet_mit_b0_depth2", "smp_unet",
     dict(encoder="mit_b0", depth=2, cin=3, classes=2, decoder_channels=[16, 8], use_norm=False,
          interpolation="bilinear", activation=None), [1, 3, 36, 44]),
    # Cadene's Dual Path Networks (smp's dpn* encoders): a residual path summed and a dense
    # path concatenated through pre-activation blocks; smp's features relu(cat(paths)).
    ("dpn_dpn68_features", "dpn", dict(name="dpn68"), [2, 3, 45, 61]),
    ("smp_unet_dpn68b", "smp_unet",
     dict(encoder="dpn68b", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 3, 52, 70]),
    ("smp_deeplabv3_dpn92_os16", "smp_deeplabv3",
     dict(encoder="dpn92", depth=5, output_stride=16, cin=3, classes=3, decoder_channels=32,
          rates=[2, 4, 6], separable=False, upsampling=None, activation=None), [1, 3, 48, 64]),
    ("smp_fpn_dpn98_depth4", "smp_fpn",
     dict(encoder="dpn98", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [1, 1, 48, 64]),
    ("smp_linknet_dpn131_depth3", "smp_linknet",
     dict(encoder="dpn131", depth=3, cin=3, classes=2, use_norm=True, activation=None),
     [2, 3, 32, 48]),
    ("smp_deeplabv3plus_dpn107_os8", "smp_deeplabv3plus",
     dict(encoder="dpn107", depth=5, output_stride=8, cin=3, classes=2, decoder_channels=16,
          rates=[2, 4, 6], separable=True, upsampling=4, activation=None), [1, 3, 32, 32]),
    # The dual paths measurably in the output: a short decoder on the first stage.
    ("smp_unet_dpn68_depth2", "smp_unet",
     dict(encoder="dpn68", depth=2, cin=3, classes=2, decoder_channels=[16, 8], use_norm=False,
          interpolation="nearest", activation=None), [2, 3, 20, 28]),
    # Cadene's Inception-v4 as smp builds it: branches of 1x1, 1x7 / 7x1, 1x3 / 3x1 and
    # 3x3 convolutions, max and average pools (not counting their padding), concatenated.
    ("inceptionv4_features", "inceptionv4", dict(), [2, 3, 45, 61]),
    ("smp_unet_inceptionv4", "smp_unet",
     dict(encoder="inceptionv4", depth=5, cin=3, classes=2, decoder_channels=[64, 32, 24, 16, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 3, 52, 70]),
    ("smp_fpn_inceptionv4_depth4_one_channel", "smp_fpn",
     dict(encoder="inceptionv4", depth=4, cin=1, classes=3, pyramid=32, segmentation=32,
          merge="cat", interpolation="nearest", upsampling=4, activation=None), [2, 1, 48, 64]),
    ("smp_unet_inceptionv4_depth3", "smp_unet",
     dict(encoder="inceptionv4", depth=3, cin=3, classes=2, decoder_channels=[16, 8, 8],
          use_norm=False, interpolation="nearest", activation=None), [2, 3, 21, 30]),
    # Cadene's Inception-ResNet-v2 as smp builds it: residual blocks whose 1x1 projection
    # is scaled (0.17, 0.10, 0.20) before the sum and ReLU, the last block without ReLU.
    ("inceptionresnetv2_features", "inceptionresnetv2", dict(), [2, 3, 45, 61]),
    ("smp_unet_inceptionresnetv2", "smp_unet",
     dict(encoder="inceptionresnetv2", depth=5, cin=3, classes=2,
          decoder_channels=[64, 32, 24, 16, 8], use_norm=True, interpolation="nearest",
          activation=None), [1, 3, 52, 70]),
    ("smp_pspnet_inceptionresnetv2_depth3_one_channel", "smp_pspnet",
     dict(encoder="inceptionresnetv2", depth=3, cin=1, classes=2, psp_out=16, use_norm=True,
          upsampling=8, activation=None), [2, 1, 40, 48]),
    # smp's DPT on timm Vision Transformers made small through timm's own arguments
    # (`vit`, passed on as smp passes its kwargs; not `depth`, which smp's encoder takes
    # for its own): the class-token readouts, layer scales
    # and a position embedding without the class token (DeiT III), register tokens,
    # patches of 8 and 32 (transposed, identity and strided reassembly), no class token
    # with pre-norm and no qkv bias, explicit (negative, unsorted) output indices.
    ("smp_dpt_vit_tiny_cat", "smp_dpt",
     dict(encoder="tu-vit_tiny_patch16_224",
          vit=dict(img_size=64, embed_dim=48, num_heads=3), depth=4, indices=None,
          readout="cat", mid=[16, 24, 32, 32], fusion=16, cin=3, classes=2,
          activation=None), [2, 3, 64, 64]),
    ("smp_dpt_deit3_add_depth3_aux", "smp_dpt",
     dict(encoder="tu-deit3_small_patch16_224",
          vit=dict(img_size=[48, 80], embed_dim=32, num_heads=4, mlp_ratio=2.0),
          depth=3, indices=[-1, 0, 2], readout="add", mid=[8, 16, 16], fusion=8, cin=1,
          classes=3, activation="sigmoid", aux=dict(classes=4, pooling="max")), [2, 1, 48, 80]),
    ("smp_dpt_vit_patch8_reg_tokens_add", "smp_dpt",
     dict(encoder="tu-vit_small_patch8_224",
          vit=dict(img_size=64, embed_dim=24, num_heads=2, reg_tokens=2), depth=4,
          indices=None, readout="add", mid=[8, 8, 16, 16], fusion=8, cin=3, classes=1,
          activation=None), [1, 3, 64, 64]),
    ("smp_dpt_vit_patch32_no_class_token", "smp_dpt",
     dict(encoder="tu-vit_base_patch32_224",
          vit=dict(img_size=64, embed_dim=32, num_heads=2, class_token=False,
                   global_pool="avg", pre_norm=True, qkv_bias=False),
          depth=4, indices=[0, 1, 2, -1], readout="cat", mid=[8, 8, 8, 8], fusion=8, cin=3,
          classes=2, activation=None), [2, 3, 64, 64]),
    ("smp_dpt_vit_tiny_ignore", "smp_dpt",
     dict(encoder="tu-vit_tiny_patch16_224",
          vit=dict(img_size=32, embed_dim=24, num_heads=1), depth=2, indices=None,
          readout="ignore", mid=[8, 8], fusion=8, cin=3, classes=2, activation=None),
     [1, 3, 32, 32]),
    # timm's dynamic_img_size: the position embedding resampled (bicubic, antialiased) to
    # the input's grid, shrunk along one axis and grown along the other, and grown with
    # register tokens and DeiT III's embedding without the class token.
    ("smp_dpt_vit_tiny_dynamic_img_size", "smp_dpt",
     dict(encoder="tu-vit_tiny_patch16_224",
          vit=dict(img_size=64, embed_dim=24, num_heads=2, dynamic_img_size=True), depth=4,
          indices=None, readout="cat", mid=[8, 8, 8, 8], fusion=8, cin=3, classes=2,
          activation=None), [2, 3, 32, 96]),
    ("smp_dpt_deit3_dynamic_img_size_reg_tokens", "smp_dpt",
     dict(encoder="tu-deit3_small_patch16_224",
          vit=dict(img_size=32, embed_dim=16, num_heads=2, reg_tokens=1, dynamic_img_size=True),
          depth=3, indices=None, readout="add", mid=[8, 8, 8], fusion=8, cin=3, classes=1,
          activation=None), [1, 3, 64, 96]),
    # smp's timm (`tu-`) ResNets: timm's ResNet under `encoder.model`, dilated by timm's
    # rule (a dilated stage's first block keeps the previous dilation in its first 3x3:
    # smp's own ResNets dilate it too), basic and bottleneck blocks, ResNeXt groups.
    ("smp_unet_tu_resnet34", "smp_unet",
     dict(encoder="tu-resnet34", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 96]),
    ("smp_deeplabv3_tu_resnet18_os8", "smp_deeplabv3",
     dict(encoder="tu-resnet18", depth=5, output_stride=8, cin=3, classes=3, decoder_channels=32,
          rates=[2, 4, 6], separable=False, upsampling=None, activation=None), [2, 3, 48, 64]),
    ("smp_deeplabv3plus_tu_resnext50_32x4d_os16", "smp_deeplabv3plus",
     dict(encoder="tu-resnext50_32x4d.a1h_in1k", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=32, rates=[3, 5, 7], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 48]),
    ("smp_pspnet_tu_resnet26_depth3", "smp_pspnet",
     dict(encoder="tu-resnet26", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [2, 3, 40, 56]),
    # timm's own EfficientNets through smp's `tu-` encoders: the stride-2 feature is the
    # first stage's output (not the stem's, as smp's timm- encoders take it), dilated by
    # timm's rule; SiLU with squeeze-and-excitation, and Lite's ReLU6.
    ("smp_unet_tu_efficientnet_b0", "smp_unet",
     dict(encoder="tu-efficientnet_b0", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 96]),
    ("smp_deeplabv3_tu_efficientnet_lite0_os8", "smp_deeplabv3",
     dict(encoder="tu-efficientnet_lite0", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[1, 2, 3], separable=False, upsampling=None,
          activation=None), [1, 3, 48, 64]),
    ("smp_unet_tu_efficientnet_b2_depth1", "smp_unet",
     dict(encoder="tu-efficientnet_b2.ra_in1k", depth=1, cin=2, classes=3, decoder_channels=[8],
          use_norm=False, interpolation="nearest", activation="sigmoid"), [2, 2, 30, 42]),
    # timm's own MobileNetV3s through smp's `tu-` encoders: hardswish and `nre` ReLU blocks,
    # SE with a hard sigmoid gate on the expanded width, the last stage's 1x1 convolution
    # in the features; the small model's stride-2 feature is the stem's. Odd sizes (Unet
    # takes any), timm's dilation rule, a channel multiplier that fixes the stem.
    ("smp_unet_tu_mobilenetv3_large_100", "smp_unet",
     dict(encoder="tu-mobilenetv3_large_100", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 64, 96]),
    ("smp_unet_tu_mobilenetv3_small_050_odd", "smp_unet",
     dict(encoder="tu-mobilenetv3_small_050", depth=5, cin=1, classes=3,
          decoder_channels=[16, 16, 8, 8, 8], use_norm=True, interpolation="bilinear",
          activation="sigmoid"), [1, 1, 45, 61]),
    ("smp_deeplabv3plus_tu_mobilenetv3_small_075_os8", "smp_deeplabv3plus",
     dict(encoder="tu-mobilenetv3_small_075.lamb_in1k", depth=5, output_stride=8, cin=3, classes=3,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [2, 3, 48, 64]),
    ("smp_fpn_tu_mobilenetv3_large_075_depth4", "smp_fpn",
     dict(encoder="tu-mobilenetv3_large_075", depth=4, cin=3, classes=2, pyramid=32,
          segmentation=32, merge="add", interpolation="nearest", upsampling=4, activation=None),
     [1, 3, 48, 80]),
    # The TensorFlow-padded ones (timm's `Conv2dSame` on strided windows: the padding
    # follows each axis's parity, odd maps at every level here), the minimal models, and
    # smp's deprecated `timm-mobilenetv3_*` names, which smp runs as them.
    ("smp_unet_tu_tf_mobilenetv3_small_minimal_100_odd", "smp_unet",
     dict(encoder="tu-tf_mobilenetv3_small_minimal_100", depth=5, cin=3, classes=2,
          decoder_channels=[16, 16, 8, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 37, 53]),
    ("smp_unet_tu_tf_mobilenetv3_large_075", "smp_unet",
     dict(encoder="tu-tf_mobilenetv3_large_075", depth=4, cin=2, classes=1,
          decoder_channels=[16, 16, 8, 8], use_norm=False, interpolation="bilinear",
          activation="sigmoid"), [1, 2, 50, 66]),
    ("smp_deeplabv3_timm_mobilenetv3_large_100_os16", "smp_deeplabv3",
     dict(encoder="timm-mobilenetv3_large_100", depth=5, output_stride=16, cin=3, classes=3,
          decoder_channels=32, rates=[2, 4, 6], separable=False, upsampling=None,
          activation=None), [1, 3, 64, 64]),
    # timm's RegNets through smp's `tu-` encoders and smp's deprecated `timm-regnet*`
    # names: torchvision's blocks under timm's names and widths, timm's dilation rule (a
    # dilated stage's first block at the previous stage's dilation while it is 1 or 2).
    ("smp_unet_tu_regnety_002", "smp_unet",
     dict(encoder="tu-regnety_002", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_regnetx_004_os8", "smp_deeplabv3",
     dict(encoder="tu-regnetx_004.pycls_in1k", depth=5, output_stride=8, cin=3, classes=3,
          decoder_channels=32, rates=[2, 4, 6], separable=False, upsampling=None,
          activation=None), [1, 3, 48, 64]),
    ("smp_deeplabv3plus_timm_regnety_006_os16", "smp_deeplabv3plus",
     dict(encoder="timm-regnety_006", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [2, 1, 48, 48]),
    ("smp_fpn_tu_regnetx_002_depth3", "smp_fpn",
     dict(encoder="tu-regnetx_002", depth=3, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="cat", interpolation="bilinear", upsampling=2, activation="sigmoid"),
     [1, 3, 40, 56]),
    # timm's MobileNetV2 through smp's `tu-` encoders (ReLU6, its stem scaled too).
    ("smp_unet_tu_mobilenetv2_100_odd", "smp_unet",
     dict(encoder="tu-mobilenetv2_100", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_mobilenetv2_035_os8", "smp_deeplabv3plus",
     dict(encoder="tu-mobilenetv2_035", depth=5, output_stride=8, cin=3, classes=3,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=4, activation=None),
     [1, 3, 48, 64]),
    # timm's ResNet stems through smp's `tu-` encoders: the deep (`c`, `d`, `s`) and
    # tiered (`t`) stems, and `avg_down` projections: a ceil-mode average pool at odd
    # sizes, and timm's `AvgPool2dSame` in the stages a smaller output stride dilates.
    ("smp_unet_tu_resnet18d_odd", "smp_unet",
     dict(encoder="tu-resnet18d", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_resnet10t_os8", "smp_deeplabv3",
     dict(encoder="tu-resnet10t", depth=5, output_stride=8, cin=3, classes=3,
          decoder_channels=32, rates=[2, 4, 6], separable=False, upsampling=None,
          activation=None), [2, 3, 40, 56]),
    ("smp_deeplabv3plus_tu_resnet26t_os16", "smp_deeplabv3plus",
     dict(encoder="tu-resnet26t", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 80]),
    ("smp_deeplabv3_tu_resnet50d_os8", "smp_deeplabv3",
     dict(encoder="tu-resnet50d", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [1, 3, 40, 48]),
    ("smp_fpn_tu_resnet50s_depth4", "smp_fpn",
     dict(encoder="tu-resnet50s", depth=4, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None),
     [1, 3, 48, 64]),
    # timm's squeeze-and-excitation ResNets (`attn_layer='se'`, a sixteenth of the
    # block's width rounded to 8), basic and grouped bottleneck blocks.
    ("smp_unet_tu_seresnet18_odd", "smp_unet",
     dict(encoder="tu-seresnet18", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_seresnext26d_32x4d_os8", "smp_deeplabv3plus",
     dict(encoder="tu-seresnext26d_32x4d", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=4, activation=None),
     [1, 3, 48, 64]),
    ("smp_fpn_tu_seresnet50_depth4", "smp_fpn",
     dict(encoder="tu-seresnet50", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None),
     [2, 1, 48, 64]),
    # timm's efficient-channel-attention ResNets (`attn_layer='eca'`: a 1-D convolution
    # across the pooled channels, its kernel from the block's width) and anti-aliased
    # ResNets (`aa_layer=nn.AvgPool2d`: the stem's pool and each strided 3x3 convolution's
    # stride a 2x2 average pool; none in the stages a smaller output stride dilates).
    ("smp_unet_tu_ecaresnet26t_odd", "smp_unet",
     dict(encoder="tu-ecaresnet26t", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_ecaresnetlight_os8", "smp_deeplabv3",
     dict(encoder="tu-ecaresnetlight", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 40, 48]),
    ("smp_linknet_tu_ecaresnet50d", "smp_linknet",
     dict(encoder="tu-ecaresnet50d", depth=5, cin=1, classes=3, use_norm=True, activation=None),
     [1, 1, 64, 64]),
    ("smp_unet_tu_resnetaa34d", "smp_unet",
     dict(encoder="tu-resnetaa34d", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 64, 96]),
    ("smp_deeplabv3plus_tu_seresnetaa50d_os16", "smp_deeplabv3plus",
     dict(encoder="tu-seresnetaa50d", depth=5, output_stride=16, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 3, 64, 64]),
    ("smp_pspnet_tu_resnetaa50_depth4", "smp_pspnet",
     dict(encoder="tu-resnetaa50", depth=4, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=16, activation=None), [2, 3, 64, 48]),
    # timm's Res2Nets (`Bottle2neck`: hierarchical 3x3 splits, the last split pooled in
    # blocks that stride or project), by their `tu-` names and smp's deprecated `timm-`
    # ones, dilated by timm's rule.
    ("smp_unet_timm_res2net50_26w_4s_odd", "smp_unet",
     dict(encoder="timm-res2net50_26w_4s", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_res2net50_14w_8s_os8", "smp_deeplabv3",
     dict(encoder="tu-res2net50_14w_8s", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [1, 3, 40, 48]),
    ("smp_fpn_timm_res2next50_depth4", "smp_fpn",
     dict(encoder="timm-res2next50", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None),
     [2, 1, 48, 64]),
    ("smp_pspnet_tu_res2net50d_depth3", "smp_pspnet",
     dict(encoder="tu-res2net50d", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 40, 56]),
    ("smp_deeplabv3plus_timm_res2net50_48w_2s_os16", "smp_deeplabv3plus",
     dict(encoder="timm-res2net50_48w_2s", depth=5, output_stride=16, cin=2, classes=3,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 2, 48, 64]),
    # timm's ResNeSts (split attention of radix 2, the strided blocks averaging after it),
    # by smp's deprecated `timm-` names and their `tu-` ones, dilated by timm's rule.
    ("smp_unet_timm_resnest14d_odd", "smp_unet",
     dict(encoder="timm-resnest14d", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_resnest26d_os8", "smp_deeplabv3",
     dict(encoder="tu-resnest26d", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [1, 3, 40, 48]),
    ("smp_fpn_timm_resnest50d_depth4", "smp_fpn",
     dict(encoder="timm-resnest50d", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None),
     [2, 1, 48, 64]),
    ("smp_pspnet_timm_resnest101e_depth3", "smp_pspnet",
     dict(encoder="timm-resnest101e", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 40, 56]),
    # timm's ResNeSts of radix 4 in 2 groups and radix 1 (a sigmoid) in 4 groups, the
    # strided blocks averaging before the split attention (`avd_first`).
    ("smp_unet_timm_resnest50d_4s2x40d_odd", "smp_unet",
     dict(encoder="timm-resnest50d_4s2x40d", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_resnest50d_1s4x24d_os8", "smp_deeplabv3",
     dict(encoder="tu-resnest50d_1s4x24d", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [1, 3, 40, 48]),
    ("smp_pspnet_timm_resnest50d_1s4x24d_depth3", "smp_pspnet",
     dict(encoder="timm-resnest50d_1s4x24d", depth=3, cin=1, classes=2, psp_out=32,
          use_norm=True, upsampling=8, activation=None), [2, 1, 40, 56]),
    ("smp_deeplabv3plus_tu_resnest50d_4s2x40d_os16", "smp_deeplabv3plus",
     dict(encoder="tu-resnest50d_4s2x40d", depth=5, output_stride=16, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 3, 48, 64]),
    # timm's blur-pooled ResNets (`BlurPool2d`: reflect padding, the binomial filter; the
    # stem's max pool at stride 1 then a blur; a blur at stride 1 in the first block of a
    # dilated stage).
    ("smp_unet_tu_resnetblur18_odd", "smp_unet",
     dict(encoder="tu-resnetblur18", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_resnetblur50_os8", "smp_deeplabv3",
     dict(encoder="tu-resnetblur50", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 40, 48]),
    ("smp_deeplabv3plus_tu_resnetblur50d_os16", "smp_deeplabv3plus",
     dict(encoder="tu-resnetblur50d", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 64]),
    ("smp_pspnet_tu_resnetblur18_depth3", "smp_pspnet",
     dict(encoder="tu-resnetblur18", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 40, 56]),
    # timm's GENets (ByobNet) by smp's deprecated `timm-gernet_*` names and their `tu-`
    # ones: basic and bottleneck stages, depthwise last stages, `final_conv` as the last
    # feature, dilated by ByobNet's rule (a stage's first block at dilation 1 or 2).
    ("smp_unet_timm_gernet_s_odd", "smp_unet",
     dict(encoder="timm-gernet_s", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_gernet_s_os8", "smp_deeplabv3",
     dict(encoder="tu-gernet_s", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 40, 48]),
    ("smp_deeplabv3plus_tu_gernet_m_os16", "smp_deeplabv3plus",
     dict(encoder="tu-gernet_m", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 64]),
    ("smp_fpn_timm_gernet_l_depth4", "smp_fpn",
     dict(encoder="timm-gernet_l", depth=4, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None),
     [2, 3, 48, 64]),
    ("smp_pspnet_tu_gernet_s_depth3", "smp_pspnet",
     dict(encoder="tu-gernet_s", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 40, 56]),
    # timm's ConvNeXts through smp's `tu-` encoders: transformer-style (an empty stride-2
    # feature), `conv_mlp` in the small ones, dilated by timm's rule (the downsampling
    # convolution at stride 1 with timm's `'same'` padding, asymmetric at dilation 1).
    ("smp_unet_tu_convnext_atto_odd", "smp_unet",
     dict(encoder="tu-convnext_atto", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_convnext_tiny_os8", "smp_deeplabv3plus",
     dict(encoder="tu-convnext_tiny.fb_in1k", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 3, 48, 64]),
    ("smp_deeplabv3_tu_convnext_femto_os16", "smp_deeplabv3",
     dict(encoder="tu-convnext_femto", depth=5, output_stride=16, cin=1, classes=3,
          decoder_channels=16, rates=[2, 4, 6], separable=False, upsampling=None,
          activation=None), [2, 1, 48, 80]),
    ("smp_fpn_tu_convnext_pico", "smp_fpn",
     dict(encoder="tu-convnext_pico", depth=5, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="cat", interpolation="bilinear", upsampling=4, activation="sigmoid"),
     [1, 3, 64, 96]),
    ("smp_upernet_tu_convnext_nano_depth3", "smp_upernet",
     dict(encoder="tu-convnext_nano", depth=3, cin=2, classes=2, decoder_channels=16, use_norm=True,
          upsampling=4, activation=None), [1, 2, 64, 64]),
    ("smp_segformer_tu_convnext_atto", "smp_segformer",
     dict(encoder="tu-convnext_atto", depth=5, cin=3, classes=2, segmentation=32, upsampling=4,
          activation=None), [2, 3, 64, 96]),
    ("smp_unet_tu_convnext_atto_depth2", "smp_unet",
     dict(encoder="tu-convnext_atto", depth=2, cin=3, classes=2, decoder_channels=[16, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 3, 40, 56]),
    # timm's ConvNeXt V2s: a global response norm between each block's GELU and its
    # second linear layer, no layer scale (`conv_mlp` in the small ones).
    ("smp_unet_tu_convnextv2_atto_odd", "smp_unet",
     dict(encoder="tu-convnextv2_atto", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_convnextv2_tiny_os8", "smp_deeplabv3plus",
     dict(encoder="tu-convnextv2_tiny.fcmae_ft_in1k", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [2, 3, 48, 64]),
    ("smp_fpn_tu_convnextv2_femto", "smp_fpn",
     dict(encoder="tu-convnextv2_femto", depth=5, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None),
     [1, 1, 64, 96]),
    ("smp_pspnet_tu_convnextv2_pico_depth3", "smp_pspnet",
     dict(encoder="tu-convnextv2_pico", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [2, 3, 40, 56]),
    # smp's Linknet and UnetPlusPlus skip the empty feature: Linknet's block there keeps
    # the deeper width and adds nothing, UnetPlusPlus's nested blocks over it are empty.
    ("smp_linknet_tu_convnext_atto", "smp_linknet",
     dict(encoder="tu-convnext_atto", depth=5, cin=3, classes=2, use_norm=True, activation=None),
     [2, 3, 64, 96]),
    ("smp_linknet_tu_convnext_femto_depth2", "smp_linknet",
     dict(encoder="tu-convnext_femto", depth=2, cin=1, classes=3, use_norm=False,
          activation="sigmoid"), [1, 1, 40, 56]),
    ("smp_unetplusplus_tu_convnext_atto", "smp_unetplusplus",
     dict(encoder="tu-convnext_atto", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [1, 3, 64, 96]),
    ("smp_unetplusplus_tu_convnext_femto_depth3_scse", "smp_unetplusplus",
     dict(encoder="tu-convnext_femto", depth=3, cin=2, classes=2, decoder_channels=[32, 16, 16],
          use_norm=True, interpolation="bilinear", attention="scse", activation=None),
     [2, 2, 48, 64]),
    # timm's TensorFlow-padded EfficientNets (`'SAME'` on strided windows, eps 1e-3), its
    # EfficientNetV2s (plain and edge-residual first stages, SE in the inverted residuals,
    # B-sizes rounded to the nearest 8) and EfficientNet-EdgeTPUs (ReLU, edge residuals,
    # the first block's expansion from 24 channels), at odd sizes.
    ("smp_unet_tu_tf_efficientnet_b0_odd", "smp_unet",
     dict(encoder="tu-tf_efficientnet_b0.ns_jft_in1k", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_tf_efficientnet_lite0_os8", "smp_deeplabv3",
     dict(encoder="tu-tf_efficientnet_lite0", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 56, 40]),
    ("smp_unet_tu_tf_efficientnetv2_b0_odd", "smp_unet",
     dict(encoder="tu-tf_efficientnetv2_b0", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_efficientnetv2_rw_t_os16", "smp_deeplabv3plus",
     dict(encoder="tu-efficientnetv2_rw_t", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 64]),
    ("smp_fpn_tu_tf_efficientnetv2_b3_depth4", "smp_fpn",
     dict(encoder="tu-tf_efficientnetv2_b3", depth=4, cin=3, classes=2, pyramid=32,
          segmentation=32, merge="add", interpolation="nearest", upsampling=4, activation=None),
     [2, 3, 48, 64]),
    ("smp_pspnet_tu_efficientnetv2_rw_s_depth3", "smp_pspnet",
     dict(encoder="tu-efficientnetv2_rw_s", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 40, 56]),
    ("smp_unet_tu_tf_efficientnetv2_s_depth3", "smp_unet",
     dict(encoder="tu-tf_efficientnetv2_s", depth=3, cin=2, classes=2, decoder_channels=[16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 2, 45, 61]),
    ("smp_deeplabv3_tu_tf_efficientnet_es_os8", "smp_deeplabv3",
     dict(encoder="tu-tf_efficientnet_es", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [1, 3, 56, 72]),
    ("smp_linknet_tu_efficientnetv2_rw_m_depth4", "smp_linknet",
     dict(encoder="tu-efficientnetv2_rw_m", depth=4, cin=3, classes=2, use_norm=True,
          activation=None), [1, 3, 48, 64]),
    ("smp_unet_tu_efficientnet_el", "smp_unet",
     dict(encoder="tu-efficientnet_el", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 64, 96]),
    # timm's convolutional MobileNetV4s: convolution blocks, fused and universal inverted
    # bottlenecks (the start window without activation, either window absent), the
    # stem's feature first, dilated by timm's rule.
    ("smp_unet_tu_mobilenetv4_conv_small_odd", "smp_unet",
     dict(encoder="tu-mobilenetv4_conv_small", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_mobilenetv4_conv_medium_os8", "smp_deeplabv3",
     dict(encoder="tu-mobilenetv4_conv_medium", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 40, 56]),
    ("smp_deeplabv3plus_tu_mobilenetv4_conv_large_os16", "smp_deeplabv3plus",
     dict(encoder="tu-mobilenetv4_conv_large", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 64]),
    ("smp_fpn_tu_mobilenetv4_conv_small_050_depth4", "smp_fpn",
     dict(encoder="tu-mobilenetv4_conv_small_050", depth=4, cin=3, classes=2, pyramid=32,
          segmentation=32, merge="add", interpolation="nearest", upsampling=4, activation=None),
     [2, 3, 48, 64]),
    ("smp_pspnet_tu_mobilenetv4_conv_medium_depth3", "smp_pspnet",
     dict(encoder="tu-mobilenetv4_conv_medium", depth=3, cin=3, classes=2, psp_out=32,
          use_norm=True, upsampling=8, activation=None), [1, 3, 40, 56]),
    # timm's RepVGGs (ByobNet): 3x3, 1x1 and identity branches as trained, folded into one
    # convolution at load; grouped every second block in the g4 models; dilated by
    # ByobNet's rule.
    ("smp_unet_tu_repvgg_a0_odd", "smp_unet",
     dict(encoder="tu-repvgg_a0", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_repvgg_a0_os8", "smp_deeplabv3",
     dict(encoder="tu-repvgg_a0", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 40, 56]),
    ("smp_pspnet_tu_repvgg_b1g4_depth3", "smp_pspnet",
     dict(encoder="tu-repvgg_b1g4", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 40, 56]),
    ("smp_deeplabv3plus_tu_repvgg_a1_os16", "smp_deeplabv3plus",
     dict(encoder="tu-repvgg_a1", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 64]),
    ("smp_fpn_tu_repvgg_b0_depth4", "smp_fpn",
     dict(encoder="tu-repvgg_b0", depth=4, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [2, 3, 48, 64]),
    # timm's ResNet-RS: the deep stem, `avg_down`, SE at a quarter of the width, the stem's
    # max pool replaced by a strided convolution (`maxpool.0` / `.1`).
    ("smp_unet_tu_resnetrs50_odd", "smp_unet",
     dict(encoder="tu-resnetrs50", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_resnetrs50_os8", "smp_deeplabv3plus",
     dict(encoder="tu-resnetrs50", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 3, 40, 56]),
    ("smp_fpn_tu_resnetrs101_depth4", "smp_fpn",
     dict(encoder="tu-resnetrs101", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [1, 1, 48, 64]),
    # timm's MixNets: depthwise windows of several sizes in one layer (`MixedConv2d`, the
    # first group taking the remainder), 1x1 layers in two groups, ReLU then SiLU with SE.
    ("smp_unet_tu_mixnet_s_odd", "smp_unet",
     dict(encoder="tu-mixnet_s", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_tf_mixnet_m_os8", "smp_deeplabv3",
     dict(encoder="tu-tf_mixnet_m", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 56, 72]),
    ("smp_fpn_tu_mixnet_xl_depth4", "smp_fpn",
     dict(encoder="tu-mixnet_xl", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [2, 1, 48, 64]),
    ("smp_unet_tu_tf_mixnet_l_odd", "smp_unet",
     dict(encoder="tu-tf_mixnet_l", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [1, 3, 37, 50]),
    # timm's NAS models on its EfficientNet builder: MnasNet-A1 / B1 / Small, SPNASNet,
    # FBNet-C (several block definitions a stage), TinyNet (EfficientNet-B0's stages, the
    # stem never scaled, depths rounded).
    ("smp_unet_tu_semnasnet_075_odd", "smp_unet",
     dict(encoder="tu-semnasnet_075", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_spnasnet_100_os8", "smp_deeplabv3",
     dict(encoder="tu-spnasnet_100", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 56, 72]),
    ("smp_fpn_tu_fbnetc_100_depth4", "smp_fpn",
     dict(encoder="tu-fbnetc_100", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [2, 1, 48, 64]),
    ("smp_unet_tu_tinynet_e_odd", "smp_unet",
     dict(encoder="tu-tinynet_e", depth=5, cin=3, classes=2, decoder_channels=[32, 16, 16, 8, 8],
          use_norm=True, interpolation="nearest", activation=None), [2, 3, 37, 50]),
    ("smp_linknet_tu_mnasnet_small", "smp_linknet",
     dict(encoder="tu-mnasnet_small", depth=5, cin=3, classes=2, use_norm=True, activation=None),
     [2, 3, 64, 64]),
    ("smp_pspnet_tu_mnasnet_100_depth3", "smp_pspnet",
     dict(encoder="tu-mnasnet_100", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 40, 56]),
    # timm's depth-scaled MobileNetV2s (`fix_stem_head`: the stem, first and last stages
    # unscaled).
    ("smp_unet_tu_mobilenetv2_110d_odd", "smp_unet",
     dict(encoder="tu-mobilenetv2_110d", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_fpn_tu_mobilenetv2_120d_depth4", "smp_fpn",
     dict(encoder="tu-mobilenetv2_120d", depth=4, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [1, 3, 48, 64]),
    # timm's depth-scaled MobileNetV3 (each stage's depth shared out among its definitions).
    ("smp_unet_tu_mobilenetv3_large_150d_odd", "smp_unet",
     dict(encoder="tu-mobilenetv3_large_150d", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    # timm's first MobileNetV3 (`mobilenetv3_rw`: eps 1e-3, rounded SE with the block's
    # activation) and PP-LCNet (`dsa` blocks: the projection activated, no skip).
    ("smp_unet_tu_mobilenetv3_rw_odd", "smp_unet",
     dict(encoder="tu-mobilenetv3_rw", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_unet_tu_lcnet_100_odd", "smp_unet",
     dict(encoder="tu-lcnet_100", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_lcnet_050_os8", "smp_deeplabv3plus",
     dict(encoder="tu-lcnet_050", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [2, 3, 40, 56]),
    # timm's MobileNetV1 (`dsa` blocks, ReLU6).
    ("smp_unet_tu_mobilenetv1_100_odd", "smp_unet",
     dict(encoder="tu-mobilenetv1_100", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3_tu_mobilenetv1_125_os8", "smp_deeplabv3",
     dict(encoder="tu-mobilenetv1_125", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 56, 72]),
    # timm's FBNetV3s (widths and SE rounded never below 95%, SE from the block's input).
    ("smp_unet_tu_fbnetv3_b_odd", "smp_unet",
     dict(encoder="tu-fbnetv3_b", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_fbnetv3_d_os16", "smp_deeplabv3plus",
     dict(encoder="tu-fbnetv3_d", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [2, 1, 48, 64]),
    ("smp_fpn_tu_fbnetv3_g_depth4", "smp_fpn",
     dict(encoder="tu-fbnetv3_g", depth=4, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [1, 3, 48, 64]),
    ("smp_fpn_tu_lcnet_035_depth4", "smp_fpn",
     dict(encoder="tu-lcnet_035", depth=4, cin=1, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [1, 1, 48, 64]),
    # U²-Net and IS-Net (background removal): odd sizes whose ceil-mode pools end at 1 x 1,
    # batch 2, two output maps.
    ("u2netp_odd_batch2", "u2net", dict(name="u2netp", cin=3, classes=1), [2, 3, 45, 61]),
    ("u2net_two_maps", "u2net", dict(name="u2net", cin=3, classes=2), [2, 3, 23, 30]),
    ("isnet_odd", "u2net", dict(name="isnet", cin=3, classes=1), [1, 3, 41, 29]),
    ("u2netp_one_channel", "u2net", dict(name="u2netp", cin=1, classes=1), [1, 1, 33, 20]),
    # MODNet (portrait matting; PyTorch's runs only at its defaults, 3 input channels and
    # hr_channels=32): batch 2, every map of training's forward, the least size at batch 3.
    ("modnet_batch2", "modnet", dict(inference=True), [2, 3, 64, 96]),
    ("modnet_all_maps", "modnet", dict(inference=False), [1, 3, 96, 64]),
    ("modnet_least_batch3", "modnet", dict(inference=False), [3, 3, 32, 32]),
    # timm's HRNets through smp's `tu-` encoders: four parallel branches fused by 1x1
    # convolutions with nearest upsampling and chains of stride-2 3x3 ones, the
    # `incre_modules` bottlenecks as the features (sizes of a multiple of 32: each branch
    # half the last).
    ("smp_unet_tu_hrnet_w18_small", "smp_unet",
     dict(encoder="tu-hrnet_w18_small", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 64, 96]),
    ("smp_fpn_tu_hrnet_w18_small_v2_depth4", "smp_fpn",
     dict(encoder="tu-hrnet_w18_small_v2", depth=4, cin=1, classes=2, pyramid=32,
          segmentation=32, merge="add", interpolation="nearest", upsampling=4,
          activation=None), [2, 1, 64, 64]),
    ("smp_pspnet_tu_hrnet_w18_depth3", "smp_pspnet",
     dict(encoder="tu-hrnet_w18", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [1, 3, 32, 64]),
    ("smp_unet_tu_hrnet_w18_small_v2_odd", "smp_unet",
     dict(encoder="tu-hrnet_w18_small_v2", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 29, 61]),
    # timm's Aligned Xceptions (DeepLabV3+'s backbone) through smp's `tu-` encoders: taps
    # inside the strided blocks (before their last separable convolution), dilated by
    # timm's rule at output strides 8 and 16.
    ("smp_unet_tu_xception41_odd", "smp_unet",
     dict(encoder="tu-xception41", depth=5, cin=3, classes=2,
          decoder_channels=[32, 16, 16, 8, 8], use_norm=True, interpolation="nearest",
          activation=None), [2, 3, 45, 61]),
    ("smp_deeplabv3plus_tu_xception65_os16", "smp_deeplabv3plus",
     dict(encoder="tu-xception65", depth=5, output_stride=16, cin=1, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=True, upsampling=4, activation=None),
     [1, 1, 48, 64]),
    ("smp_deeplabv3_tu_xception41_os8", "smp_deeplabv3",
     dict(encoder="tu-xception41", depth=5, output_stride=8, cin=3, classes=2,
          decoder_channels=16, rates=[2, 3, 4], separable=False, upsampling=None,
          activation=None), [2, 3, 40, 48]),
    ("smp_fpn_tu_xception71_depth4", "smp_fpn",
     dict(encoder="tu-xception71", depth=4, cin=3, classes=2, pyramid=32, segmentation=32,
          merge="add", interpolation="nearest", upsampling=4, activation=None), [1, 3, 48, 64]),
    ("smp_pspnet_tu_xception41_depth3", "smp_pspnet",
     dict(encoder="tu-xception41", depth=3, cin=3, classes=2, psp_out=32, use_norm=True,
          upsampling=8, activation=None), [2, 3, 40, 56]),
    ("smp_linknet_tu_hrnet_w18_small_depth2", "smp_linknet",
     dict(encoder="tu-hrnet_w18_small", depth=2, cin=2, classes=3, use_norm=True,
          activation="sigmoid"), [2, 2, 96, 32]),
    # BiSeNetV2 (real-time semantic segmentation): odd sizes whose 1/8 map (rounded up) is
    # a multiple of 4 (the branches meet only there), batch 2, the auxiliary heads.
    ("bisenetv2_odd_batch2", "bisenetv2", dict(classes=5, aux_mode="eval"), [2, 3, 57, 89]),
    ("bisenetv2_train_odd", "bisenetv2", dict(classes=2, aux_mode="train"), [2, 3, 25, 121]),
    ("bisenetv2_train", "bisenetv2", dict(classes=3, aux_mode="train"), [1, 3, 64, 96]),
    # BiSeNet (V1) as facexlib's face parsing runs it: any size, batch 2.
    ("bisenet_face_odd_batch2", "bisenet", dict(classes=4), [2, 3, 45, 61]),
    ("bisenet_face_19", "bisenet", dict(classes=19), [1, 3, 33, 48]),
    # Fast-SCNN: odd sizes whose 1/8 map is a multiple of 4 (the paths meet only there),
    # batch 2, the auxiliary head; the pyramid pooling sees a 5 x 5 map in the second (its
    # bins make no difference on the first's 2 x 3), calibrated too.
    ("fast_scnn_odd_batch2", "fast_scnn", dict(classes=5, aux=False), [2, 3, 61, 93]),
    ("fast_scnn_aux_odd", "fast_scnn", dict(classes=2, aux=True), [1, 3, 157, 159]),
    # ENet: odd sizes (the decoder's unpoolings and sized transposed convolutions give each
    # stage its encoder stage's size back), batch 2, PReLU in the encoder (the default) or
    # the decoder; a size whose 1/8 map (20 x 18) lets the dilated convolutions reach
    # past the centre tap; calibrated too.
    ("enet_odd_batch2", "enet", dict(classes=5, encoder_relu=False, decoder_relu=True),
     [2, 3, 45, 61]),
    ("enet_relu_encoder_prelu_decoder", "enet", dict(classes=3, encoder_relu=True,
                                                     decoder_relu=False), [1, 3, 37, 50]),
    ("enet_wide", "enet", dict(classes=2, encoder_relu=False, decoder_relu=True),
     [1, 3, 160, 143]),
    # ERFNet: sides of multiples of 8 (its downsamplers' branches meet only there), batch
    # 2, the encoder's logits, a 1/8 map (20 x 17) the dilated convolutions reach across;
    # calibrated too.
    ("erfnet_batch2", "erfnet", dict(classes=5, only_encode=False), [2, 3, 48, 72]),
    ("erfnet_encoder", "erfnet", dict(classes=3, only_encode=True), [1, 3, 40, 56]),
    ("erfnet_wide", "erfnet", dict(classes=2, only_encode=False), [1, 3, 160, 136]),
    # PIDNet: sides of multiples of 8 (the D branch meets the resized maps only there),
    # widths that are not multiples of 4, batch 2; PIDNet-S / -M's form (m = 2: PAPPM,
    # Light_Bag) and PIDNet-L's (DAPPM, Bag) with the auxiliary heads; a 1/64 map of 6 x 5
    # that every pyramid pool reduces; PIDNet-S itself; calibrated too.
    ("pidnet_small_odd_batch2", "pidnet", dict(m=2, n=3, classes=5, planes=6, ppm=10, head=12,
                                               augment=False), [2, 3, 72, 104]),
    ("pidnet_large_augment", "pidnet", dict(m=3, n=4, classes=3, planes=4, ppm=6, head=8,
                                            augment=True), [1, 3, 56, 88]),
    ("pidnet_wide_augment", "pidnet", dict(m=2, n=2, classes=2, planes=4, ppm=8, head=8,
                                           augment=True), [1, 3, 328, 264]),
    ("pidnet_s", "pidnet", dict(m=2, n=3, classes=19, planes=32, ppm=96, head=128,
                                augment=False), [1, 3, 64, 128]),
    # DDRNet: sides of multiples of 8, widths that are not multiples of 4, batch 2; the
    # 23 form and DDRNet-39's split third stage with the auxiliary head; a 1/64 map of
    # 6 x 5 that every pyramid pool reduces; DDRNet-23-slim itself; calibrated too.
    ("ddrnet_23_odd_batch2", "ddrnet", dict(layers=[2, 1, 3, 2], classes=5, planes=6, spp=10,
                                            head=12, augment=False, split=False),
     [2, 3, 72, 104]),
    ("ddrnet_39_augment", "ddrnet", dict(layers=[1, 2, 4, 3], classes=3, planes=4, spp=6,
                                         head=8, augment=True, split=True), [1, 3, 56, 88]),
    ("ddrnet_23_wide_augment", "ddrnet", dict(layers=[2, 2, 2, 2], classes=2, planes=4, spp=8,
                                              head=8, augment=True, split=False),
     [1, 3, 328, 264]),
    ("ddrnet_23_slim", "ddrnet", dict(layers=[2, 2, 2, 2], classes=19, planes=32, spp=128,
                                      head=64, augment=False, split=False), [1, 3, 64, 128]),
    # HRNetV2 (HRNet-Semantic-Segmentation): odd sizes (its fusions resize to each
    # branch's size), batch 2 and 3; W18-small v1 and v2 as its Cityscapes models, the
    # 3x3 classifier, corners aligned, widths that are not multiples of 4; calibrated too.
    # STDC-Seg: odd sizes (every stride rounds up), batch 2; STDC1 without detail heads,
    # STDC2 with conv_last and every detail head, STDC1 with the 1/8 head as trained;
    # calibrated too.
    ("stdc1_odd_batch2", "stdc", dict(backbone="STDCNet813", classes=5, use_conv_last=False,
                                      boundary=[]), [2, 3, 45, 61]),
    ("stdc2_boundary_odd", "stdc", dict(backbone="STDCNet1446", classes=3, use_conv_last=True,
                                        boundary=[2, 4, 8]), [1, 3, 37, 50]),
    ("hrnet_seg_w18_small_v1_odd_batch2", "hrnet_seg",
     dict(stage1=[1, 32], modules=[1, 1, 1], blocks=[2, 2, 2], widths=[16, 32, 64, 128],
          classes=5, final_kernel=1, align=False), [2, 3, 45, 61]),
    ("hrnet_seg_w18_small_v2_k3_align", "hrnet_seg",
     dict(stage1=[2, 64], modules=[1, 3, 2], blocks=[2, 2, 2], widths=[18, 36, 72, 144],
          classes=3, final_kernel=3, align=True), [1, 3, 37, 50]),
    ("hrnet_seg_narrow_batch3", "hrnet_seg",
     dict(stage1=[1, 8], modules=[1, 2, 1], blocks=[1, 1, 1], widths=[4, 8, 12, 6],
          classes=2, final_kernel=1, align=True), [3, 3, 29, 71]),
    ("stdc1_cityscapes", "stdc", dict(backbone="STDCNet813", classes=19, use_conv_last=False,
                                      boundary=[8]), [1, 3, 32, 64]),
    ("hf_segformer_b0_odd_batch2", "hf_segformer",
     dict(cin=3, hidden=[32, 64, 160, 256], depths=[2, 2, 2, 2], heads=[1, 2, 5, 8],
          sr=[8, 4, 2, 1], patch=[7, 3, 3, 3], strides=[4, 2, 2, 2], mlp=[4, 4, 4, 4],
          decoder=64, classes=7), [2, 3, 45, 61]),
    ("hf_segformer_narrow_mixed", "hf_segformer",
     dict(cin=2, hidden=[8, 16, 24, 12], depths=[1, 2, 1, 1], heads=[2, 4, 3, 1],
          sr=[4, 2, 1, 1], patch=[5, 3, 2, 3], strides=[4, 2, 2, 1], mlp=[2, 4, 3, 1],
          decoder=10, classes=3), [3, 2, 37, 50]),
    ("hrnet_ocr_w18_small_v2_odd_batch2", "hrnet_ocr",
     dict(stage1=[2, 64], modules=[1, 3, 2], blocks=[2, 2, 2], widths=[18, 36, 72, 144],
          classes=19, mid=48, key=24, align=True), [2, 3, 45, 61]),
    ("hrnet_ocr_narrow_noalign_batch3", "hrnet_ocr",
     dict(stage1=[1, 8], modules=[1, 1, 1], blocks=[1, 1, 1], widths=[4, 8, 12, 6],
          classes=5, mid=20, key=13, align=False), [3, 3, 37, 50]),
]

# The same networks again with their batch norms calibrated on a random batch
# (`calibrate`): every normalised activation at unit scale, as in a trained network, so
# that a mistake deep in an encoder reaches the output undamped, at batch 1 (the files
# stay small). Their outputs are computed in float64 (`f32_error` in cases.json:
# PyTorch's own f32 error against them).
CALIBRATED = [
    "mobilenet_v2_width_0.5", "mobilenet_v3_small_dilated", "lraspp_one_class",
    "deeplabv3_mobilenet_v3_large_7", "resnet18_batch3", "efficientnet_b0_torchvision",
    "shufflenet_v2_x1_0_features", "regnet_y_400mf_features", "mnasnet1_0_features",
    "smp_unet_resnet34", "smp_fpn_resnet34", "smp_deeplabv3_resnet34",
    "smp_deeplabv3plus_resnet50_depth4_os8", "smp_linknet_resnet34", "smp_pspnet_resnet34",
    "smp_unetplusplus_resnet34", "smp_upernet_resnet34", "smp_pan_resnet34",
    "smp_manet_resnet34", "smp_segformer_resnet34", "smp_unet_vgg16_bn",
    "smp_unet_efficientnet_b0_odd_size", "smp_unet_densenet121", "smp_unet_se_resnext50_32x4d",
    "smp_unet_timm_efficientnet_b0", "smp_unet_mobileone_s0", "smp_unet_xception",
    "smp_unet_inceptionv4", "smp_unet_timm_skresnet34", "smp_unet_dpn68b", "smp_unet_tu_resnet34",
    "smp_unet_tu_mobilenetv3_large_100", "smp_unet_tu_regnety_002", "smp_unet_tu_resnet18d_odd",
    "smp_unet_tu_seresnet18_odd", "smp_unet_tu_ecaresnet26t_odd", "smp_unet_tu_resnetaa34d",
    "smp_unet_timm_res2net50_26w_4s_odd", "smp_unet_timm_resnest14d_odd",
    "smp_unet_tu_resnetblur18_odd", "smp_unet_timm_gernet_s_odd",
    "smp_unet_tu_tf_efficientnet_b0_odd", "smp_unet_tu_tf_efficientnetv2_b0_odd",
    "smp_unet_tu_mobilenetv4_conv_small_odd", "smp_unet_tu_repvgg_a0_odd",
    "smp_unet_tu_efficientnet_el", "smp_deeplabv3_tu_resnet50d_os8", "smp_unet_tu_resnetrs50_odd",
    "smp_unet_tu_mixnet_s_odd", "smp_unet_tu_tf_mixnet_l_odd", "smp_unet_tu_semnasnet_075_odd",
    "smp_fpn_tu_fbnetc_100_depth4", "smp_unet_tu_tinynet_e_odd", "smp_unet_tu_mobilenetv2_110d_odd",
    "smp_unet_tu_mobilenetv3_large_150d_odd", "smp_unet_tu_mobilenetv3_rw_odd",
    "smp_unet_tu_lcnet_100_odd", "smp_unet_tu_mobilenetv1_100_odd", "smp_unet_tu_fbnetv3_b_odd",
    "u2netp_odd_batch2", "isnet_odd", "modnet_batch2", "smp_unet_tu_hrnet_w18_small",
    "smp_unet_tu_xception41_odd", "smp_deeplabv3_tu_xception41_os8", "bisenetv2_train",
    "bisenet_face_odd_batch2", "fast_scnn_aux_odd", "enet_odd_batch2", "erfnet_batch2",
    "pidnet_small_odd_batch2", "pidnet_large_augment", "ddrnet_23_odd_batch2", "ddrnet_39_augment",
    "stdc1_odd_batch2", "stdc2_boundary_odd", "hrnet_seg_w18_small_v1_odd_batch2",
    "hrnet_seg_w18_small_v2_k3_align", "hrnet_ocr_w18_small_v2_odd_batch2",
    "hrnet_ocr_narrow_noalign_batch3", "hf_segformer_b0_odd_batch2", "hf_segformer_narrow_mixed",
]
CASES += [(f"{n}_calibrated", k, dict(a, calibrated=True), [1] + s[1:]) for n, k, a, s in CASES
          if n in CALIBRATED]


def build(kind, a):
    """The PyTorch network of a case (smp models get `aux` as their aux_params)."""
    if kind == "unet":
        return UNet(a["cin"], a["classes"], base=a["base"], depth=a["depth"], bilinear=a["bilinear"])
    if kind == "segnet":
        return SegNet(a["cin"], a["classes"], widths=tuple(a["widths"]), convs=tuple(a["convs"]))
    if kind == "fcn8s":
        return FCN8s(a["classes"], widths=tuple(a["widths"]), fc=a["fc"])
    if kind == "mbv2":
        return torchvision.models.mobilenet_v2(width_mult=a["width_mult"]).features
    if kind == "mbv3":
        make = getattr(torchvision.models, f"mobilenet_v3_{a['arch']}")
        return make(width_mult=a["width_mult"], reduced_tail=a["reduced_tail"], dilated=a["dilated"]).features
    if kind == "seg":
        kw = dict(weights=None, weights_backbone=None, num_classes=a["classes"])
        if not a["name"].startswith("lraspp"):
            kw["aux_loss"] = a["aux"]
        return getattr(torchvision.models.segmentation, a["name"])(**kw)
    if kind == "resnet":
        from torchvision.models._utils import IntermediateLayerGetter
        model = getattr(torchvision.models, a["name"])(replace_stride_with_dilation=a["dilation"])
        return IntermediateLayerGetter(model, return_layers={"layer4": "out"})
    if kind == "smp_upernet":
        import segmentation_models_pytorch as smp
        return smp.UPerNet(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                           in_channels=a["cin"], classes=a["classes"],
                           decoder_channels=a["decoder_channels"], decoder_use_norm=a["use_norm"],
                           upsampling=a["upsampling"], activation=a["activation"],
                           aux_params=a.get("aux"))
    if kind == "smp_segformer":
        import segmentation_models_pytorch as smp
        return smp.Segformer(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                             in_channels=a["cin"], classes=a["classes"],
                             decoder_segmentation_channels=a["segmentation"],
                             upsampling=a["upsampling"], activation=a["activation"],
                             aux_params=a.get("aux"))
    if kind == "smp_pan":
        import segmentation_models_pytorch as smp
        return smp.PAN(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                       encoder_output_stride=a["output_stride"], in_channels=a["cin"],
                       classes=a["classes"], decoder_channels=a["decoder_channels"],
                       decoder_interpolation=a["interpolation"], upsampling=a["upsampling"],
                       activation=a["activation"], aux_params=a.get("aux"))
    if kind == "smp_manet":
        import segmentation_models_pytorch as smp
        return smp.MAnet(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                         in_channels=a["cin"], classes=a["classes"],
                         decoder_channels=a["decoder_channels"], decoder_pab_channels=a["pab"],
                         decoder_use_norm=a["use_norm"],
                         decoder_interpolation=a["interpolation"], activation=a["activation"],
                         aux_params=a.get("aux"))
    if kind == "mnasnet":
        import types
        model = getattr(torchvision.models, a["name"])()
        model.forward = types.MethodType(lambda self, x: self.layers(x), model)
        return model
    if kind == "regnet":
        import types
        model = getattr(torchvision.models, a["name"])()
        model.forward = types.MethodType(lambda self, x: self.trunk_output(self.stem(x)), model)
        return model
    if kind == "shufflenet":
        import types
        model = getattr(torchvision.models, a["name"])()

        def features(self, x):
            x = self.maxpool(self.conv1(x))
            return self.conv5(self.stage4(self.stage3(self.stage2(x))))

        model.forward = types.MethodType(features, model)
        return model
    if kind == "senet":
        from segmentation_models_pytorch.encoders._senet import SENet
        from segmentation_models_pytorch.encoders.senet import senet_encoders
        params = dict(senet_encoders[a["name"]]["params"])
        params.pop("out_channels")

        class Features(SENet):
            def forward(self, x):
                return self.features(x)

        return Features(**params)
    if kind == "sknet":
        from segmentation_models_pytorch.encoders.timm_sknet import timm_sknet_encoders
        entry = timm_sknet_encoders[a["name"]]
        params = dict(entry["params"])

        class SkFeatures(entry["encoder"]):
            def forward(self, x):
                return super().forward(x)[-1]

        return SkFeatures(**params)
    if kind == "inceptionv4":
        from segmentation_models_pytorch.encoders.inceptionv4 import inceptionv4_encoders
        entry = inceptionv4_encoders["inceptionv4"]
        params = dict(entry["params"])

        class InceptionFeatures(entry["encoder"]):
            def forward(self, x):
                return super().forward(x)[-1]

        return InceptionFeatures(**params)
    if kind == "inceptionresnetv2":
        from segmentation_models_pytorch.encoders.inceptionresnetv2 import (
            inceptionresnetv2_encoders)
        entry = inceptionresnetv2_encoders["inceptionresnetv2"]
        params = dict(entry["params"])

        class InceptionResNetFeatures(entry["encoder"]):
            def forward(self, x):
                return super().forward(x)[-1]

        return InceptionResNetFeatures(**params)
    if kind == "dpn":
        from segmentation_models_pytorch.encoders.dpn import dpn_encoders
        entry = dpn_encoders[a["name"]]
        params = dict(entry["params"])

        class DpnFeatures(entry["encoder"]):
            def forward(self, x):
                return super().forward(x)[-1]

        return DpnFeatures(**params)
    if kind == "densenet":
        return getattr(torchvision.models, a["name"])().features
    if kind == "convnext":
        return getattr(torchvision.models, a["name"])().features
    if kind == "vgg":
        return getattr(torchvision.models, a["name"])().features
    if kind == "tv_effnet":
        return getattr(torchvision.models, a["name"])().features
    if kind == "effnet":
        from segmentation_models_pytorch.encoders._efficientnet import EfficientNet, get_model_params

        class Features(EfficientNet):
            def forward(self, x):
                return self.extract_features(x)

        return Features(*get_model_params(f"efficientnet-b{a['variant']}", None))
    if kind == "smp_unet":
        import segmentation_models_pytorch as smp
        return smp.Unet(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                        in_channels=a["cin"], classes=a["classes"],
                        decoder_channels=tuple(a["decoder_channels"]),
                        decoder_use_norm=a["use_norm"],
                        decoder_interpolation=a["interpolation"], activation=a["activation"],
                        decoder_attention_type=a.get("attention"), aux_params=a.get("aux"))
    if kind == "smp_unetplusplus":
        import segmentation_models_pytorch as smp
        return smp.UnetPlusPlus(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                                in_channels=a["cin"], classes=a["classes"],
                                decoder_channels=tuple(a["decoder_channels"]),
                                decoder_use_norm=a["use_norm"],
                                decoder_interpolation=a["interpolation"],
                                activation=a["activation"],
                                decoder_attention_type=a.get("attention"), aux_params=a.get("aux"))
    if kind == "smp_fpn":
        import segmentation_models_pytorch as smp
        return smp.FPN(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                       in_channels=a["cin"], classes=a["classes"],
                       decoder_pyramid_channels=a["pyramid"],
                       decoder_segmentation_channels=a["segmentation"],
                       decoder_merge_policy=a["merge"], decoder_interpolation=a["interpolation"],
                       upsampling=a["upsampling"], activation=a["activation"], aux_params=a.get("aux"))
    if kind in ("smp_deeplabv3", "smp_deeplabv3plus"):
        import segmentation_models_pytorch as smp
        model = smp.DeepLabV3 if kind == "smp_deeplabv3" else smp.DeepLabV3Plus
        return model(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                     encoder_output_stride=a["output_stride"], in_channels=a["cin"],
                     classes=a["classes"], decoder_channels=a["decoder_channels"],
                     decoder_atrous_rates=tuple(a["rates"]),
                     decoder_aspp_separable=a["separable"], upsampling=a["upsampling"],
                     activation=a["activation"], aux_params=a.get("aux"))
    if kind == "smp_linknet":
        import segmentation_models_pytorch as smp
        return smp.Linknet(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                           in_channels=a["cin"], classes=a["classes"],
                           decoder_use_norm=a["use_norm"], activation=a["activation"], aux_params=a.get("aux"))
    if kind == "smp_pspnet":
        import segmentation_models_pytorch as smp
        return smp.PSPNet(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                          in_channels=a["cin"], classes=a["classes"], psp_out_channels=a["psp_out"],
                          decoder_use_norm=a["use_norm"], upsampling=a["upsampling"],
                          activation=a["activation"], aux_params=a.get("aux"))
    if kind == "smp_dpt":
        import segmentation_models_pytorch as smp
        return smp.DPT(a["encoder"], encoder_weights=None, encoder_depth=a["depth"],
                       encoder_output_indices=a["indices"], decoder_readout=a["readout"],
                       decoder_intermediate_channels=a["mid"], decoder_fusion_channels=a["fusion"],
                       in_channels=a["cin"], classes=a["classes"], activation=a["activation"],
                       aux_params=a.get("aux"), **a["vit"])
    if kind == "u2net":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
        import isnet
        import u2net
        cls = {"u2net": u2net.U2NET, "u2netp": u2net.U2NETP, "isnet": isnet.ISNetDIS}[a["name"]]
        return cls(in_ch=a["cin"], out_ch=a["classes"])
    if kind == "modnet":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
        from modnet.modnet import MODNet

        class Matting(MODNet):
            def forward(self, x):
                semantic, detail, matte = super().forward(x, a["inference"])
                y = {"out": matte, "side1": semantic, "side2": detail}
                return {k: v for k, v in y.items() if v is not None}
        return Matting(backbone_pretrained=False)
    if kind == "bisenetv2":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
        from bisenet import bisenetv2
        # Its constructor downloads a pretrained backbone; the weights are made up here.
        bisenetv2.BiSeNetV2.load_pretrain = lambda self: None

        class Segmenter(bisenetv2.BiSeNetV2):
            def forward(self, x):
                y = super().forward(x)
                return {"out": y[0], **{f"side{i}": t for i, t in enumerate(y[1:], 1)}}
        return Segmenter(a["classes"], aux_mode=a["aux_mode"])
    if kind == "bisenet":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
        from facexlib_parsing.bisenet import BiSeNet

        class Parser(BiSeNet):
            def forward(self, x):
                out, out16, out32 = super().forward(x)
                return {"out": out, "side1": out16, "side2": out32}
        return Parser(a["classes"])
    if kind == "fast_scnn":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
        from fast_scnn.fast_scnn import FastSCNN

        class Segmenter(FastSCNN):
            def forward(self, x):
                y = super().forward(x)
                return {"out": y[0], **({"aux": y[1]} if len(y) > 1 else {})}
        return Segmenter(a["classes"], aux=a["aux"])
    if kind == "enet":
        from enet_model import ENet
        return ENet(a["classes"], encoder_relu=a["encoder_relu"], decoder_relu=a["decoder_relu"])
    if kind == "erfnet":
        from erfnet_model import Net

        class Segmenter(Net):
            def forward(self, x):
                return super().forward(x, only_encode=a["only_encode"])
        return Segmenter(a["classes"])
    if kind == "pidnet":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
        from pidnet.pidnet import PIDNet

        class Segmenter(PIDNet):
            def forward(self, x):
                y = super().forward(x)
                if isinstance(y, list):
                    return {"out": y[0], "side1": y[1], "side2": y[2]}
                return y
        return Segmenter(m=a["m"], n=a["n"], num_classes=a["classes"], planes=a["planes"],
                         ppm_planes=a["ppm"], head_planes=a["head"], augment=a["augment"])
    if kind == "ddrnet":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party"))
        if a["split"]:
            from ddrnet.DDRNet_39 import BasicBlock, DualResNet
        else:
            from ddrnet.DDRNet_23_slim import BasicBlock, DualResNet

        class Segmenter(DualResNet):
            def forward(self, x):
                y = super().forward(x)
                if isinstance(y, list):
                    return {"out": y[0], "side1": y[1]}
                return y
        return Segmenter(BasicBlock, a["layers"], num_classes=a["classes"], planes=a["planes"],
                         spp_planes=a["spp"], head_planes=a["head"], augment=a["augment"])
    if kind == "stdc":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party",
                                        "stdc_seg"))
        from models.model_stages import BiSeNet as StdcSeg

        class Segmenter(StdcSeg):
            def forward(self, x):
                y = super().forward(x)
                return {"out": y[0], **{f"side{i}": t for i, t in enumerate(y[1:], 1)}}
        b = a["boundary"]
        return Segmenter(a["backbone"], a["classes"], use_boundary_2=2 in b, use_boundary_4=4 in b,
                         use_boundary_8=8 in b, use_conv_last=a["use_conv_last"])
    if kind == "hrnet_seg":
        from hrnet_seg_model import hrnet_seg
        return hrnet_seg(a["stage1"], a["modules"], a["blocks"], a["widths"], a["classes"],
                         a["final_kernel"], a["align"])
    if kind == "hf_segformer":
        return hf_segformer(a)
    if kind == "hrnet_ocr":
        from hrnet_seg_model import hrnet_ocr

        model = hrnet_ocr(a["stage1"], a["modules"], a["blocks"], a["widths"], a["classes"],
                          a["mid"], a["key"], a["align"])

        class Segmenter(type(model)):
            def forward(self, x):
                aux, out = super().forward(x)
                return {"out": out, "aux": aux}
        model.__class__ = Segmenter
        return model
    raise ValueError(kind)


def hf_segformer(a):
    """transformers' SegformerForSemanticSegmentation of a case, its weights made up under
    its checkpoints' names: `save_pretrained` writes those (transformers 5 renames its
    modules and converts the names back on saving), the made-up file is loaded back
    through `from_pretrained`'s conversion, every tensor accounted for."""
    import tempfile

    import numpy as np
    from safetensors.numpy import load_file
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    cfg = SegformerConfig(num_channels=a["cin"], hidden_sizes=a["hidden"], depths=a["depths"],
                          num_attention_heads=a["heads"], sr_ratios=a["sr"],
                          patch_sizes=a["patch"], strides=a["strides"], mlp_ratios=a["mlp"],
                          decoder_hidden_size=a["decoder"], num_labels=a["classes"])
    with tempfile.TemporaryDirectory() as d:
        SegformerForSemanticSegmentation(cfg).save_pretrained(d)
        path = os.path.join(d, "model.safetensors")
        saved = load_file(path)
        made_up = {n: t if n.endswith("num_batches_tracked") else make_up(n, t.shape)
                   for n, t in saved.items()}
        save_file(made_up, path, metadata={"format": "pt"})
        model, info = SegformerForSemanticSegmentation.from_pretrained(
            d, output_loading_info=True)
    assert not any(v for k, v in info.items() if k != "error_msgs" and v), info
    for n, t in model.state_dict().items():
        assert any(np.array_equal(t.numpy(), v) for v in made_up.values()), n

    class Segmenter(type(model)):
        def forward(self, x):
            return {"out": super().forward(pixel_values=x).logits}
    model.__class__ = Segmenter
    return model.eval()


def calibrate(model, shape, index):
    """Sets every batch norm's running statistics to those of the activations it sees on a
    random batch (the made-up ones leave each layer's output near its input's scale over
    3, so a deep encoder's features reach the output damped by orders of magnitude and a
    mistake deep in it can hide under 1e-4). Calibrated, every normalised activation is of
    unit scale, as in a trained network. The statistics are stored in the case's file."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        m.train()
    # A large batch: a norm deep in the encoder (or after a global pool) sees a few values
    # a sample, and statistics of a few values leave channels of tiny variance that the
    # norm scales up with their rounding noise (at 4 samples a small EfficientNet's f32
    # error reaches 1e-4 to 6e-2; at 64, 5e-6).
    batch = max(shape[0], min(64, max(16, 16384 // (shape[2] * shape[3]))))
    xc = torch.randn(batch, *shape[1:], generator=torch.Generator().manual_seed(700 + index))
    with torch.no_grad():
        model(xc)
    model.eval()


def outputs(y):
    """A model's outputs as {"out", "aux"}: smp's (masks, labels) with the labels [N, classes]
    as [N, classes, 1, 1]; U2NET's seven maps (d0, d1 .. d6) and ISNetDIS's six ([d1 .. d6],
    features) as `out` and `side{i}`."""
    if isinstance(y, tuple) and len(y) == 7:
        return {"out": y[0], **{f"side{i}": d for i, d in enumerate(y[1:], 1)}}
    if isinstance(y, tuple) and isinstance(y[0], list):
        return {"out": y[0][0], **{f"side{i}": d for i, d in enumerate(y[0][1:], 2)}}
    if isinstance(y, tuple):
        return {"out": y[0], "aux": y[1][:, :, None, None]}
    if isinstance(y, dict):
        return {k: y[k] for k in ("out", "aux", "side1", "side2", "side3", "side4", "side5")
                if k in y}
    return {"out": y}


def make(index, name, kind, args, shape, out_dir):
    """Writes one case's file; returns its cases.json entry."""
    model = build(kind, args).eval()
    if kind != "hf_segformer":  # made up under its checkpoints' names already
        fill(model)
    if kind == "modnet":
        # MODNet holds its backbone twice (`backbone` and `lr_branch.backbone`, one
        # module): its weights are made up under the first name, which segblocks loads.
        for n, t in model.backbone.state_dict(prefix="backbone.").items():
            if not n.endswith("num_batches_tracked"):
                t.copy_(torch.from_numpy(make_up(n, tuple(t.shape))))
    if kind == "stdc":
        # STDCNet holds its blocks twice (`features` and the stage aliases `x2` .. `x32`,
        # the same modules): their weights are made up under the first name, which
        # segblocks loads.
        feats = model.cp.backbone.features
        for n, t in feats.state_dict(prefix="cp.backbone.features.").items():
            if not n.endswith("num_batches_tracked"):
                t.copy_(torch.from_numpy(make_up(n, tuple(t.shape))))
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(300 + index))
    if args.get("calibrated"):
        calibrate(model, shape, index)
    with torch.no_grad():
        y = outputs(model(x))
    f32_error = None
    if args.get("calibrated"):
        # Unit-scale features make a deep network's f32 rounding visible: the outputs are
        # computed in float64, and PyTorch's own f32 error against them is recorded.
        with torch.no_grad():
            y64 = outputs(copy.deepcopy(model).double()(x.double()))
        # As the harness measures it: the largest difference over the largest value (the
        # difference itself where every value is 0, a log-softmax over one class).
        f32_error = max(float((y[k].double() - y64[k]).abs().max() / (y64[k].abs().max() or 1))
                        for k in y)
        y = {k: v.float() for k, v in y64.items()}
    # Contiguous: safetensors writes a strided array's buffer as it lies, and a network
    # whose norm permutes to channels-last (smp's UPerNet) returns a channels-last output.
    tensors = {"x": x.numpy()}
    tensors.update({k: v.contiguous().numpy() for k, v in y.items()})
    # smp keeps modules it never runs: the encoder stages past encoder_depth, and the
    # last Unet / UnetPlusPlus decoder block's attention1 (it has no skip): not counted.
    unused = [f"encoder.layer{k}." for k in range(args.get("depth", 5), 5)]
    if args.get("encoder") == "mobilenet_v2":
        last = [1, 3, 6, 13, 18][args.get("depth", 5) - 1]
        unused += [f"encoder.features.{k}." for k in range(last + 1, 19)]
    if args.get("encoder", "").startswith("densenet"):
        # smp's DenseNet stops after the layers of its last feature.
        d = args.get("depth", 5)
        for k in range(1, 5):
            if d < k + 1:
                unused += [f"encoder.features.denseblock{k}.", f"encoder.features.transition{k}.norm."]
            if d < k + 2:
                unused.append(f"encoder.features.transition{k}.conv.")
        if d < 5:
            unused.append("encoder.features.norm5.")
    if args.get("encoder", "").startswith("vgg"):
        # smp's VGG stops after the layer of its last feature; UnetPlusPlus builds a
        # center block for it that its forward never calls.
        last = model.encoder._out_indexes[args.get("depth", 5)]
        unused += [f"encoder.features.{k}." for k in range(last + 1, 60)]
        if kind == "smp_unetplusplus":
            unused.append("decoder.center.")
    if args.get("encoder") == "inceptionv4":
        # smp's Inception-v4 features stop at module 2, 4, 8, 14 or 21.
        last = [2, 4, 8, 14, 21][args.get("depth", 5) - 1]
        unused += [f"encoder.features.{k}." for k in range(last + 1, 22)]
    if args.get("encoder") == "inceptionresnetv2":
        d = args.get("depth", 5)
        later = [["conv2d_3b", "conv2d_4a"], ["mixed_5b", "repeat"], ["mixed_6a", "repeat_1"],
                 ["mixed_7a", "repeat_2", "block8", "conv2d_7b"]]
        unused += [f"encoder.{m}." for k in range(d - 1, 4) for m in later[k]]
    if args.get("encoder", "").startswith("dpn"):
        # smp's DPN runs the features up to its last feature's stage.
        d = args.get("depth", 5)
        names = [n for n, _ in model.encoder.features.named_children()]
        first = model.encoder._stage_idxs[d - 2] if d >= 2 else 1
        unused += [f"encoder.features.{n}." for n in names[first:]]
    unused.append(f"decoder.blocks.{args.get('depth', 5) - 1}.attention1.")
    if kind == "modnet" and args["inference"]:
        # MODNet's inference forward skips the semantic and detail heads.
        unused += ["lr_branch.conv_lr.", "hr_branch.conv_hr."]
    if kind == "effnet":
        unused.append("_fc.")
    if kind == "stdc":
        # The backbone's classifier and the detail heads forward does not return; the
        # backbone's stage aliases (x2 .. x32) hold the features' modules again.
        unused += ["cp.backbone.fc.", "cp.backbone.bn.", "cp.backbone.linear.", "conv_out_sp16."]
        unused += [f"cp.backbone.x{k}." for k in (2, 4, 8, 16, 32)]
        unused += [f"conv_out_sp{k}." for k in (2, 4, 8) if k not in args["boundary"]]
        if not args["use_conv_last"]:
            unused.append("cp.backbone.conv_last.")
    if kind == "senet":
        unused.append("last_linear.")
    if kind in ("shufflenet", "regnet"):
        unused.append("fc.")
    if kind == "mnasnet":
        unused.append("classifier.")
    if kind == "erfnet":
        # The encoder's 1x1 output layer runs only in encoder mode, the decoder only without.
        unused.append("decoder." if args["only_encode"] else "encoder.output_conv.")
    if args.get("encoder", "").startswith("efficientnet-b"):
        # EfficientNet-PyTorch's blocks past the last feature, and its head convolution.
        from segmentation_models_pytorch.encoders.efficientnet import efficient_net_encoders
        taps = efficient_net_encoders[args["encoder"]]["params"]["out_indexes"]
        first = taps[args.get("depth", 5) - 2] + 1
        unused += [f"encoder._blocks.{k}." for k in range(first, 100)]
        unused += ["encoder._conv_head.", "encoder._bn1."]
    if args.get("encoder") == "xception":
        # smp's Xception stops after the block of its last feature.
        last = {1: 0, 2: 1, 3: 2, 4: 11, 5: 12}[args.get("depth", 5)]
        unused += [f"encoder.block{k}." for k in range(last + 1, 13)]
        if args.get("depth", 5) < 5:
            unused += ["encoder.conv3.", "encoder.bn3.", "encoder.conv4.", "encoder.bn4."]
    if args.get("encoder", "").startswith("tu-") and kind != "smp_dpt":
        # timm's features_only models hold the stages up to their last feature only.
        unused += [f"encoder.model.layer{k}." for k in range(args.get("depth", 5), 5)]
        if "efficientnet" in args["encoder"]:
            # timm's EfficientNet features hold every stage but run those to the last tap.
            built = [1, 2, 3, 5, 7][args.get("depth", 5) - 1]
            unused += [f"encoder.model.blocks.{k}." for k in range(built, 7)]
    if "hrnet" in args.get("encoder", ""):
        # timm's HRNet runs every stage whatever the depth (the stride-2 feature alone needs
        # only the stem's first convolution), and the incre_modules of the features kept.
        d = args.get("depth", 5)
        if d < 2:
            unused += [f"encoder.model.{m}" for m in ("conv2.", "bn2.", "transition", "stage")]
        unused += [f"encoder.model.incre_modules.{k}." for k in range(max(d - 1, 0), 4)]
    if args.get("encoder", "").startswith("tu-xception"):
        # timm's hook-based Xception holds the block of its last tap whole; the separable
        # convolution after the tap and the skip never reach a feature.
        last = model.encoder.model.feature_info.module_name()[-1]
        if last.endswith("stack.act3"):
            j = last.split(".")[1]
            unused += [f"encoder.model.blocks_{j}.stack.conv3.", f"encoder.model.blocks_{j}.shortcut."]
    if any(f in args.get("encoder", "") for f in ("mobilenetv", "mixnet", "nasnet", "fbnet",
                                                     "tinynet", "lcnet")):
        # timm's MobileNet, MixNet and NAS features hold every stage but run those to the
        # last tap (the `tu-` names and smp's deprecated `timm-` ones alike).
        last = model.encoder.model.feature_info.module_name()[-1]
        built = int(last.split(".")[1]) + 1 if last.startswith("blocks.") else 0
        unused += [f"encoder.model.blocks.{k}." for k in range(built, 7)]
    if args.get("encoder", "").startswith("mit_b"):
        # smp's Mix Transformer stops after the stage of its last feature.
        unused += [f"encoder.{m}{k}." for k in range(args.get("depth", 5), 5)
                   for m in ("patch_embed", "block", "norm")]
    if args.get("encoder", "").startswith("mobileone"):
        # smp's MobileOne stops after the stage of its last feature.
        unused += [f"encoder.stage{k}." for k in range(args.get("depth", 5), 5)]
    if args.get("encoder", "").startswith("timm-"):
        # timm's EfficientNet: the stages past the last feature, and its head convolution.
        built = [0, 0, 2, 3, 5, 7][args.get("depth", 5)]
        unused += [f"encoder.blocks.{k}." for k in range(built, 7)]
        unused += ["encoder.conv_head.", "encoder.bn2."]
    unused.append(f"decoder.blocks.x_0_{args.get('depth', 5) - 1}.attention1.")
    if kind == "smp_dpt":
        # timm's ViT runs every block, but the features stop at the last index; its final
        # norm and classifier never reach DPT.
        n = len(model.encoder.model.blocks)
        last = max(i % n for i in (args["indices"] or [n - 1]))
        unused += [f"encoder.model.blocks.{k}." for k in range(last + 1, n)]
        unused += ["encoder.model.norm.", "encoder.model.fc_norm.", "encoder.model.head."]
    if args.get("legacy"):
        # smp's older DeepLabV3 names (its load_state_dict renames them); what runs only.
        old = {"decoder.aspp.": "decoder.0.", "decoder.conv.": "decoder.1.", "decoder.bn.": "decoder.2."}
        for n, t in model.state_dict().items():
            if n.endswith("num_batches_tracked") or any(n.startswith(u) for u in unused):
                continue
            for new, legacy in old.items():
                n = n.replace(new, legacy) if n.startswith(new) else n
            tensors[n] = t.numpy()
    if args.get("reparam"):
        # MobileOne's inference form: one convolution a block, stored in the file.
        from segmentation_models_pytorch.encoders.mobileone import reparameterize_model
        model = reparameterize_model(model)
        for n, t in model.state_dict().items():
            if not n.endswith("num_batches_tracked") and not any(n.startswith(u) for u in unused):
                tensors[n] = t.numpy()
    if args.get("calibrated") and not (args.get("legacy") or args.get("reparam")):
        # The batch-norm statistics calibrate measured; every other tensor is made up.
        for n, t in model.state_dict().items():
            if n.endswith(("running_mean", "running_var")) and not any(n.startswith(u) for u in unused):
                tensors[n] = t.numpy()
    params = sum(p.numel() for p in model.parameters())
    if kind.startswith("smp_") or kind in ("effnet", "senet", "shufflenet", "regnet", "mnasnet",
                                           "modnet", "erfnet", "stdc"):
        params -= sum(p.numel() for n, p in model.named_parameters()
                      if any(n.startswith(u) for u in unused))
    save_file(tensors, os.path.join(out_dir, f"{name}.safetensors"),
              metadata={"torch": torch.__version__, "parameters": str(params)})
    os.chmod(os.path.join(out_dir, f"{name}.safetensors"), 0o644)  # safetensors writes 0600
    print(name, shape, "parameters", params, "out", tuple(tensors["out"].shape))
    entry = {"name": name, "kind": kind, "args": args, "input_shape": shape,
             "file": f"{name}.safetensors", "parameters": params}
    if f32_error is not None:
        entry["f32_error"] = f32_error
    if kind == "hf_segformer":
        # The config.json transformers writes beside the weights (the library reads it).
        entry["hf_config"] = json.loads(model.config.to_json_string())
    return entry


def main(cases=None, out_dir=OUT, skip_refused=False, only=None):
    """Writes every case; with `skip_refused` (the fuzzer's random cases), a case PyTorch or
    smp refuses to build or run is reported and left out. With `only` (names), only those
    cases are written again and the others' entries are kept from cases.json."""
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    kept = {}
    if only:
        with open(os.path.join(out_dir, "cases.json")) as f:
            kept = {e["name"]: e for e in json.load(f)["cases"]}
    entries = []
    for i, case in enumerate(cases or CASES):
        if only and case[0] not in only:
            if case[0] in kept:
                entries.append(kept[case[0]])
            continue
        try:
            entries.append(make(i, *case, out_dir))
        except (RuntimeError, ValueError, AssertionError) as e:
            if not skip_refused:
                raise
            # An assert without a message (timm's) has no text: its type stands in.
            why = (str(e).splitlines() or [type(e).__name__])[0]
            print(f"skipped {case[0]} ({case[1]}, {case[2]}): {why}")
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"generator": "tests/golden/make_golden_networks.py", "torch": torch.__version__,
                   "torchvision": torchvision.__version__, "cases": entries}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    # `make_golden_networks.py NAME ...` writes only the named cases again.
    main(only=set(sys.argv[1:]) or None)
