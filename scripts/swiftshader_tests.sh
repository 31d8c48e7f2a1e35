#!/usr/bin/env bash
# Every GPU test again on SwiftShader, Google's Vulkan on the CPU (the adapter Chrome
# falls back to), a third conformant driver with a shader compiler of its own (Subzero):
# it found activations that lost NaN where lavapipe and llvmpipe kept it. Its ICD comes
# with the Chromium that scripts/web_smoke.sh unpacks into target/web-tools; where that
# did not run, this says so and stops with success (SEGBLOCKS_WEB_TOOLS_OPTIONAL=1, CI)
# or fails. tests/precision.rs is left out: it needs SHADER_F16, which SwiftShader lacks.
# Of the networks' golden cases it runs the first of each kind: all 327 take SwiftShader
# over 20 minutes, which CI cannot spare; lavapipe runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
icd="$PWD/target/web-tools/chromium/browser/vk_swiftshader_icd.json"
if [ ! -f "$icd" ]; then
    echo "SwiftShader tests NOT RUN: $icd is missing (scripts/web_smoke.sh unpacks it)"
    [ "${SEGBLOCKS_WEB_TOOLS_OPTIONAL:-0}" = 1 ] && exit 0
    exit 1
fi
targets=()
for t in tests/*.rs; do
    name=$(basename "$t" .rs)
    [ "$name" = precision ] || targets+=(--test "$name")
done
export SEGBLOCKS_NETWORKS=one-per-kind VK_ICD_FILENAMES="$icd" WGPU_BACKEND=vulkan
# With cargo-nextest every test is a process of its own and two run at once across the
# files (cargo test runs the files one after another, and a file's last long test alone).
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast --test-threads 2 "${targets[@]}"
else
    cargo test "${targets[@]}"
fi
