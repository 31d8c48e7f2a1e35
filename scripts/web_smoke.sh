#!/usr/bin/env bash
# The library on the web: builds segblocks for wasm32-unknown-unknown (WebGPU), lints
# that build, and runs the smoke test of web/ (every convolution kernel against the
# reference, MediaPipe's selfie network against TFLite on both kernel classes, frames in
# flight, blocking calls refused) in Deno, whose WebGPU runs on this machine's adapter
# (lavapipe here). Installs what it needs into target/web-tools: the wasm32 target
# (rustup), wasm-bindgen's CLI at the version web/Cargo.lock uses (cargo install) and
# Deno (from PyPI). Then validates the same calls on Dawn, Chrome's WebGPU, in Node (npm's
# `webgpu` package, into target/web-tools/dawn). Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/target/web-tools"
mkdir -p "$tools"

# With SEGBLOCKS_WEB_TOOLS_OPTIONAL=1 (CI) a machine that cannot install the tools (no
# network) says so and stops here with success; a failed check always fails.
install_tools() {
    rustup target add wasm32-unknown-unknown || return 1
    local version
    version=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' web/Cargo.lock)
    if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qF "$version"; then
        cargo install -q wasm-bindgen-cli --version "$version" --root "$tools" || return 1
    fi
    if [ ! -x "$tools/deno/bin/deno" ]; then
        { python3 -m venv "$tools/deno" && "$tools/deno/bin/pip" install -q deno==2.9.8; } \
            || { rm -rf "$tools/deno"; return 1; }
    fi
}
if ! install_tools; then
    if [ "${SEGBLOCKS_WEB_TOOLS_OPTIONAL:-0}" = 1 ]; then
        echo "web smoke test NOT RUN: could not install its tools (see above)"
        exit 0
    fi
    exit 1
fi

# The library's web build, warnings denied (its wasm32-only code is compiled only here).
cargo clippy -q --lib --target wasm32-unknown-unknown -- -D warnings

cd web
cargo fmt --check
CARGO_TARGET_DIR="$root/target/web" cargo clippy -q --release --target wasm32-unknown-unknown -- -D warnings
CARGO_TARGET_DIR="$root/target/web" cargo build -q --release --target wasm32-unknown-unknown
"$tools/bin/wasm-bindgen" --target deno --out-dir "$root/target/web/pkg" \
    "$root/target/web/wasm32-unknown-unknown/release/segblocks_web_smoke.wasm"
cp run.js "$root/target/web/"
"$tools/deno/bin/deno" run --unstable-webgpu --allow-read "$root/target/web/run.js"

# The same calls validated by Dawn, Chrome's WebGPU, and its shader compiler Tint
# (stricter than naga: uniformity, constant expressions, the default limits), on Dawn's
# null backend in Node: every shader, pipeline and command checked, nothing run.
dawn="$tools/dawn"
if ! { command -v node >/dev/null && [ -f "$dawn/node_modules/webgpu/index.js" ]; } \
    && ! { command -v npm >/dev/null \
        && npm install -s --no-save --no-package-lock --prefix "$dawn" webgpu@0.6.2; }; then
    if [ "${SEGBLOCKS_WEB_TOOLS_OPTIONAL:-0}" = 1 ]; then
        echo "Dawn validation NOT RUN: could not install Node's webgpu package (see above)"
        exit 0
    fi
    exit 1
fi
"$tools/bin/wasm-bindgen" --target web --out-dir "$root/target/web/pkg-web" \
    "$root/target/web/wasm32-unknown-unknown/release/segblocks_web_smoke.wasm"
echo '{"type": "module"}' > "$root/target/web/pkg-web/package.json"
node run_dawn.mjs "$root/target/web/pkg-web" "$dawn/node_modules/webgpu"
