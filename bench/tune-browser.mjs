// What tuning costs and gains in the browser: for each network, in headless Chromium with
// WebGPU (SwiftShader here), a session tunes from an empty cache (how long it takes, how many
// convs it measured, for how many it overrules the heuristic), then it is timed run for run
// alternately with a session on the heuristic's kernels (tune "off"), as the median of the
// paired ratios. Deterministic weights, batch 1, 224×224; needs web/pkg (bash web/build.sh).
// Prints one JSON line per network.
//   node bench/tune-browser.mjs [--iters N] ARCH...
import { launchChromium, serveRoot } from './browser.mjs';

const args = process.argv.slice(2);
const iters = Number(args[args.indexOf('--iters') + 1] ?? 5) || 5;
const archs = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--iters');

const server = await serveRoot('<!doctype html><title>tune</title>');
const browser = await launchChromium();
try {
  for (const arch of archs) {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    const line = await page.evaluate(async ({ arch, iters }) => {
      const { default: init, Session } = await import('/web/pkg/gaze.js');
      await init();
      const make = (tune) => Session.create_deterministic(JSON.stringify({ arch, device: 'gpu', tune, tune_cache: '{"format": 1, "adapters": []}' }));
      const off = await make('off');
      const tuned = await make('on');
      const report = JSON.parse(await tuned.tune());
      const time = async (s) => JSON.parse(await s.benchmark(1)).times_ms[0];
      await time(off);
      await time(tuned);
      const ratios = [];
      const [a, b] = [[], []];
      for (let i = 0; i < iters; i++) {
        // Each round's pair in either order, so neither always runs on a warmer machine.
        const pair = i % 2 ? [await time(off), await time(tuned)].reverse() : [await time(tuned), await time(off)];
        a.push(pair[0]);
        b.push(pair[1]);
        ratios.push(pair[0] / pair[1]);
      }
      const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
      const variants = JSON.parse(tuned.kernel_variants()).map((v) => v.variant).filter((v) => v.startsWith('conv2d'));
      const counts = {};
      for (const v of variants) counts[v] = (counts[v] ?? 0) + 1;
      const out = {
        arch,
        adapter: tuned.adapter(),
        tuning_ms: report.tuning_ms,
        measured: report.measured.length,
        differ: report.measured.filter((m) => m.variant !== m.heuristic).length,
        tuned_median_ms: median(a),
        heuristic_median_ms: median(b),
        paired_ratio: median(ratios),
        variants: counts,
      };
      off.dispose();
      tuned.dispose();
      return out;
    }, { arch, iters });
    console.log(JSON.stringify(line));
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
