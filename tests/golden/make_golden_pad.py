#!/usr/bin/env python3
"""Writes tests/golden/pad.json: F.pad on the last two dimensions of small float32 inputs,
every mode (constant with a value, reflect, replicate, circular), pads of either sign
(negative ones crop), read by tests/copy.rs.

Run from the repository root:  /path/to/venv/bin/python tests/golden/make_golden_pad.py
"""

import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pad.json")

# name, input shape, (left, right, top, bottom), mode, value
CASES = [
    ("constant_zero_1111", [2, 3, 4, 5], (1, 1, 1, 1), "constant", 0.0),
    ("constant_value_asym", [1, 2, 3, 4], (2, 0, 1, 3), "constant", 1.5),
    ("constant_negative_crop", [1, 2, 5, 6], (-1, 2, -2, 1), "constant", -0.5),
    ("reflect_2121", [2, 2, 4, 5], (2, 1, 2, 1), "reflect", None),
    ("reflect_max_pads", [1, 1, 4, 5], (4, 4, 3, 3), "reflect", None),
    ("reflect_negative", [1, 2, 5, 6], (-2, 3, 1, -1), "reflect", None),
    ("replicate_wide", [1, 2, 3, 4], (5, 2, 4, 0), "replicate", None),
    ("replicate_negative", [2, 1, 5, 6], (3, -2, -1, 2), "replicate", None),
    ("circular_3131", [1, 2, 4, 5], (3, 1, 3, 1), "circular", None),
    ("circular_full_size", [1, 1, 3, 4], (4, 4, 3, 3), "circular", None),
    ("circular_negative", [2, 2, 5, 6], (-1, 2, 2, -1), "circular", None),
]


def main():
    torch.set_num_threads(1)
    cases = []
    for i, (name, shape, pad, mode, value) in enumerate(CASES):
        gen = torch.Generator().manual_seed(9100 + i)
        x = torch.randn(shape, generator=gen, dtype=torch.float32)
        kwargs = {"mode": mode}
        if mode == "constant":
            kwargs["value"] = value
        y = F.pad(x, pad, **kwargs)
        flat = lambda t: [float(v) for v in t.reshape(-1).tolist()]
        cases.append({"name": name, "pad": list(pad), "mode": mode, "value": value or 0.0,
                      "input_shape": shape, "input": flat(x), "output_shape": list(y.shape),
                      "output": flat(y)})
    with open(OUT, "w") as f:
        json.dump(cases, f)
    print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT)} bytes), "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
