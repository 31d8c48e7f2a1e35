#!/usr/bin/env python3
"""Writes tests/golden/activation.json: the activations with parameters (nn.LeakyReLU,
nn.ELU, nn.Hardtanh, nn.Softplus) and nn.PReLU (one slope, or one per channel) on small
float32 inputs spread over [-8, 8] (softplus's threshold crossed), and softmax,
log_softmax and argmax over the channels, read by tests/channel.rs.

Run from the repository root:  /path/to/venv/bin/python tests/golden/make_golden_activation.py
"""

import json
import os

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "activation.json")

# name, module, parameters (as written to the file), input shape
CASES = [
    ("leaky_relu_default", nn.LeakyReLU(), {"op": "leaky_relu", "negative_slope": 0.01}, [2, 3, 4, 5]),
    ("leaky_relu_0.2", nn.LeakyReLU(0.2), {"op": "leaky_relu", "negative_slope": 0.2}, [1, 2, 5, 5]),
    ("elu_default", nn.ELU(), {"op": "elu", "alpha": 1.0}, [2, 2, 3, 7]),
    ("elu_alpha0.5", nn.ELU(0.5), {"op": "elu", "alpha": 0.5}, [1, 3, 4, 4]),
    ("hardtanh_default", nn.Hardtanh(), {"op": "hardtanh", "min_val": -1.0, "max_val": 1.0}, [1, 2, 6, 5]),
    ("hardtanh_0_6", nn.Hardtanh(0.0, 6.0), {"op": "hardtanh", "min_val": 0.0, "max_val": 6.0}, [2, 1, 5, 5]),
    ("softplus_default", nn.Softplus(), {"op": "softplus", "beta": 1.0, "threshold": 20.0}, [1, 2, 5, 6]),
    ("softplus_beta4_threshold6", nn.Softplus(4.0, 6.0), {"op": "softplus", "beta": 4.0, "threshold": 6.0}, [2, 2, 3, 5]),
    ("prelu_single", None, {"op": "prelu", "num_parameters": 1}, [2, 3, 4, 4]),
    ("prelu_per_channel", None, {"op": "prelu", "num_parameters": 5}, [2, 5, 3, 3]),
]


# Over the channels (dim=1): softmax, log_softmax, argmax (ties keep the first channel)
CHANNEL_CASES = [
    ("softmax_2x5x3x4", "softmax", [2, 5, 3, 4]),
    ("log_softmax_1x7x4x3", "log_softmax", [1, 7, 4, 3]),
    ("argmax_2x6x4x5_ties", "argmax", [2, 6, 4, 5]),
]


def channel_case(index, name, op, shape):
    gen = torch.Generator().manual_seed(9400 + index)
    x = torch.randn(shape, generator=gen, dtype=torch.float32) * 4.0
    if op == "argmax":
        # rounded values tie often; the first maximum's channel wins
        x = torch.round(x)
        y = x.argmax(1, keepdim=True)
        out = [int(v) for v in y.reshape(-1).tolist()]
    else:
        y = getattr(torch, op)(x, 1)
        out = [float(v) for v in y.reshape(-1).tolist()]
    return {"op": op, "name": name, "input_shape": shape,
            "input": [float(v) for v in x.reshape(-1).tolist()], "output": out}


def main():
    torch.set_num_threads(1)
    cases = []
    for i, (name, module, params, shape) in enumerate(CASES):
        gen = torch.Generator().manual_seed(9300 + i)
        x = torch.rand(shape, generator=gen, dtype=torch.float32) * 16.0 - 8.0
        case = dict(params)
        if module is None:
            n = params["num_parameters"]
            module = nn.PReLU(n)
            with torch.no_grad():
                module.weight.copy_(torch.rand(n, generator=gen) * 1.5 - 0.5)
            case["weight"] = [float(v) for v in module.weight.detach().tolist()]
        with torch.no_grad():
            y = module(x)
        flat = lambda t: [float(v) for v in t.reshape(-1).tolist()]
        case.update({"name": name, "input_shape": shape, "input": flat(x), "output": flat(y)})
        cases.append(case)
    for i, (name, op, shape) in enumerate(CHANNEL_CASES):
        cases.append(channel_case(i, name, op, shape))
    # torchvision's LayerNorm2d (ConvNeXt): layer norm over each pixel's channels
    from torchvision.models.convnext import LayerNorm2d
    for i, (name, shape, eps) in enumerate([("layer_norm_2d_2x6x3x5", [2, 6, 3, 5], 1e-6),
                                            ("layer_norm_2d_1x9x4x4_eps1e-5", [1, 9, 4, 4], 1e-5)]):
        gen = torch.Generator().manual_seed(9500 + i)
        x = torch.randn(shape, generator=gen) * 2.0 + 1.0
        ln = LayerNorm2d(shape[1], eps=eps)
        with torch.no_grad():
            ln.weight.copy_(torch.rand(shape[1], generator=gen) + 0.5)
            ln.bias.copy_(torch.randn(shape[1], generator=gen))
            y = ln(x)
        flat = lambda t: [float(v) for v in t.reshape(-1).tolist()]
        cases.append({"op": "layer_norm_2d", "name": name, "eps": eps, "input_shape": shape,
                      "weight": flat(ln.weight), "bias": flat(ln.bias), "input": flat(x),
                      "output": flat(y)})
    with open(OUT, "w") as f:
        json.dump(cases, f)
    print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT)} bytes), "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
