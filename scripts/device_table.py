#!/usr/bin/env python3
"""Joins the device benchmark's outputs (`segblocks[_f16] <net> <ms> ...` and
`torch_<precision>_<dev> <net> <ms>` lines, in any files given) into a markdown table
with ratios (segblocks time / PyTorch time at the same precision: below 1 is faster;
segblocks' f32 against PyTorch's `tf32` (its default for convolutions) and `fp32`
(IEEE), f16 against `fp16`).
Usage: python scripts/device_table.py segblocks.txt torch.txt"""
import sys

rows, columns = {}, []
for path in sys.argv[1:]:
    for line in open(path):
        parts = line.split()
        # Result lines start at the margin; profiles are indented, comments start with #.
        if len(parts) < 3 or line[0] in "# \t":
            continue
        try:
            ms = float(parts[2])
        except ValueError:
            continue
        who, net = parts[0], parts[1]
        rows.setdefault(net, {})[who] = ms
        if who not in columns:
            columns.append(who)
ours_cols = [c for c in columns if c.startswith("segblocks")]
peers = [c for c in columns if not c.startswith("segblocks")]


def precision(who):
    """fp16 for `segblocks_f16` and `torch_fp16_*`, fp32 otherwise."""
    return "fp16" if ("f16" in who or "fp16" in who) else "fp32"


# Each segblocks column against the peers of its precision (f32 vs fp32, f16 vs fp16).
pairs = [(o, p) for o in ours_cols for p in peers if precision(o) == precision(p)]
head = ["network"] + [f"{c} ms" for c in ours_cols + peers]
head += [f"{o} / {p}" for o, p in pairs]
print("| " + " | ".join(head) + " |")
print("|" + " --- |" * len(head))
for net, r in rows.items():
    cells = [net] + [f"{r[c]:.3f}" if c in r else "-" for c in ours_cols + peers]
    cells += [f"{r[o] / r[p]:.2f}x" if o in r and p in r else "-" for o, p in pairs]
    print("| " + " | ".join(cells) + " |")
