// What attention costs in the browser: in headless Chromium with WebGPU (SwiftShader here),
// an attention network timed run for run alternately with its backbone, with fusion on and
// off, `--runs` rounds in a row, each the median of `--iters` paired ratios (each round's pair
// in either order). Deterministic weights, batch 1, 224×224; needs web/pkg (bash
// web/build.sh). Prints one JSON line per round and fusion mode.
//   node bench/attention-browser.mjs [--iters N] [--runs N] [ARCH BACKBONE]
import { launchChromium, serveRoot } from './browser.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => Number(args[args.indexOf(name) + 1] ?? fallback) || fallback;
const iters = option('--iters', 9);
const runs = option('--runs', 3);
const named = args.filter((a, i) => !a.startsWith('--') && !['--iters', '--runs'].includes(args[i - 1]));
const [arch, backbone] = named.length === 2 ? named : ['mobilenet_v2_ca', 'mobilenet_v2'];

const server = await serveRoot('<!doctype html><title>attention</title>');
const browser = await launchChromium();
try {
  for (let run = 0; run < runs; run++) {
    for (const fusion of ['on', 'off']) {
      const page = await browser.newPage();
      await page.goto(`${server.url}/`);
      const line = await page.evaluate(async ({ arch, backbone, fusion, iters }) => {
        const { default: init, Session } = await import('/web/pkg/gaze.js');
        await init();
        const make = (a) => Session.create_deterministic(JSON.stringify({ arch: a, device: 'gpu', tune: 'off', fusion }));
        const [model, base] = [await make(arch), await make(backbone)];
        const time = async (s) => JSON.parse(await s.benchmark(1)).times_ms[0];
        await time(model);
        await time(base);
        const ratios = [];
        for (let i = 0; i < iters; i++) {
          let m, b;
          if (i % 2) {
            b = await time(base);
            m = await time(model);
          } else {
            m = await time(model);
            b = await time(base);
          }
          ratios.push(m / b);
        }
        const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
        const out = { arch, backbone, fusion, adapter: model.adapter(), iters, paired_ratio: median(ratios) };
        model.dispose();
        base.dispose();
        return out;
      }, { arch, backbone, fusion, iters });
      console.log(JSON.stringify({ run, ...line }));
      await page.close();
    }
  }
} finally {
  await browser.close();
  server.close();
}
