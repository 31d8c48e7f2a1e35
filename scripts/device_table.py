#!/usr/bin/env python3
"""Joins the device benchmark's outputs (`segblocks <net> <ms> ...` and
`torch_<precision>_<dev> <net> <ms>` lines, in any files given) into a markdown table
with ratios (segblocks time / PyTorch time: below 1 is faster).
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
peers = [c for c in columns if c != "segblocks"]
head = ["network", "segblocks ms"] + [f"{p} ms" for p in peers] + [f"ratio vs {p}" for p in peers]
print("| " + " | ".join(head) + " |")
print("|" + " --- |" * len(head))
for net, r in rows.items():
    ours = r.get("segblocks")
    cells = [net, f"{ours:.3f}" if ours else "-"]
    cells += [f"{r[p]:.3f}" if p in r else "-" for p in peers]
    cells += [f"{ours / r[p]:.2f}x" if ours and p in r else "-" for p in peers]
    print("| " + " | ".join(cells) + " |")
