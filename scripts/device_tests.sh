#!/usr/bin/env bash
# The library's GPU tests on a machine with a real GPU (issue 15), from prebuilt test
# binaries: every kernel the device class picks there (workgroup-tiled convolutions, fused
# blocks, f16) against the CPU reference and the PyTorch / TFLite goldens.
#
# Here (a machine with cargo):
#   scripts/device_tests.sh --build DIR TEST...   copies the release test binaries of TEST...
#                                                 (stripped) into DIR, to carry
# There (from the repository root, Vulkan loader unpacked as the device tool's README says):
#   scripts/device_tests.sh --run DIR SECONDS     runs the binaries in DIR side by side, at most
#                                                 SECONDS each; logs and a summary under $OUT
set -uo pipefail
case "${1:-}" in
--build)
    dir=$2
    shift 2
    mkdir -p "$dir"
    for t in "$@"; do
        exe=$(cargo test --release --no-run --test "$t" --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
        strip -o "$dir/$t" "$exe"
    done
    ls -la "$dir"
    ;;
--run)
    dir=$2
    secs=$3
    out="${OUT:-target/device_tests}"
    mkdir -p "$out"
    # All at once: the CPU references use the host's cores, the GPU work is small.
    for exe in "$dir"/*; do
        (
            t=$(basename "$exe")
            start=$(date +%s)
            timeout "$secs" "$exe" --test-threads=2 >"$out/test_$t.log" 2>&1
            rc=$?
            summary=$(grep -E "^test result:" "$out/test_$t.log" | tail -1)
            echo "$t rc=$rc $(($(date +%s) - start))s ${summary:-no result (timed out?)}" >>"$out/tests_summary.txt"
        ) &
    done
    wait
    sort "$out/tests_summary.txt"
    grep -hE "^test .* FAILED$|panicked at" "$out"/test_*.log | head -30
    ;;
*)
    echo "usage: $0 --build DIR TEST... | --run DIR SECONDS" >&2
    exit 2
    ;;
esac
