// Runs the smoke test's `run` in a browser: headless Chromium (npm's @sparticuz/chromium,
// a Chromium build that carries SwiftShader, Vulkan on the CPU) driven by puppeteer-core.
// Its WebGPU is Chrome's own (Dawn, and Tint for WGSL) on SwiftShader, so every check
// runs and every value is compared. Usage (scripts/web_smoke.sh):
//   node run_chrome.mjs PKG_DIR NODE_MODULES_DIR BROWSER_DIR
// BROWSER_DIR receives the unpacked browser (once).
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { pathToFileURL } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';

const [pkg, modules, browserDir] = process.argv.slice(2);

// The package ships the browser and its libraries brotli-compressed.
const packed = join(modules, '@sparticuz', 'chromium', 'bin');
const chromium = join(browserDir, 'chromium');
if (!existsSync(chromium)) {
  mkdirSync(browserDir, { recursive: true });
  for (const archive of ['swiftshader.tar.br', 'al2023.tar.br']) {
    const tar = brotliDecompressSync(readFileSync(join(packed, archive)));
    execFileSync('tar', ['xf', '-', '-C', browserDir], { input: tar });
  }
  writeFileSync(`${chromium}.part`, brotliDecompressSync(readFileSync(join(packed, 'chromium.br'))));
  chmodSync(`${chromium}.part`, 0o755);
  renameSync(`${chromium}.part`, chromium);
}

// WebGPU needs a secure context: the page and the module come from localhost.
const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const server = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
  if (path === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>segblocks web smoke test</title>');
    return;
  }
  const file = join(pkg, path);
  if (!file.startsWith(pkg) || !existsSync(file)) {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
  res.end(readFileSync(file));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://localhost:${server.address().port}`;

const { default: puppeteer } = await import(
  pathToFileURL(join(modules, 'puppeteer-core', 'lib', 'esm', 'puppeteer', 'puppeteer-core.js'))
);
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: 'shell',
  protocolTimeout: 0,
  args: [
    '--no-sandbox',
    '--no-zygote',
    '--disable-gpu-sandbox',
    '--enable-unsafe-webgpu',
    '--enable-unsafe-swiftshader',
    '--enable-features=Vulkan',
    '--use-vulkan=swiftshader',
    '--use-angle=swiftshader',
    '--use-webgpu-adapter=swiftshader',
    '--ignore-gpu-blocklist',
  ],
  env: { ...process.env, LD_LIBRARY_PATH: `${browserDir}:${join(browserDir, 'lib')}` },
});
let failed = true;
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(m.text()));
  await page.goto(origin);
  console.log(await page.evaluate(() => navigator.userAgent));
  const report = await page.evaluate(async () => {
    const module = await import('/segblocks_web_smoke.js');
    await module.default();
    try {
      return { ok: await module.run() };
    } catch (e) {
      return { error: String(e) };
    }
  });
  if (report.ok !== undefined) {
    console.log(report.ok);
    failed = false;
  } else {
    console.error(`FAILED: ${report.error}`);
  }
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
