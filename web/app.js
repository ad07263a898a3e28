// The demo page: loads a model into a gaze Session (WebGPU, or the CPU reference compiled to
// wasm when the browser has no WebGPU), classifies photos and samples, and draws the attention.
import init, { Session, architectures, browserKernels } from './pkg/gaze.js';

const $ = (id) => document.getElementById(id);

const state = {
  session: null,
  sessionArgs: null, // [config, bytes, name]: to make a new session after a lost device
  adapter: '',
  coldMs: null,
  result: null,
  view: null, // {width, height, rgba}: the model input, for the overlay
  manifest: [],
  busy: Promise.resolve(),
};

// ---- errors and status -------------------------------------------------------------------

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = !message;
}

// wgpu sees only the adapter's description, often empty in browsers; the page asks WebGPU for
// the vendor and architecture too.
async function adapterLabel() {
  try {
    const info = (await navigator.gpu.requestAdapter())?.info;
    return [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

function deviceLabel() {
  const s = state.session;
  if (!s) return 'no model';
  const f16 = state.sessionArgs?.[0].precision === 'f16' ? ' · f16' : '';
  return s.on_gpu() ? `WebGPU · ${state.adapter || s.device()}${f16}` : s.device();
}

function showDevice() {
  const s = state.session;
  $('device').textContent = deviceLabel();
  $('time-device').textContent = s ? (s.on_gpu() ? 'WebGPU' : 'CPU (wasm)') : '–';
}

function message(err) {
  return err instanceof Error ? err.message : String(err);
}

// One classification or model load at a time: a second click waits for the first.
function serialized(task) {
  const run = state.busy.then(task, task);
  state.busy = run.catch(() => {});
  return run;
}

// ---- models ------------------------------------------------------------------------------

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function device() {
  const forced = new URLSearchParams(location.search).get('device');
  return forced === 'cpu' || forced === 'gpu' ? forced : 'auto';
}

// `?precision=f16` stores tensors as f16 on the GPU (with `?device=gpu`); the session refuses,
// by name, a value it does not know or an adapter without shader-f16.
function precision() {
  return new URLSearchParams(location.search).get('precision') ?? 'f32';
}

async function openSession(config, bytes, name) {
  const session = await Session.create(JSON.stringify(config), bytes, name);
  state.session?.free();
  state.session = session;
  state.sessionArgs = [config, bytes, name];
  state.adapter = session.on_gpu() ? await adapterLabel() : '';
  state.coldMs = null;
  state.result = null;
  showDevice();
  fillBlocks();
  return session;
}

async function loadBundled(entry) {
  $('model-info').textContent = `Loading ${entry.weights}…`;
  const bytes = await fetchBytes(`models/${entry.weights}`);
  const config = {
    arch: entry.arch, labels: entry.labels, input: entry.input, mean: entry.mean,
    std: entry.std, grayscale: entry.grayscale ?? false, options: entry.options ?? {}, device: device(),
    precision: precision(),
  };
  await openSession(config, bytes, entry.weights);
  const accuracy = entry.pytorch_test_accuracy;
  $('model-info').textContent = `${entry.arch}, ${(bytes.length / 1e6).toFixed(1)} MB` +
    (accuracy ? `, ${(accuracy * 100).toFixed(2)}% test accuracy in PyTorch` : '');
}

async function loadOwn(file) {
  $('model-info').textContent = `Loading ${file.name}…`;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const config = { arch: $('arch-select').value, device: device(), precision: precision() };
  const session = await openSession(config, bytes, file.name);
  $('model-info').textContent = `${session.arch()} from ${file.name}`;
}

// ---- classification ----------------------------------------------------------------------

async function runOnce(bytes, name) {
  const start = performance.now();
  const json = await state.session.classify(bytes, name);
  return { result: JSON.parse(json), ms: performance.now() - start };
}

// Classifies an image; the session's first run is timed cold, then run again warm.
async function classify(bytes, name) {
  if (!state.session) throw new Error('Load a model first.');
  $('busy').hidden = false;
  try {
    const size = state.session.input_size();
    state.view = { height: size[0], width: size[1], rgba: state.session.input_view(bytes, name) };
    let run = await runOnce(bytes, name);
    if (state.coldMs === null) {
      state.coldMs = run.ms;
      run = await runOnce(bytes, name);
    }
    state.result = run.result;
    showResult(run.result, run.ms);
    return { ...run.result, device: deviceLabel(), on_gpu: state.session.on_gpu(), warm_ms: run.ms, cold_ms: state.coldMs };
  } finally {
    $('busy').hidden = true;
  }
}

// A lost GPU device (driver reset, or the test hook) ends the session: say so, make a new one
// and classify again.
async function classifyRecovering(bytes, name) {
  try {
    return await classify(bytes, name);
  } catch (err) {
    if (!/lost/i.test(message(err)) || !state.sessionArgs) throw err;
    showError(`${message(err)} — a new session was created and the image classified again.`);
    await openSession(...state.sessionArgs);
    const result = await classify(bytes, name);
    return { ...result, recovered: message(err) };
  }
}

function classifyAndShow(bytes, name) {
  return serialized(async () => {
    showError('');
    try {
      return await classifyRecovering(bytes, name);
    } catch (err) {
      showError(message(err));
      throw err;
    }
  });
}

function showResult(result, warmMs) {
  const list = $('top5');
  list.replaceChildren(...result.top.map((p) => {
    const li = document.createElement('li');
    const row = document.createElement('div');
    row.className = 'row';
    const label = document.createElement('span');
    label.textContent = p.label;
    const value = document.createElement('span');
    value.textContent = `${(p.probability * 100).toFixed(2)}%`;
    row.append(label, value);
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0.5, p.probability * 100)}%`;
    bar.append(fill);
    li.append(row, bar);
    return li;
  }));
  $('time-first').textContent = `${state.coldMs.toFixed(1)} ms`;
  $('time-warm').textContent = `${warmMs.toFixed(1)} ms`;
  drawAttention();
}

// ---- attention ---------------------------------------------------------------------------

function fillBlocks() {
  const select = $('block-select');
  const blocks = JSON.parse(state.session.attention_blocks());
  select.replaceChildren(...blocks.map((b, i) => {
    const option = document.createElement('option');
    option.value = String(i);
    const size = b.kind === 'triplet'
      ? `${b.maps[0].rows}×${b.maps[0].cols}`
      : `${b.maps[0].cols}×${b.maps[1].cols}`;
    option.textContent = `${b.block} · ${b.kind === 'triplet' ? 'Triplet' : 'Coordinate'} Attention · ${size}`;
    return option;
  }));
  select.disabled = blocks.length === 0;
  $('attention-note').textContent = blocks.length === 0 ? 'This network has no Triplet or Coordinate Attention module.' : '';
  $('small-maps').replaceChildren();
  clearOverlay();
}

// A perceptual dark-to-bright ramp (black, purple, orange, yellow).
const RAMP = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
function color(t) {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * f));
}

function range(data) {
  let lo = Infinity; let hi = -Infinity;
  for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return [lo, hi];
}

// `rows × cols` values as a canvas, normalized to their own range.
function mapCanvas(data, rows, cols, alpha = 255) {
  const canvas = document.createElement('canvas');
  canvas.width = cols;
  canvas.height = rows;
  const [lo, hi] = range(data);
  const img = canvas.getContext('2d').createImageData(cols, rows);
  data.forEach((v, i) => {
    const [r, g, b] = color(hi > lo ? (v - lo) / (hi - lo) : 0.5);
    img.data.set([r, g, b, alpha], i * 4);
  });
  canvas.getContext('2d').putImageData(img, 0, 0);
  return canvas;
}

function clearOverlay() {
  const ctx = $('overlay').getContext('2d');
  ctx.clearRect(0, 0, $('overlay').width, $('overlay').height);
}

// The spatial map of a block: TA's hw gate, or for CA the channel mean of a_h ⊗ a_w (the
// factor each pixel is multiplied by, averaged over channels).
function spatialMap(block) {
  const byLabel = Object.fromEntries(block.maps.map((m) => [m.label, m]));
  if (block.kind === 'triplet') {
    return byLabel.hw ? { ...byLabel.hw, caption: 'hw gate (spatial)' } : null;
  }
  const h = byLabel.h; const w = byLabel.w;
  const data = new Float32Array(h.cols * w.cols);
  for (let c = 0; c < h.rows; c++) {
    for (let y = 0; y < h.cols; y++) {
      for (let x = 0; x < w.cols; x++) data[y * w.cols + x] += h.data[c * h.cols + y] * w.data[c * w.cols + x] / h.rows;
    }
  }
  return { rows: h.cols, cols: w.cols, data, caption: 'mean over channels of a_h · a_w' };
}

const SMALL = {
  cw: 'cw gate: channel × width',
  hc: 'hc gate: height × channel',
  h: 'H gate a_h: channel × height',
  w: 'W gate a_w: channel × width',
};

function drawAttention() {
  const result = state.result;
  const view = state.view;
  if (!result || !view) return;
  const block = result.attention[Number($('block-select').value)];
  const canvas = $('overlay');
  const ctx = canvas.getContext('2d');
  const input = document.createElement('canvas');
  input.width = view.width;
  input.height = view.height;
  input.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(view.rgba), view.width, view.height), 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(input, 0, 0, canvas.width, canvas.height);
  const small = $('small-maps');
  small.replaceChildren();
  if (!block) {
    $('overlay-caption').textContent = "The model's input.";
    return;
  }
  const spatial = spatialMap(block);
  if (spatial) {
    ctx.imageSmoothingEnabled = true;
    ctx.globalAlpha = 0.55;
    ctx.drawImage(mapCanvas(spatial.data, spatial.rows, spatial.cols), 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
    const [lo, hi] = range(spatial.data);
    $('overlay-caption').textContent = `${block.block}: ${spatial.caption}, ${spatial.rows}×${spatial.cols}, from ${lo.toFixed(3)} (dark) to ${hi.toFixed(3)} (bright).`;
  } else {
    $('overlay-caption').textContent = `${block.block} has no spatial gate (2-branch Triplet Attention).`;
  }
  for (const m of block.maps.filter((m) => SMALL[m.label])) {
    const figure = document.createElement('figure');
    const c = mapCanvas(m.data, m.rows, m.cols);
    c.style.aspectRatio = `${m.cols} / ${m.rows}`;
    c.title = `${m.rows}×${m.cols}`;
    const caption = document.createElement('figcaption');
    const [lo, hi] = range(m.data);
    caption.textContent = `${SMALL[m.label]} (${m.rows}×${m.cols}, ${lo.toFixed(3)}–${hi.toFixed(3)})`;
    figure.append(c, caption);
    small.append(figure);
  }
}

// ---- inputs ------------------------------------------------------------------------------

async function classifyFile(file) {
  if (!file) return;
  if (!/^image\/(png|jpeg)$/.test(file.type) && !/\.(png|jpe?g)$/i.test(file.name)) {
    showError(`${file.name}: not a JPEG or PNG image.`);
    return;
  }
  document.querySelectorAll('.samples button').forEach((b) => b.classList.remove('chosen'));
  await classifyAndShow(new Uint8Array(await file.arrayBuffer()), file.name).catch(() => {});
}

async function classifySample(sample, button) {
  document.querySelectorAll('.samples button').forEach((b) => b.classList.toggle('chosen', b === button));
  const bytes = await fetchBytes(`samples/${sample.file}`);
  return classifyAndShow(bytes, sample.file);
}

function wireInputs(samples) {
  $('image-file').addEventListener('change', (e) => classifyFile(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    classifyFile(e.dataTransfer.files[0]);
  });
  $('samples').replaceChildren(...samples.map((s) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.title = s.label;
    button.setAttribute('aria-label', `sample: ${s.label}`);
    const img = document.createElement('img');
    img.src = `samples/${s.file}`;
    img.alt = s.label;
    button.append(img);
    button.addEventListener('click', () => classifySample(s, button).catch(() => {}));
    return button;
  }));
  $('block-select').addEventListener('change', drawAttention);
  $('model-select').addEventListener('change', () => serialized(chooseModel).catch((e) => showError(message(e))));
  $('weights-file').addEventListener('change', () => serialized(chooseModel).catch((e) => showError(message(e))));
  $('arch-select').addEventListener('change', () => {
    if ($('weights-file').files[0]) serialized(chooseModel).catch((e) => showError(message(e)));
  });
}

async function chooseModel() {
  showError('');
  const choice = $('model-select').value;
  $('own-model').hidden = choice !== 'own';
  if (choice !== 'own') return loadBundled(state.manifest[Number(choice)]);
  const file = $('weights-file').files[0];
  if (!file) {
    $('model-info').textContent = 'Choose a checkpoint file.';
    return null;
  }
  return loadOwn(file);
}

function fillModels() {
  const select = $('model-select');
  select.replaceChildren(...state.manifest.map((m, i) => new Option(m.name, String(i))), new Option('Your own weights…', 'own'));
  $('arch-select').append(...JSON.parse(architectures()).map((a) => new Option(a, a)));
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  await init();
  if (!navigator.gpu || device() === 'cpu') {
    const box = $('fallback');
    box.textContent = navigator.gpu
      ? 'Running on the CPU as asked (?device=cpu): the CPU reference compiled to WebAssembly.'
      : 'This browser has no WebGPU. gaze runs its CPU reference compiled to WebAssembly instead: the same numbers, more slowly.';
    box.hidden = false;
  }
  const [manifest, samples] = await Promise.all([
    fetch('models/models.json').then((r) => r.json()),
    fetch('samples/samples.json').then((r) => r.json()),
  ]);
  state.manifest = manifest;
  fillModels();
  wireInputs(samples);
  await serialized(chooseModel);
  if (state.session && !state.session.on_gpu() && navigator.gpu && device() !== 'cpu') {
    const box = $('fallback');
    box.textContent = 'WebGPU is present but no adapter could be opened: running the CPU reference compiled to WebAssembly.';
    box.hidden = false;
  }
  return { samples };
}

const ready = start().catch((err) => {
  showError(`The demo could not start: ${message(err)}`);
  throw err;
});

// For the end-to-end test (tests/browser): the same paths a click takes.
window.gazeDemo = {
  ready: ready.then(() => true),
  samples: () => ready.then(({ samples }) => samples),
  classifySample: async (file) => {
    const { samples } = await ready;
    const sample = samples.find((s) => s.file === file);
    if (!sample) throw new Error(`no sample ${file}`);
    const button = [...document.querySelectorAll('.samples button')][samples.indexOf(sample)];
    return classifySample(sample, button);
  },
  loseDevice: () => state.session?.lose_device_for_test(),
  device: () => deviceLabel(),
  onGpu: () => state.session?.on_gpu(),
  // Compiles every browser kernel on a device of its own; one line per kernel that fails.
  compileKernels: async () => {
    const device = await (await navigator.gpu.requestAdapter()).requestDevice();
    const kernels = JSON.parse(browserKernels());
    const failures = [];
    for (const { name, wgsl } of kernels) {
      try {
        const module = device.createShaderModule({ label: name, code: wgsl });
        await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      } catch (err) {
        failures.push(`${name}: ${message(err)}`);
      }
    }
    device.destroy();
    return { count: kernels.length, failures };
  },
};
