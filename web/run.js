// Runs the smoke test in Deno (scripts/web_smoke.sh): the module built by wasm-bindgen
// `--target deno` loads itself; a rejected run exits non-zero.
import { run } from "./pkg/segblocks_web_smoke.js";
console.log(await run());
