#!/usr/bin/env bash
# The library on the web: builds segblocks for wasm32-unknown-unknown (WebGPU), lints
# that build, and runs the smoke test of web/ (every convolution kernel against the
# reference, MediaPipe's selfie network against TFLite on both kernel classes, frames in
# flight, blocking calls refused) in Deno, whose WebGPU runs on this machine's adapter
# (lavapipe here). Installs what it needs into target/web-tools: the wasm32 target
# (rustup), wasm-bindgen's CLI at the version web/Cargo.lock uses (cargo install) and
# Deno (from PyPI). Then validates the same calls on Dawn, Chrome's WebGPU, in Node (npm's
# `webgpu` package), and runs them in headless Chromium on SwiftShader (npm's
# `@sparticuz/chromium`, driven by `puppeteer-core`), both into target/web-tools. Exits
# non-zero when a check fails.
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

# The module for a page (and for Node's import).
"$tools/bin/wasm-bindgen" --target web --out-dir "$root/target/web/pkg-web" \
    "$root/target/web/wasm32-unknown-unknown/release/segblocks_web_smoke.wasm"
echo '{"type": "module"}' > "$root/target/web/pkg-web/package.json"

# node_packages NAME MARKER PACKAGE...: the npm packages into target/web-tools/NAME
# (once: MARKER is a package whose presence says they are there); where they cannot be
# installed, CI says the step is not run and goes on.
node_packages() {
    local dir="$tools/$1" marker="$2"
    shift 2
    if command -v node >/dev/null && [ -f "$dir/node_modules/$marker/package.json" ]; then
        return 0
    fi
    command -v npm >/dev/null \
        && npm install -s --no-save --no-package-lock --prefix "$dir" "$@" \
        && return 0
    if [ "${SEGBLOCKS_WEB_TOOLS_OPTIONAL:-0}" = 1 ]; then
        echo "NOT RUN: could not install $* from npm (see above)"
        return 1
    fi
    exit 1
}

# The same calls validated by Dawn, Chrome's WebGPU, and its shader compiler Tint
# (stricter than naga: uniformity, constant expressions, WebGPU's default limits), on
# Dawn's null backend in Node: every shader (f16 too), pipeline and command checked,
# nothing run.
if node_packages dawn webgpu webgpu@0.6.2; then
    node run_dawn.mjs "$root/target/web/pkg-web" "$tools/dawn/node_modules/webgpu"
fi

# And run in a browser: headless Chromium (with SwiftShader, Vulkan on the CPU), whose
# WebGPU is Chrome's on SwiftShader: every check run, every value compared.
if node_packages chromium puppeteer-core puppeteer-core@24.43.1 @sparticuz/chromium@153.0.0; then
    node run_chrome.mjs "$root/target/web/pkg-web" "$tools/chromium/node_modules" \
        "$tools/chromium/browser"
fi
