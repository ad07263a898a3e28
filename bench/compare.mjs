// gaze's wasm build, ONNX Runtime Web's and TF.js's WebGPU backends on the same model and
// weights (bench/out, from export_models.py), in one headless Chromium with WebGPU. Prints one
// JSON line per (runtime, arch): cold ms, warm times, median, and for the peers the largest
// difference of their logits from PyTorch's, relative to PyTorch's largest logit. Run by
// bench/compare.sh.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { execSync } from 'node:child_process';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
const args = process.argv.slice(2);
const iters = Number(args[args.indexOf('--iters') + 1] ?? 3) || 3;
const archs = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--iters');

const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
  if (path.includes('..')) { res.writeHead(400).end(); return; }
  try {
    const body = await readFile(join(ROOT, path));
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}/bench/compare.html`;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const executablePath = execSync('command -v chromium', { encoding: 'utf8' }).trim();
const browser = await chromium.launch({ executablePath, args: ['--enable-unsafe-webgpu'] });
let failed = false;
try {
  for (const arch of archs) {
    const expected = JSON.parse(await readFile(join(ROOT, `bench/out/${arch}.expected.json`), 'utf8')).logits;
    const scale = Math.max(...expected.map(Math.abs));
    const runners = { gaze: 'runGaze', ort: 'runOrt', tfjs: 'runTfjs' };
    for (const runtime of Object.keys(runners)) {
      // A fresh page per run: neither runtime inherits the other's device or caches.
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url);
      await page.waitForFunction(() => window.ready);
      try {
        const r = await page.evaluate(([f, a, n]) => window[f](a, n), [runners[runtime], arch, iters]);
        const line = { runtime, arch, cold_ms: r.cold, times_ms: r.times, median_ms: median(r.times) };
        if (r.logits) {
          const err = r.logits.length === expected.length ? Math.max(...r.logits.map((v, i) => Math.abs(v - expected[i]))) : Infinity;
          line.rel_err = err / scale;
        }
        console.log(JSON.stringify(line));
      } catch (e) {
        failed = true;
        console.log(JSON.stringify({ runtime, arch, error: String(e.message ?? e).split('\n')[0], page_errors: errors }));
      }
      await page.close();
    }
  }
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
