// gaze's wasm build, ONNX Runtime Web's and TF.js's WebGPU backends on the same model and
// weights (bench/out, from export_models.py), in one headless Chromium with WebGPU. Prints one
// JSON line per (runtime, arch): cold ms, warm times, median, and for the peers the largest
// difference of their logits from PyTorch's, relative to PyTorch's largest logit. Run by
// bench/compare.sh.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { launchChromium, ROOT, serveRoot } from './browser.mjs';

const args = process.argv.slice(2);
const iters = Number(args[args.indexOf('--iters') + 1] ?? 3) || 3;
const archs = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--iters');

const server = await serveRoot();
const url = `${server.url}/bench/compare.html`;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const browser = await launchChromium();
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
