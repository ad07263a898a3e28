// The demo page: loads a model into a gaze-web Session (WebGPU, or the CPU reference compiled
// to wasm when the browser has no WebGPU), classifies photos and samples, and draws the
// attention. It uses the npm package web/pkg as any app would, through its index.js.
import { Session, architectures, imageToRgba, initialize } from './pkg/index.js';

const $ = (id) => document.getElementById(id);

const state = {
  session: null,
  sessionArgs: null, // [config, bytes, name]: to make a new session after a lost device
  adapter: '',
  coldMs: null,
  result: null,
  view: null, // {width, height, rgba}: the model input, for the overlay
  manifest: [],
  entry: null, // the models.json entry that runs; null for the visitor's own weights
  loadedChoice: null, // the model picker's value for the session that runs
  pixel: null, // [x, y] in model-input pixels: the SAN pixel whose neighbourhood is drawn
  busy: Promise.resolve(),
};

// ---- errors and status -------------------------------------------------------------------

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = !message;
}

function onGpu() {
  return state.session?.device === 'gpu';
}

// The adapter behind gaze's own device, as the browser names it, not one the page would
// request on its own.
function deviceLabel() {
  const s = state.session;
  if (!s) return 'no model';
  const f16 = state.sessionArgs?.precision === 'f16' ? ' · f16' : '';
  return onGpu() ? `WebGPU · ${s.adapter}${f16}` : 'CPU reference (no GPU)';
}

function showDevice() {
  $('device').textContent = deviceLabel();
  $('time-device').textContent = state.session ? (onGpu() ? 'WebGPU' : 'CPU (wasm)') : '–';
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

async function openSession(config) {
  const session = await Session.create(config);
  state.session?.dispose();
  state.session = session;
  state.sessionArgs = config;
  state.coldMs = null;
  clearResult();
  showDevice();
  fillBlocks();
  return session;
}

async function loadBundled(entry) {
  $('model-info').textContent = `Loading ${entry.weights}…`;
  let size = 0;
  const config = {
    weights: `models/${entry.weights}`, onProgress: ({ total }) => { size = total; },
    arch: entry.arch, labels: entry.labels, input: entry.input, mean: entry.mean,
    std: entry.std, grayscale: entry.grayscale ?? false, replicate: entry.replicate ?? 1,
    options: entry.options ?? {}, device: device(), precision: precision(),
  };
  await openSession(config);
  state.entry = entry;
  const accuracy = entry.pytorch_test_accuracy;
  $('model-info').textContent = `${entry.arch}, ${(size / 1e6).toFixed(1)} MB` +
    (accuracy ? `, ${(accuracy * 100).toFixed(2)}% test accuracy in PyTorch` : '');
  describeModel();
}

async function loadOwn(file) {
  $('model-info').textContent = `Loading ${file.name}…`;
  const config = { weights: file, arch: $('arch-select').value, device: device(), precision: precision() };
  const session = await openSession(config);
  state.entry = null;
  $('model-info').textContent = `${session.arch} from ${file.name}`;
  describeModel();
}

// What the model can answer and how a photo becomes its input, next to every prediction.
function describeModel() {
  const entry = state.entry;
  if (!entry) {
    $('model-knows').textContent = 'Your model answers with its own classes: ImageNet\'s 1000 names for a 1000-class head, else "class 0", "class 1", …';
    $('input-how').textContent = 'Your photo is resized to 256 pixels on its short side, its centre 224×224 cropped, and normalized with ImageNet\'s mean and std (the papers\' evaluation transform).';
    return;
  }
  const [, h, w] = entry.input;
  const r = entry.replicate ?? 1;
  $('model-knows').textContent = `It knows only ${entry.labels.length} classes: ${entry.labels.join(', ')}. ` +
    'Whatever the photo shows, the answer is one of these.';
  const size = r > 1 ? `${h / r}×${w / r} pixels, then each pixel repeated ${r}×${r} times (${h}×${w}), as it was trained` : `${h}×${w} pixels`;
  $('input-how').textContent = (entry.grayscale
    ? 'Your photo becomes one gray channel, inverted when its border is light (the training images are light clothing on black), '
    : 'Your photo ') + `is padded with black to a square, resized to ${size}, and normalized with mean ${entry.mean[0]} and std ${entry.std[0]}.`;
}

// Fashion-MNIST images are one centred object on a black background: most pixels black, the
// border dark. A photo that is neither gets a note that the answer means little.
function looksLikeTraining(view) {
  const { width, height, rgba } = view;
  let dark = 0; let border = 0; let borderCount = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = rgba[(y * width + x) * 4] / 255;
      if (v < 0.1) dark += 1;
      if (x === 0 || y === 0 || x === width - 1 || y === height - 1) { border += v; borderCount += 1; }
    }
  }
  return dark / (width * height) >= 0.3 && border / borderCount < 0.15;
}

function showOodNote(fromSample) {
  const note = $('ood-note');
  const unlike = state.entry && !fromSample && state.view && !looksLikeTraining(state.view);
  note.hidden = !unlike;
  if (unlike) {
    note.textContent = `This photo does not look like the model's training images (one piece of clothing, centred on black, ${state.entry.input[1]}×${state.entry.input[2]} gray). ` +
      `The model can only pick the nearest of its ${state.entry.labels.length} classes, so this answer says little about the photo.`;
  }
}

function clearResult() {
  state.result = null;
  state.view = null;
  state.pixel = null;
  $('top5').replaceChildren(Object.assign(document.createElement('li'), { className: 'placeholder', textContent: 'Pick a sample or drop a photo.' }));
  for (const id of ['time-first', 'time-warm', 'time-decode', 'time-preprocess', 'time-maps']) $(id).textContent = '–';
  $('ood-note').hidden = true;
  $('announce').textContent = '';
  $('small-maps').replaceChildren();
  clearOverlay();
  $('overlay-caption').textContent = "The model's input with the attention over it.";
}

// ---- classification ----------------------------------------------------------------------

// Classifies an image: the browser's decode, preprocessing, the inference alone and a run that
// reads the maps back are timed apart (the session's first inference is its cold run).
async function classify(bytes, name, fromSample) {
  const s = state.session;
  if (!s) throw new Error('Load a model first.');
  $('busy').hidden = false;
  try {
    const start = performance.now();
    const { rgba, width, height } = await imageToRgba(new Blob([bytes]));
    const pixels = new ImageData(rgba, width, height);
    const t = { decode_ms: performance.now() - start, inference_ms: [] };
    const cold = state.coldMs === null;
    for (let i = 0; i < (cold ? 2 : 1); i++) {
      const begin = performance.now();
      const run = await s.classify(pixels);
      t.inference_ms.push(run.ms);
      // What classify spent besides the inference: the pixels into wasm, and the preprocessing.
      t.preprocess_ms = performance.now() - begin - run.ms;
    }
    const begin = performance.now();
    const result = await s.classify(pixels, { topK: 5, attention: true });
    t.with_maps_ms = performance.now() - begin;
    const view = await s.inputView(pixels);
    state.view = { height: view.height, width: view.width, rgba: view.data };
    if (cold) state.coldMs = t.inference_ms[0];
    const warmMs = t.inference_ms[t.inference_ms.length - 1];
    state.result = result;
    state.pixel = null;
    showResult(result, t, warmMs);
    showOodNote(fromSample);
    return { ...result, probabilities: Array.from(result.probabilities), device: deviceLabel(), on_gpu: onGpu(), warm_ms: warmMs, cold_ms: state.coldMs, name };
  } finally {
    $('busy').hidden = true;
  }
}

// A lost GPU device (driver reset, or the test hook) ends the session: say so, make a new one
// and classify again.
async function classifyRecovering(bytes, name, fromSample) {
  try {
    return await classify(bytes, name, fromSample);
  } catch (err) {
    if (err?.code !== 'device-lost' || !state.sessionArgs) throw err;
    showError(`${message(err)} — a new session was created and the image classified again.`);
    await openSession(state.sessionArgs);
    describeModel();
    const result = await classify(bytes, name, fromSample);
    return { ...result, recovered: message(err) };
  }
}

function classifyAndShow(bytes, name, fromSample = false) {
  return serialized(async () => {
    showError('');
    try {
      return await classifyRecovering(bytes, name, fromSample);
    } catch (err) {
      showError(message(err));
      throw err;
    }
  });
}

function showResult(result, t, warmMs) {
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
  const ms = (v) => `${v.toFixed(1)} ms`;
  $('time-first').textContent = ms(state.coldMs);
  $('time-warm').textContent = ms(warmMs);
  $('time-decode').textContent = ms(t.decode_ms);
  $('time-preprocess').textContent = ms(t.preprocess_ms);
  $('time-maps').textContent = ms(t.with_maps_ms);
  const best = result.top[0];
  $('announce').textContent = `Prediction: ${best.label}, ${(best.probability * 100).toFixed(1)}%` +
    (result.top[1] ? `; then ${result.top[1].label}, ${(result.top[1].probability * 100).toFixed(1)}%.` : '.');
  drawAttention();
}

// ---- attention ---------------------------------------------------------------------------

const KINDS = {
  triplet: 'Triplet Attention',
  coord: 'Coordinate Attention',
  aff: 'AFF fusion',
  iaff: 'iAFF fusion',
  san: 'SAN self-attention',
};

// The rows × cols a block paints over the image (SAN: its pixel grid).
function blockSize(b) {
  const m = Object.fromEntries(b.maps.map((x) => [x.label, x]));
  if (b.kind === 'triplet') return m.hw ? [m.hw.rows, m.hw.cols] : [1, 1];
  if (b.kind === 'coord') return [m.h.cols, m.w.cols];
  if (b.kind === 'san') return m.neighbourhood.pixels;
  return [b.maps[0].rows, b.maps[0].cols];
}

function fillBlocks() {
  const select = $('block-select');
  const blocks = state.session.attentionBlocks();
  select.replaceChildren(...blocks.map((b, i) => {
    const [rows, cols] = blockSize(b);
    const window = b.kind === 'san' ? ` · ${Math.sqrt(b.maps[0].rows)}×${Math.sqrt(b.maps[0].rows)} window` : '';
    return new Option(`${b.block} · ${KINDS[b.kind] ?? b.kind} · ${rows}×${cols}${window}`, String(i));
  }));
  select.disabled = blocks.length === 0;
  $('attention-note').textContent = blocks.length === 0 ? 'This network has no attention module gaze can show.' : '';
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

// The colour scale: gates and weights lie in 0–1, drawn on that fixed scale so that a flat map
// looks flat, unless the visitor asks to stretch it to its own range.
function scale(data) {
  if (!$('stretch').checked) return { lo: 0, hi: 1, name: 'fixed 0–1 scale' };
  const [lo, hi] = range(data);
  return { lo, hi, name: 'stretched to its range' };
}

function normalize(v, { lo, hi }) {
  return hi > lo ? (v - lo) / (hi - lo) : 0.5;
}

// `rows × cols` values as a canvas on the scale `s`; NaN values stay transparent.
function mapCanvas(data, rows, cols, s, alpha = 255) {
  const canvas = document.createElement('canvas');
  canvas.width = cols;
  canvas.height = rows;
  const img = canvas.getContext('2d').createImageData(cols, rows);
  data.forEach((v, i) => {
    if (Number.isNaN(v)) return;
    const [r, g, b] = color(normalize(v, s));
    img.data.set([r, g, b, alpha], i * 4);
  });
  canvas.getContext('2d').putImageData(img, 0, 0);
  return canvas;
}

function clearOverlay() {
  const ctx = $('overlay').getContext('2d');
  ctx.clearRect(0, 0, $('overlay').width, $('overlay').height);
}

// The map a block paints over the image: TA's hw gate; for CA the channel mean of a_h ⊗ a_w
// (the factor each pixel is multiplied by, averaged over channels); for AFF the fusion weights'
// channel mean (1: the block takes its branch, 0: its shortcut), iAFF's final ones.
function spatialMap(block) {
  const byLabel = Object.fromEntries(block.maps.map((m) => [m.label, m]));
  switch (block.kind) {
    case 'triplet':
      return byLabel.hw ? { ...byLabel.hw, caption: 'hw gate (spatial)' } : null;
    case 'aff':
      return { ...byLabel.fusion, caption: 'fusion weight w, mean over channels (1: branch, 0: shortcut)' };
    case 'iaff':
      return { ...byLabel.fusion2, caption: 'final fusion weight w₂, mean over channels (1: branch, 0: shortcut)' };
    case 'coord': {
      const h = byLabel.h; const w = byLabel.w;
      const data = new Float32Array(h.cols * w.cols);
      for (let c = 0; c < h.rows; c++) {
        for (let y = 0; y < h.cols; y++) {
          for (let x = 0; x < w.cols; x++) data[y * w.cols + x] += h.data[c * h.cols + y] * w.data[c * w.cols + x] / h.rows;
        }
      }
      return { rows: h.cols, cols: w.cols, data, caption: 'mean over channels of a_h · a_w' };
    }
    default:
      return null;
  }
}

// SAN: the weights of the pixel under `state.pixel` over its k×k window, as a map of the block's
// grid (NaN outside the window). The weights are the mean over the block's weight groups.
function neighbourhoodMap(block) {
  const m = block.maps[0];
  const [rows, cols] = m.pixels;
  const k = Math.round(Math.sqrt(m.rows));
  const [px, py] = state.pixel;
  const cx = Math.min(cols - 1, Math.floor(px * cols / state.view.width));
  const cy = Math.min(rows - 1, Math.floor(py * rows / state.view.height));
  const data = new Float32Array(rows * cols).fill(NaN);
  const weights = [];
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      const v = m.data[(a * k + b) * m.cols + cy * cols + cx];
      weights.push(v);
      // Taps past the border read the reflected pixel; they are drawn where they point.
      const y = cy - (k >> 1) + a; const x = cx - (k >> 1) + b;
      if (y >= 0 && y < rows && x >= 0 && x < cols) data[y * cols + x] = v;
    }
  }
  return { rows, cols, data, k, weights, at: [cx, cy] };
}

function paintInput(ctx, canvas) {
  const view = state.view;
  const input = document.createElement('canvas');
  input.width = view.width;
  input.height = view.height;
  input.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(view.rgba), view.width, view.height), 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(input, 0, 0, canvas.width, canvas.height);
}

function paintMap(ctx, canvas, map, s, smooth) {
  ctx.imageSmoothingEnabled = smooth;
  ctx.globalAlpha = 0.6;
  ctx.drawImage(mapCanvas(map.data, map.rows, map.cols, s), 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

function drawNeighbourhood(block, ctx, canvas) {
  const m = block.maps[0];
  const k = Math.round(Math.sqrt(m.rows));
  $('overlay').classList.add('clickable');
  if (!state.pixel) {
    $('overlay-caption').textContent = `${block.block}: click a pixel to see its attention weights over its ${k}×${k} neighbourhood (${m.pixels[0]}×${m.pixels[1]} grid).`;
    return;
  }
  const n = neighbourhoodMap(block);
  const s = scale(n.weights);
  paintMap(ctx, canvas, n, s, false);
  const [lo, hi] = range(n.weights);
  $('overlay-caption').textContent = `${block.block}: weights of pixel (${n.at[0]}, ${n.at[1]}) of the ${n.cols}×${n.rows} grid over its ${k}×${k} neighbourhood, mean over weight groups, from ${lo.toFixed(3)} to ${hi.toFixed(3)} (${s.name}).`;
  const small = $('small-maps');
  const figure = document.createElement('figure');
  figure.id = 'neighbourhood';
  const c = mapCanvas(n.weights, k, k, s);
  c.title = `${k}×${k}`;
  const caption = document.createElement('figcaption');
  caption.textContent = `the ${k}×${k} window of pixel (${n.at[0]}, ${n.at[1]})`;
  figure.append(c, caption);
  small.append(figure);
  state.neighbourhood = { block: block.block, at: n.at, k, weights: n.weights };
}

const SMALL = {
  cw: 'cw gate: channel × width',
  hc: 'hc gate: height × channel',
  h: 'H gate a_h: channel × height',
  w: 'W gate a_w: channel × width',
  fusion1: 'first fusion weight w₁ (mean over channels)',
};

function drawAttention() {
  const result = state.result;
  const view = state.view;
  $('overlay').classList.remove('clickable');
  if (!result || !view) return;
  const block = result.attention[Number($('block-select').value)];
  const canvas = $('overlay');
  const ctx = canvas.getContext('2d');
  paintInput(ctx, canvas);
  const small = $('small-maps');
  small.replaceChildren();
  if (!block) {
    $('overlay-caption').textContent = "The model's input.";
    return;
  }
  if (block.kind === 'san') {
    drawNeighbourhood(block, ctx, canvas);
    return;
  }
  const spatial = spatialMap(block);
  if (spatial && spatial.rows * spatial.cols === 1) {
    // One value for the whole image: listed, not painted as if it were a map.
    $('overlay-caption').textContent = `${block.block}: ${spatial.caption} is 1×1 here, one value for the whole image (${spatial.data[0].toFixed(3)}); not painted over it.`;
  } else if (spatial) {
    const s = scale(spatial.data);
    paintMap(ctx, canvas, spatial, s, true);
    const [lo, hi] = range(spatial.data);
    $('overlay-caption').textContent = `${block.block}: ${spatial.caption}, ${spatial.rows}×${spatial.cols}, from ${lo.toFixed(3)} to ${hi.toFixed(3)} (${s.name}).`;
  } else {
    $('overlay-caption').textContent = `${block.block} has no spatial gate (2-branch Triplet Attention).`;
  }
  for (const m of block.maps.filter((m) => SMALL[m.label])) {
    const figure = document.createElement('figure');
    const c = mapCanvas(m.data, m.rows, m.cols, scale(m.data));
    c.style.aspectRatio = `${m.cols} / ${m.rows}`;
    c.title = `${m.rows}×${m.cols}`;
    const caption = document.createElement('figcaption');
    const [lo, hi] = range(m.data);
    caption.textContent = `${SMALL[m.label]} (${m.rows}×${m.cols}, ${lo.toFixed(3)}–${hi.toFixed(3)})`;
    figure.append(c, caption);
    small.append(figure);
  }
}

// A click on the overlay picks the SAN pixel whose neighbourhood is drawn, in model-input pixels.
function pickPixel(event) {
  const block = state.result?.attention[Number($('block-select').value)];
  if (block?.kind !== 'san' || !state.view) return;
  const rect = $('overlay').getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) / rect.width * state.view.width);
  const y = Math.floor((event.clientY - rect.top) / rect.height * state.view.height);
  state.pixel = [Math.min(state.view.width - 1, Math.max(0, x)), Math.min(state.view.height - 1, Math.max(0, y))];
  drawAttention();
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
  return classifyAndShow(bytes, sample.file, true);
}

function wireDrop() {
  const drop = $('drop');
  $('choose-image').addEventListener('click', () => $('image-file').click());
  $('image-file').addEventListener('change', (e) => {
    classifyFile(e.target.files[0]);
    e.target.value = '';
  });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    classifyFile(e.dataTransfer.files[0]);
  });
  // A file dropped anywhere else would make the browser leave the page to open it.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
}

function wireInputs(samples) {
  wireDrop();
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
  $('block-select').addEventListener('change', () => { state.pixel = null; drawAttention(); });
  $('stretch').addEventListener('change', drawAttention);
  $('overlay').addEventListener('click', pickPixel);
  const choose = () => serialized(chooseModel).catch((e) => showError(message(e)));
  $('model-select').addEventListener('change', choose);
  $('weights-file').addEventListener('change', choose);
  $('arch-select').addEventListener('change', () => {
    if ($('weights-file').files[0]) choose();
  });
}

// Loads what the model picker names. A switch clears the old result first; a failed load of the
// visitor's own weights says so and puts the picker back on the model that still runs.
async function chooseModel() {
  showError('');
  const choice = $('model-select').value;
  $('own-model').hidden = choice !== 'own';
  if (choice !== 'own') {
    if (choice === state.loadedChoice) return null;
    clearResult();
    await loadBundled(state.manifest[Number(choice)]);
    state.loadedChoice = choice;
    // Choosing "your own weights" again asks for a file rather than reloading an old one.
    $('weights-file').value = '';
    return null;
  }
  const file = $('weights-file').files[0];
  if (!file) {
    $('model-info').textContent = 'Choose a checkpoint file.';
    return null;
  }
  clearResult();
  try {
    await loadOwn(file);
    state.loadedChoice = 'own';
  } catch (err) {
    $('weights-file').value = '';
    const still = state.loadedChoice;
    if (still !== null && still !== 'own') {
      $('model-select').value = still;
      $('own-model').hidden = true;
    }
    $('model-info').textContent = state.session ? `Still running ${state.session.arch}.` : '';
    throw new Error(`Your weights could not be loaded: ${message(err)}`);
  }
  return null;
}

function fillModels() {
  const select = $('model-select');
  select.replaceChildren(...state.manifest.map((m, i) => new Option(m.name, String(i))), new Option('Your own weights…', 'own'));
  $('arch-select').append(...state.architectures.map((a) => new Option(a, a)));
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  await initialize();
  state.architectures = await architectures();
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
  if (state.session && !onGpu() && navigator.gpu && device() !== 'cpu') {
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
  // Loads the bundled model `id` as the picker does, and resolves when it runs.
  selectModel: async (id) => {
    await ready;
    const i = state.manifest.findIndex((m) => m.id === id);
    if (i < 0) throw new Error(`no model ${id}`);
    $('model-select').value = String(i);
    await serialized(chooseModel);
    return { arch: state.session.arch, blocks: state.session.attentionBlocks().length };
  },
  // The SAN neighbourhood drawn after the last click on the overlay.
  neighbourhood: () => state.neighbourhood ?? null,
  loseDevice: () => state.session?.loseDeviceForTest(),
  device: () => deviceLabel(),
  onGpu: () => onGpu(),
};
