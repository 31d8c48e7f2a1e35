#!/usr/bin/env python3
"""Writes tests/golden/mobilenet_v3_{small,large}_features.safetensors: torchvision's
mobilenet_v3_small(width_mult=0.5).features and mobilenet_v3_large(width_mult=0.35,
reduced_tail=True, dilated=True).features, and lraspp_mobilenet_v3_large.safetensors:
torchvision's LR-ASPP segmentation model on a dilated mobilenet_v3_large(width_mult=0.35)
with 5 classes (state-dict names `backbone.*`, `classifier.*`); all randomly initialised with non-trivial batch-norm statistics, in eval
mode, with an input and its output (tensors `__input__`, `__output__`). Weights are
rounded to float16 and stored as float16 (to keep the files small); the outputs are
computed with exactly those weights in float32.

Run from the repository root:  /path/to/venv/bin/python tests/golden/make_golden_mobilenet_v3.py
"""

import os

import torch
import torchvision
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def export(name, build, kwargs, seed, size, batch=2, features_of=lambda m: m.features):
    torch.manual_seed(seed)
    features = features_of(build(**kwargs))
    with torch.no_grad():
        for m in features.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        for t in list(features.parameters()) + list(features.buffers()):
            if t.dtype == torch.float32:
                t.copy_(t.half().float())
    features.eval()
    x = torch.randn(batch, 3, size, size) if size else torch.randn(batch, 3, 72, 88)
    with torch.no_grad():
        y = features(x)
        if isinstance(y, dict):
            y = y["out"]
    state = {k: v.half().contiguous() for k, v in features.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    params = sum(p.numel() for p in features.parameters())
    state["__input__"] = x.contiguous()
    state["__output__"] = y.contiguous()
    out = os.path.join(HERE, f"{name}.safetensors")
    meta = {k: str(v) for k, v in kwargs.items()}
    meta.update({"torch": torch.__version__, "torchvision": torchvision.__version__,
                 "parameters": str(params)})
    save_file(state, out, metadata=meta)
    os.chmod(out, 0o644)
    print(f"{out}: {os.path.getsize(out)} bytes, {params} parameters, output {tuple(y.shape)}")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    m = torchvision.models
    export("mobilenet_v3_small_features", m.mobilenet_v3_small, {"width_mult": 0.5}, 7100, 64)
    export("mobilenet_v3_large_features", m.mobilenet_v3_large,
           {"width_mult": 0.35, "reduced_tail": True, "dilated": True}, 7200, 64)
    # torchvision's lraspp_mobilenet_v3_large (a dilated MobileNetV3-Large, the LR-ASPP
    # head, the resize to the input) at width 0.35 and 5 classes, on a 72x88 input.
    from torchvision.models.segmentation.lraspp import _lraspp_mobilenetv3
    export("lraspp_mobilenet_v3_large", m.mobilenet_v3_large,
           {"width_mult": 0.35, "dilated": True}, 7300, 0, batch=1,
           features_of=lambda net: _lraspp_mobilenetv3(net, 5), )


if __name__ == "__main__":
    main()
