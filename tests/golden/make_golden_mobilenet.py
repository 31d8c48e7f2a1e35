#!/usr/bin/env python3
"""Writes tests/golden/mobilenet_v2_features.safetensors: torchvision's
mobilenet_v2(width_mult=0.35).features, randomly initialised with non-trivial batch-norm
statistics, in eval mode, with an input and its output (tensors `__input__`,
`__output__`). Weights are rounded to float16 and stored as float16 (to keep the file
small); the output is computed with exactly those weights in float32.

Run from the repository root:  /path/to/venv/bin/python tests/golden/make_golden_mobilenet.py
"""

import os

import torch
import torchvision
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mobilenet_v2_features.safetensors")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(7000)
    features = torchvision.models.mobilenet_v2(width_mult=0.35).features
    with torch.no_grad():
        for m in features.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        # Round every tensor to float16 so that the stored file is exact.
        for t in list(features.parameters()) + list(features.buffers()):
            if t.dtype == torch.float32:
                t.copy_(t.half().float())
    features.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = features(x)
    state = {k: v.half().contiguous() for k, v in features.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    params = sum(p.numel() for p in features.parameters())
    state["__input__"] = x.contiguous()
    state["__output__"] = y.contiguous()
    save_file(state, OUT, metadata={"torch": torch.__version__, "torchvision": torchvision.__version__,
                                     "width_mult": "0.35", "parameters": str(params)})
    os.chmod(OUT, 0o644)
    print(f"{OUT}: {os.path.getsize(OUT)} bytes, {params} parameters, output {tuple(y.shape)}")


if __name__ == "__main__":
    main()
