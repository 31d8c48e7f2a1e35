#!/usr/bin/env python3
"""Writes tests/golden/avg_pool.json: F.avg_pool2d on small float32 cases (kernel, stride,
padding, ceil_mode, count_include_pad, divisor_override), read by tests/pool.rs.

Run from the repository root:  /path/to/venv/bin/python tests/golden/make_golden_avgpool.py
"""

import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "avg_pool.json")

# name, input shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
CASES = [
    ("k2", [2, 3, 6, 8], 2, 2, 0, False, True, None),
    ("k3_s2_p1", [1, 2, 9, 7], 3, 2, 1, False, True, None),
    ("k3_s2_p1_exclude_pad", [1, 2, 9, 7], 3, 2, 1, False, False, None),
    ("k3_s2_ceil", [1, 2, 8, 7], 3, 2, 0, True, True, None),
    ("k3_s2_p1_ceil_exclude", [1, 2, 6, 6], 3, 2, 1, True, False, None),
    ("k2x3_s1x2_p1x1", [1, 3, 5, 7], (2, 3), (1, 2), (1, 1), False, True, None),
    ("divisor_override", [1, 2, 7, 7], 3, 2, 1, False, True, 5),
]


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def main():
    torch.set_num_threads(1)
    cases = []
    for i, (name, shape, k, s, p, ceil, cip, div) in enumerate(CASES):
        torch.manual_seed(8000 + i)
        x = torch.randn(*shape)
        y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
        flat = lambda t: [float(v) for v in t.reshape(-1).tolist()]
        cases.append({"name": name, "kernel_size": pair(k), "stride": pair(s), "padding": pair(p),
                      "ceil_mode": ceil, "count_include_pad": cip, "divisor_override": div,
                      "input_shape": shape, "input": flat(x), "output_shape": list(y.shape),
                      "output": flat(y)})
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
