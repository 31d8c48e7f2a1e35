// Runs the smoke test's `validate` in Node on Dawn, Chrome's WebGPU (npm's `webgpu`
// package, dawn.node), on its null backend: Dawn and its shader compiler Tint check
// every shader, pipeline and command as Chrome would, and nothing runs (no driver here
// that Dawn accepts), so values are not compared. Usage (scripts/web_smoke.sh):
//   node run_dawn.mjs PKG_DIR WEBGPU_PACKAGE_DIR
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkg, webgpu] = process.argv.slice(2);
const { create, globals } = await import(pathToFileURL(join(webgpu, 'index.js')));
const bindings = await import(pathToFileURL(join(pkg, 'segblocks_web_smoke.js')));
Object.assign(globalThis, globals);
// wgpu finds WebGPU as a browser window's `navigator.gpu`.
globalThis.Window = class Window {};
Object.defineProperty(globalThis, 'navigator', {
  value: { gpu: create(['backend=null']) },
  configurable: true,
});
await bindings.default({
  module_or_path: readFileSync(join(pkg, 'segblocks_web_smoke_bg.wasm')),
});
try {
  console.log(await bindings.validate());
  process.exit(0);
} catch (e) {
  console.error(`FAILED: ${e}`);
  process.exit(1);
}
