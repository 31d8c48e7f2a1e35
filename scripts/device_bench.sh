#!/usr/bin/env bash
# The device benchmark (issue 15): segblocks on wgpu's Vulkan backend against PyTorch with
# cuDNN (fp32 and fp16), the same networks at the same sizes, side by side with ratios.
#
# On the machine with the GPU, from the repository root:
#   scripts/device_bench.sh [--quick]
# It needs the example built (`cargo build --release --example device_bench`, here or
# carried as target/release/examples/device_bench), a Vulkan loader (the device tool's
# README: unpack .gl/*.deb first) and python3 with torch and torchvision.
# Writes $OUT (or target/device_bench) / segblocks.txt, torch.txt and table.md.
set -euo pipefail
out="${OUT:-target/device_bench}"
mkdir -p "$out"
bin=target/release/examples/device_bench
if [ ! -x "$bin" ]; then
    cargo build --release --example device_bench
fi
"$bin" "$@" 2>&1 | tee "$out/segblocks.txt"
python3 benches/torch_device.py "$@" 2>&1 | tee "$out/torch.txt"
python3 scripts/device_table.py "$out/segblocks.txt" "$out/torch.txt" | tee "$out/table.md"
