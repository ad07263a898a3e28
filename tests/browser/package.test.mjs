// gaze-web as an app gets it: the tarball of `npm pack web/pkg`, installed into a fresh folder
// with a minimal page that imports it through an import map (no bundler), driven in headless
// Chromium on WebGPU (SwiftShader) and on the CPU fallback, directly and in a Worker.
//
// Run from the repository root after `bash web/build.sh` and `cargo build --release`:
//   (cd tests/browser && npm ci) && node tests/browser/package.test.mjs
import { execFileSync, execSync } from 'node:child_process';
import { createServer } from 'node:http';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GAZE = process.env.GAZE_BIN ?? join(ROOT, 'target', 'release', 'gaze');
const MANIFEST = join(ROOT, 'web', 'models', 'models.json');
const PARITY = join(ROOT, '..', 'shared', 'parity');
// The same bound as the demo's test: browser and native run the same f32 kernels in other
// orders, so probabilities differ by ~1e-6; a wrong weight or preprocessing step moves them more.
const PROBABILITY_TOLERANCE = 1e-4;
const EXECUTABLE = execSync('command -v chromium', { encoding: 'utf8' }).trim();
const TIMEOUT_MS = 180_000;
const CYCLES = 20;

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures += 1;
}

// The app: the packed tarball installed with npm, the page, and the files it loads.
function makeApp() {
  const dir = mkdtempSync(join(tmpdir(), 'gaze-web-app-'));
  const tarball = execFileSync('npm', ['pack', join(ROOT, 'web', 'pkg'), '--pack-destination', dir, '--silent'], { encoding: 'utf8' }).trim().split('\n').pop();
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', join(dir, tarball)], { cwd: dir });
  writeFileSync(join(dir, 'index.html'), `<!doctype html>
<meta charset="utf-8"><title>an app using gaze-web</title><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"gaze-web": "./node_modules/gaze-web/index.js", "gaze-web/worker": "./node_modules/gaze-web/worker.js"}}</script>
<script type="module">
  import { Session, liveGpuBytes } from 'gaze-web';
  import { WorkerSession } from 'gaze-web/worker';
  window.gaze = { Session, WorkerSession, liveGpuBytes };
  window.appReady = true;
</script>`);
  cpSync(join(ROOT, 'web', 'samples'), join(dir, 'samples'), { recursive: true });
  cpSync(join(ROOT, 'web', 'models'), join(dir, 'models'), { recursive: true, filter: (f) => !f.endsWith('.py') });
  cpSync(PARITY, join(dir, 'parity'), { recursive: true, filter: (f) => !f.endsWith('.py') });
  return { dir, tarball };
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png' };

// A static server that counts the requests per path, to tell a download from a cache hit.
function serve(dir) {
  const hits = new Map();
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const file = path.endsWith('/') ? `${path}index.html` : path;
    try {
      const body = readFileSync(join(dir, file));
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, hits, url: `http://127.0.0.1:${server.address().port}/` })));
}

function native(entry, files) {
  const out = execFileSync(GAZE, ['classify', '--manifest', MANIFEST, '--model', entry.id, '--json', ...files.map((f) => join(ROOT, 'web', 'samples', f))], { encoding: 'utf8', maxBuffer: 256 << 20 });
  return out.trim().split('\n').map((l) => JSON.parse(l));
}

async function openApp(browser, url, errors) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => window.appReady === true, null, { timeout: TIMEOUT_MS });
  return page;
}

// ---- in the page ------------------------------------------------------------------------------

// Defined in the page by `install`: npy reading, session options, the image forms.
function pageHelpers() {
  window.npy = async (url) => {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const headerLength = bytes[8] | (bytes[9] << 8);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLength));
    const dims = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
    const start = 10 + headerLength;
    // The expected outputs are float64, the inputs float32.
    const Type = header.includes("'<f8'") ? Float64Array : Float32Array;
    const data = new Type(bytes.slice(start).buffer);
    return { data: Type === Float32Array ? data : Float32Array.from(data), dims };
  };
  window.relL2 = (a, b) => {
    let num = 0; let den = 0;
    for (let i = 0; i < b.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
    return Math.sqrt(num / den);
  };
  window.codeOf = (promise) => promise.then(() => 'resolved', (e) => `${e instanceof Error ? 'Error' : typeof e}:${e.code}`);
  window.imageForms = async (file) => {
    const bytes = new Uint8Array(await (await fetch(`samples/${file}`)).arrayBuffer());
    const img = new Image();
    img.src = `samples/${file}`;
    await img.decode();
    const bitmap = await createImageBitmap(new Blob([bytes]));
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    const imageData = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    return { bytes, img, bitmap, imageData, canvas };
  };
}

async function runParity(page, make, options) {
  return page.evaluate(async ({ make, options, cases }) => {
    const results = [];
    for (const name of cases) {
      const c = await (await fetch(`parity/${name}/case.json`)).json();
      const opts = Object.fromEntries(c.opts.map((o) => o.split('=')));
      const s = await gaze[make].create({ ...options, weights: `parity/${name}/${c.weights}`, arch: c.arch, options: opts });
      const inputs = await Promise.all(c.inputs.map((f) => npy(`parity/${name}/${f}`)));
      const expected = await npy(`parity/${name}/expected.npy`);
      const y = await s.run(inputs.length === 1 ? inputs[0] : inputs);
      const tolerance = Math.max(1e-4, 20 * c.torch_fp32_rel_l2);
      results.push({ name, err: relL2(y.data, expected.data), tolerance, dims: y.dims, want: c.output_shape });
      s.dispose();
    }
    return results;
  }, { make, options, cases: readdirSync(PARITY).filter((d) => !d.includes('.')) });
}

async function classifyForms(page, make, options, files) {
  return page.evaluate(async ({ make, options, files }) => {
    const s = await gaze[make].create(options);
    const out = {};
    for (const file of files) {
      const forms = await imageForms(file);
      out[file] = {};
      for (const [form, image] of Object.entries(forms)) {
        out[file][form] = Array.from((await s.classify(image, { topK: 3 })).probabilities);
      }
      if (make === 'Session') {
        // Where the browser has no decoder, gaze's own decodes the bytes.
        const saved = window.createImageBitmap;
        window.createImageBitmap = undefined;
        try {
          out[file]['bytes without a browser decoder'] = Array.from((await s.classify(forms.bytes.slice())).probabilities);
        } finally {
          window.createImageBitmap = saved;
        }
      }
    }
    s.dispose();
    return out;
  }, { make, options, files });
}

// A JPEG, and the same bytes with an EXIF APP1 segment saying "rotate 90° clockwise to show"
// (orientation 6); the tagged one must classify as the untagged one rotated in pixels.
async function exifRotation(page, make, options) {
  return page.evaluate(async ({ make, options }) => {
    const img = new Image();
    img.src = 'samples/ankle_boot.png';
    await img.decode();
    const src = new OffscreenCanvas(40, 28);
    const ctx = src.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, 40, 28);
    ctx.drawImage(img, 12, 0);
    const jpeg = new Uint8Array(await (await src.convertToBlob({ type: 'image/jpeg', quality: 0.95 })).arrayBuffer());
    const exif = [0xff, 0xe1, 0x00, 0x22, 0x45, 0x78, 0x69, 0x66, 0x00, 0x00, 0x4d, 0x4d, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x08,
      0x00, 0x01, 0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    const tagged = new Uint8Array(jpeg.length + exif.length);
    tagged.set(jpeg.subarray(0, 2));
    tagged.set(exif, 2);
    tagged.set(jpeg.subarray(2), 2 + exif.length);
    const plain = await createImageBitmap(new Blob([jpeg]), { imageOrientation: 'none', colorSpaceConversion: 'none' });
    const rotated = new OffscreenCanvas(plain.height, plain.width);
    const r = rotated.getContext('2d');
    r.translate(plain.height, 0);
    r.rotate(Math.PI / 2);
    r.drawImage(plain, 0, 0);
    const s = await gaze[make].create(options);
    const a = Array.from((await s.classify(new Blob([tagged]))).probabilities);
    const b = Array.from((await s.classify(r.getImageData(0, 0, rotated.width, rotated.height))).probabilities);
    const c = Array.from((await s.classify(plain)).probabilities);
    s.dispose();
    const diff = (x, y) => Math.max(...x.map((v, i) => Math.abs(v - y[i])));
    return { rotatedDiff: diff(a, b), unrotatedDiff: diff(a, c) };
  }, { make, options });
}

async function errorCodes(page, make, options, onGpu) {
  return page.evaluate(async ({ make, options, onGpu }) => {
    const codes = {};
    codes.broken = await codeOf(gaze[make].create({ ...options, weights: new TextEncoder().encode('not a checkpoint') }));
    codes.badInput = await codeOf(gaze[make].create(options).then(async (s) => {
      try { return await s.run({ data: new Float32Array(5), dims: [1, 3, 28, 28] }); } finally { s.dispose(); }
    }));
    const s = await gaze[make].create(options);
    s.dispose();
    codes.disposed = await codeOf(s.classify(new ImageData(28, 28)));
    if (onGpu) {
      codes.f16 = await codeOf(gaze[make].create({ ...options, device: 'gpu', precision: 'f16' }));
      const lost = await gaze[make].create({ ...options, device: 'gpu' });
      await lost.loseDeviceForTest();
      codes.lost = await codeOf(lost.run({ data: new Float32Array(3 * 28 * 28), dims: [1, 3, 28, 28] }));
      lost.dispose();
    } else {
      codes.noAdapter = await codeOf(gaze[make].create({ ...options, device: 'gpu' }));
    }
    return codes;
  }, { make, options, onGpu });
}

// Tuning with each mode, from an empty IndexedDB: "off" runs the heuristic's variants; "on"
// measures every conv before `create` resolves; a later `tune()` has nothing left to measure,
// and a new session with the default mode ("cache") runs the tuned variants, read back from
// IndexedDB.
async function tuning(page, make, options) {
  return page.evaluate(async ({ make, options }) => {
    await new Promise((resolve) => { const r = indexedDB.deleteDatabase('gaze-web'); r.onsuccess = r.onerror = resolve; });
    const out = { badMode: await codeOf(gaze[make].create({ ...options, tune: 'sometimes' })) };
    out.badFusion = await codeOf(gaze[make].create({ ...options, fusion: 'maybe' }));
    const off = await gaze[make].create({ ...options, device: 'gpu', tune: 'off' });
    out.heuristic = await off.kernelVariants();
    off.dispose();
    const tuned = await gaze[make].create({ ...options, device: 'gpu', tune: 'on' });
    out.tuning = tuned.tuning;
    out.tuned = await tuned.kernelVariants();
    out.again = await tuned.tune();
    tuned.dispose();
    const cached = await gaze[make].create({ ...options, device: 'gpu' });
    out.cached = await cached.kernelVariants();
    cached.dispose();
    return out;
  }, { make, options });
}

function checkTuning(tag, t) {
  check(t.badMode === 'Error:bad-input', `${tag} tune: an unknown mode is ${t.badMode}`);
  check(t.badFusion === 'Error:bad-input', `${tag} fusion: an unknown mode is ${t.badFusion}`);
  const measured = t.tuning?.measured ?? [];
  // The fastest variant, or the heuristic's where nothing beat it by 10% (noise).
  const fastest = measured.every((m) => {
    const best = Math.min(...Object.values(m.ms));
    return m.ms[m.variant] === best || (m.variant === m.heuristic && best > 0.9 * m.ms[m.variant]);
  });
  check(measured.length > 0 && fastest, `${tag} tune "on": ${measured.length} ops measured in ${t.tuning?.tuningMs?.toFixed(0)} ms, each choice the fastest variant (or the heuristic's, within 10%)`);
  const chosen = new Set(measured.map((m) => m.variant));
  const convs = (list) => list.filter((v) => v.op.includes('conv2d')).map((v) => v.variant);
  const ran = convs(t.tuned);
  check(ran.length > 0 && ran.every((v) => chosen.has(v)), `${tag} tune "on": the plan runs the tuned variants (${[...new Set(ran)].join(', ')})`);
  check(convs(t.heuristic).length === ran.length, `${tag} tune "off": the heuristic's plan has as many convs (${[...new Set(convs(t.heuristic))].join(', ')})`);
  check(t.again.measured.length === 0, `${tag} tune() again: nothing left to measure (${t.again.measured.length})`);
  check(JSON.stringify(t.cached) === JSON.stringify(t.tuned), `${tag} a new session (tune "cache") runs the variants tuned before, from IndexedDB`);
}

// The cycles run the Triplet Attention module of ../shared/parity at batch 2 rather than the
// demo model: a session holds the same kinds of GPU memory either way (weights, the planned
// buffers, uniforms, readback), and on SwiftShader each of the demo model's sessions spent
// about 10 s compiling its pipelines, 200 s of CI for 20 cycles.
const CYCLE_CASE = 'ta_module';

async function memoryCycles(page) {
  const c = JSON.parse(readFileSync(join(PARITY, CYCLE_CASE, 'case.json'), 'utf8'));
  // A Triplet Attention module's output has its input's shape.
  const dims = [2, ...c.output_shape.slice(1)];
  const session = { weights: `parity/${CYCLE_CASE}/${c.weights}`, arch: c.arch, device: 'gpu' };
  return page.evaluate(async ({ session, dims, cycles }) => {
    const before = await gaze.liveGpuBytes();
    let peak = 0;
    for (let i = 0; i < cycles; i++) {
      const s = await gaze.Session.create(session);
      await s.run({ data: new Float32Array(dims.reduce((a, b) => a * b)), dims });
      peak = Math.max(peak, await gaze.liveGpuBytes());
      s.dispose();
    }
    return { before, peak, after: await gaze.liveGpuBytes() };
  }, { session, dims, cycles: CYCLES });
}

async function downloads(page, url, hits, options, make) {
  const weights = `models/${options.weightsFile}`;
  const path = `/${weights}`;
  const create = () => page.evaluate(async ({ options, weights, make }) => {
    const seen = [];
    const s = await gaze[make].create({ ...options, weights, cache: 'gaze-test', onProgress: (p) => seen.push(p) });
    s.dispose();
    return seen;
  }, { options, weights, make });
  await page.evaluate(() => caches.delete('gaze-test'));
  const before = hits.get(path) ?? 0;
  const first = await create();
  const fetched = (hits.get(path) ?? 0) - before;
  await page.reload();
  await page.waitForFunction(() => window.appReady === true);
  await page.evaluate(pageHelpers);
  const second = await create();
  return { first, second, fetched, after: (hits.get(path) ?? 0) - before };
}

// A 12-megapixel JPEG classified in the Worker: the page's thread must stay free.
async function longTasks(page, options) {
  return page.evaluate(async ({ options }) => {
    const big = new OffscreenCanvas(4000, 3000);
    const ctx = big.getContext('2d');
    const gradient = ctx.createLinearGradient(0, 0, 4000, 3000);
    gradient.addColorStop(0, '#000');
    gradient.addColorStop(1, '#ddd');
    ctx.fillStyle = gradient;
    ctx.fillRect(0, 0, 4000, 3000);
    const jpeg = await big.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
    const s = await gaze.WorkerSession.create(options);
    await new Promise((r) => setTimeout(r, 200));
    const tasks = [];
    const observer = new PerformanceObserver((list) => tasks.push(...list.getEntries().map((e) => e.duration)));
    observer.observe({ type: 'longtask' });
    const start = performance.now();
    const r = await s.classify(jpeg);
    const ms = performance.now() - start;
    await new Promise((r2) => setTimeout(r2, 100));
    observer.disconnect();
    s.dispose();
    return { tasks, ms, top: r.top[0].label, bytes: jpeg.size };
  }, { options });
}

// The CA demo model on WebGPU with every fusion pass (those for GPUs too: the gates from the
// depthwise conv's parts in one kernel, the multiply in the projection conv's load) classifies
// every sample as the unfused plan does.
async function fusedAsUnfused(page, entry, files) {
  const options = { weights: `models/${entry.weights}`, arch: entry.arch, labels: entry.labels, input: entry.input, mean: entry.mean, std: entry.std, grayscale: entry.grayscale, device: 'gpu', tune: 'off' };
  return page.evaluate(async ({ options, files }) => {
    const out = {};
    let fused = [];
    for (const fusion of ['off', 'everywhere']) {
      const s = await gaze.Session.create({ ...options, fusion });
      out[fusion] = [];
      for (const file of files) {
        const image = await createImageBitmap(await (await fetch(`samples/${file}`)).blob());
        out[fusion].push(Array.from((await s.classify(image)).probabilities));
      }
      if (fusion === 'everywhere') fused = (await s.kernelVariants()).map((k) => k.variant.split(' ')[0]);
      s.dispose();
    }
    const diff = Math.max(...out.off.flatMap((p, i) => p.map((v, j) => Math.abs(v - out.everywhere[i][j]))));
    return { diff, excites: fused.filter((k) => k === 'coord_excite').length, gated: fused.filter((k) => k === 'conv2d_mm_gated').length };
  }, { options, files });
}

// ---- the run --------------------------------------------------------------------------------

async function pass(browser, url, hits, label, onGpu, expected, files, entry) {
  const errors = [];
  const page = await openApp(browser, url, errors);
  await page.evaluate(pageHelpers);
  const options = { weights: `models/${entry.weights}`, arch: entry.arch, labels: entry.labels, input: entry.input, mean: entry.mean, std: entry.std, grayscale: entry.grayscale };
  const device = await page.evaluate(async (o) => {
    const s = await gaze.Session.create(o);
    const d = [s.device, s.adapter];
    s.dispose();
    return d;
  }, options);
  check(device[0] === (onGpu ? 'gpu' : 'cpu'), `${label}: device "${device[0]}"${device[1] ? ` on "${device[1]}"` : ''}`);
  for (const make of ['Session', 'WorkerSession']) {
    const tag = `${label} ${make}`;
    for (const r of await runParity(page, make, { device: 'auto' })) {
      check(r.err <= r.tolerance && JSON.stringify(r.dims) === JSON.stringify(r.want), `${tag} run ${r.name}: rel L2 ${r.err.toExponential(2)} ≤ ${r.tolerance.toExponential(2)}, dims ${JSON.stringify(r.dims)}`);
    }
    const got = await classifyForms(page, make, options, files);
    for (const [i, file] of files.entries()) {
      const want = expected[i].probabilities;
      const diffs = Object.entries(got[file]).map(([form, p]) => [form, Math.max(...p.map((v, j) => Math.abs(v - want[j])))]);
      const worst = Math.max(...diffs.map((d) => d[1]));
      check(worst <= PROBABILITY_TOLERANCE, `${tag} classify ${file} as ${diffs.map((d) => d[0]).join(', ')}: max |Δp| from native ${worst.toExponential(2)}`);
    }
    const exif = await exifRotation(page, make, options);
    check(exif.rotatedDiff <= PROBABILITY_TOLERANCE && exif.unrotatedDiff > exif.rotatedDiff, `${tag} an EXIF-rotated JPEG classifies as the photo rotated in pixels (|Δp| ${exif.rotatedDiff.toExponential(2)}; unrotated ${exif.unrotatedDiff.toExponential(2)})`);
    const codes = await errorCodes(page, make, options, onGpu);
    const want = onGpu
      ? { broken: 'Error:bad-checkpoint', badInput: 'Error:bad-input', disposed: 'Error:disposed', f16: 'Error:f16-unsupported', lost: 'Error:device-lost' }
      : { broken: 'Error:bad-checkpoint', badInput: 'Error:bad-input', disposed: 'Error:disposed', noAdapter: 'Error:no-adapter' };
    check(JSON.stringify(codes) === JSON.stringify(want), `${tag} error codes ${JSON.stringify(codes)}`);
    if (onGpu) checkTuning(tag, await tuning(page, make, options));
  }
  if (onGpu) {
    const ca = JSON.parse(readFileSync(MANIFEST, 'utf8')).find((e) => e.arch === 'mobilenet_v2_ca');
    const f = await fusedAsUnfused(page, ca, files);
    check(f.diff <= PROBABILITY_TOLERANCE && f.excites > 0 && f.gated === f.excites, `${ca.id} with every fusion pass on WebGPU (${f.excites} coord_excite, ${f.gated} conv2d_mm_gated): max |Δp| from unfused ${f.diff.toExponential(2)}`);
    const m = await memoryCycles(page);
    check(m.after === m.before && m.peak > m.before, `${CYCLES} create/run/dispose cycles (${CYCLE_CASE}, batch 2): live GPU bytes ${m.before} → peak ${m.peak} → ${m.after}`);
  }
  for (const make of ['Session', 'WorkerSession']) {
    const d = await downloads(page, url, hits, { ...options, weightsFile: entry.weights }, make);
    const last = d.first.at(-1);
    check(d.first.length > 0 && last.loaded === last.total && last.total > 0, `${label} ${make} progress: ${d.first.length} events, the last ${last?.loaded}/${last?.total}`);
    check(d.fetched === 1 && d.after === 1 && d.second.at(-1)?.loaded === last.total, `${label} ${make} with cache: downloaded ${d.fetched}×, none after a reload (requests: ${d.after})`);
  }
  const lt = await longTasks(page, options);
  check(lt.tasks.every((t) => t <= 50), `${label} a ${(lt.bytes / 1e6).toFixed(1)} MB 12-megapixel JPEG classified in the Worker in ${lt.ms.toFixed(0)} ms with no long task on the page (${lt.tasks.length ? lt.tasks.map((t) => t.toFixed(0)).join(', ') : 'none'})`);
  check(errors.length === 0, `${label}: no console errors${errors.length ? `: ${errors.join(' | ')}` : ''}`);
  await page.close();
}

async function main() {
  const entry = JSON.parse(readFileSync(MANIFEST, 'utf8'))[0];
  const files = JSON.parse(readFileSync(join(ROOT, 'web', 'samples', 'samples.json'), 'utf8')).map((s) => s.file);
  const expected = native(entry, files);
  const { dir, tarball } = makeApp();
  check(tarball.startsWith('gaze-web-'), `npm pack made ${tarball}, installed into a fresh folder`);
  const { server, hits, url } = await serve(dir);
  try {
    for (const [label, args, onGpu] of [['webgpu', ['--enable-unsafe-webgpu'], true], ['cpu-wasm', [], false]]) {
      const browser = await chromium.launch({ executablePath: EXECUTABLE, args });
      try {
        await pass(browser, url, hits, label, onGpu, expected, files, entry);
      } finally {
        await browser.close();
      }
    }
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(failures ? `${failures} check(s) failed` : 'all package checks passed');
  process.exit(failures ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
