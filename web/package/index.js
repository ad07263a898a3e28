// gaze-web: the four papers' attention CNNs from their PyTorch checkpoints, on WebGPU (or the
// CPU reference compiled to WebAssembly), over the same graph, kernels and preprocessing as the
// `gaze` command line. Types: index.d.ts.
import init, { Session as WasmSession, architectures as wasmArchitectures, liveGpuBytes as wasmLiveGpuBytes } from './gaze.js';

const CODES = new Set(['no-adapter', 'device-lost', 'bad-checkpoint', 'bad-input', 'f16-unsupported', 'disposed']);

/** An `Error` with a `code`, as every rejection of this package is. */
export function codedError(message, code) {
  const err = new Error(message);
  err.code = code;
  return err;
}

// wasm errors already carry their code; anything else (a browser exception) is passed on with
// a code of its own.
function coded(err, fallback = 'internal') {
  if (err instanceof Error && typeof err.code === 'string') return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = /device.*lost|lost.*device/i.test(message) ? 'device-lost' : fallback;
  return codedError(message, code);
}

let initialized = null;

/** Loads the wasm module once (`wasm`: its URL, default beside this file). */
export function initialize(wasm) {
  initialized ??= init({ module_or_path: wasm ?? new URL('./gaze_bg.wasm', import.meta.url) });
  return initialized;
}

/** Every architecture `arch` accepts. */
export async function architectures() {
  await initialize();
  return JSON.parse(wasmArchitectures());
}

/** Bytes of GPU buffers gaze holds now, over every session: a debug counter. */
export async function liveGpuBytes() {
  await initialize();
  return wasmLiveGpuBytes();
}

// ---- weights --------------------------------------------------------------------------------

// Reads a response's body into one buffer, sized from Content-Length when the server sends it,
// reporting progress as it goes.
async function readBody(response, onProgress) {
  const total = Number(response.headers.get('Content-Length')) || 0;
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onProgress?.({ loaded: bytes.length, total: bytes.length });
    return bytes;
  }
  const reader = response.body.getReader();
  let buffer = new Uint8Array(total || 1 << 20);
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > buffer.length) {
      const grown = new Uint8Array(Math.max(buffer.length * 2, loaded + value.length));
      grown.set(buffer.subarray(0, loaded));
      buffer = grown;
    }
    buffer.set(value, loaded);
    loaded += value.length;
    onProgress?.({ loaded, total: total || loaded });
  }
  onProgress?.({ loaded, total: loaded });
  return loaded === buffer.length ? buffer : buffer.slice(0, loaded);
}

async function download(url, { onProgress, cache }) {
  const store = cache && typeof caches !== 'undefined' ? await caches.open(cache) : null;
  let response = await store?.match(url);
  if (!response) {
    try {
      response = await fetch(url);
    } catch (err) {
      throw codedError(`${url}: the download failed (${err.message ?? err})`, 'bad-checkpoint');
    }
    if (!response.ok) throw codedError(`${url}: HTTP ${response.status} ${response.statusText}`, 'bad-checkpoint');
    if (store) await store.put(url, response.clone());
  }
  return readBody(response, onProgress);
}

function fileName(url) {
  try {
    return decodeURIComponent(new URL(url, globalThis.location?.href).pathname.split('/').pop()) || 'weights';
  } catch {
    return 'weights';
  }
}

// `weights` as bytes and a name for errors.
async function weightBytes(weights, options) {
  if (typeof weights === 'string' || weights instanceof URL) {
    const url = String(weights);
    return { bytes: await download(url, options), name: fileName(url) };
  }
  if (weights instanceof Uint8Array) return { bytes: weights, name: 'weights' };
  if (weights instanceof ArrayBuffer) return { bytes: new Uint8Array(weights), name: 'weights' };
  if (ArrayBuffer.isView(weights)) return { bytes: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength), name: 'weights' };
  if (typeof Blob !== 'undefined' && weights instanceof Blob) {
    return { bytes: new Uint8Array(await weights.arrayBuffer()), name: weights.name ?? 'weights' };
  }
  throw codedError('weights: expected a URL string, ArrayBuffer, Uint8Array or Blob', 'bad-input');
}

// ---- the tuning cache -----------------------------------------------------------------------

// The tuner's choices, kept in IndexedDB (windows and Workers alike) as the JSON gaze writes: one
// record, keyed inside by adapter, browser version and gaze version, so a new driver or release
// measures again. Where IndexedDB is missing or refused (private modes), choices last for the
// session only.
const TUNING_DB = 'gaze-web';
const TUNING_STORE = 'tuning';

// Runs `use(store)` on the tuning store in a transaction of `mode` and resolves to its request's
// result (undefined where IndexedDB fails). The connection is closed after each use, so that
// nothing holds the database open (a deletion would wait for it).
async function withTuningStore(mode, use) {
  if (typeof indexedDB === 'undefined') return undefined;
  const db = await new Promise((resolve) => {
    const open = indexedDB.open(TUNING_DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(TUNING_STORE);
    open.onerror = () => resolve(null);
    open.onblocked = () => resolve(null);
    open.onsuccess = () => resolve(open.result);
  });
  if (!db) return undefined;
  try {
    const req = use(db.transaction(TUNING_STORE, mode).objectStore(TUNING_STORE));
    return await new Promise((resolve) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => resolve(undefined);
    });
  } catch {
    return undefined;
  } finally {
    db.close();
  }
}

async function loadTuningCache() {
  const json = await withTuningStore('readonly', (store) => store.get('cache'));
  return typeof json === 'string' ? json : undefined;
}

async function saveTuningCache(json) {
  if (typeof json === 'string') await withTuningStore('readwrite', (store) => store.put(json, 'cache'));
}

const TUNE_MODES = ['off', 'cache', 'on'];
const FUSION_MODES = ['on', 'off', 'everywhere'];

// ---- images ---------------------------------------------------------------------------------

function browserDecodes() {
  return typeof createImageBitmap === 'function' && typeof OffscreenCanvas === 'function';
}

function isEncoded(image) {
  return image instanceof ArrayBuffer || ArrayBuffer.isView(image)
    || (typeof Blob !== 'undefined' && image instanceof Blob);
}

// The image's pixels as RGBA, decoded by the browser (EXIF orientation applied) and drawn
// without colour conversion, as `gaze classify` reads the file's own values.
export async function imageToRgba(image) {
  if (typeof ImageData !== 'undefined' && image instanceof ImageData) {
    return { rgba: image.data, width: image.width, height: image.height };
  }
  let source = image;
  if (isEncoded(image)) {
    const blob = image instanceof Blob ? image : new Blob([image]);
    try {
      source = await createImageBitmap(blob, { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    } catch (err) {
      throw codedError(`the image could not be decoded: ${err.message ?? err}`, 'bad-input');
    }
  } else if (typeof HTMLImageElement !== 'undefined' && image instanceof HTMLImageElement) {
    if (!image.complete || image.naturalWidth === 0) await image.decode();
  }
  const width = source.naturalWidth ?? source.displayWidth ?? source.width;
  const height = source.naturalHeight ?? source.displayHeight ?? source.height;
  if (!width || !height) throw codedError('the image is empty or not an image gaze-web reads', 'bad-input');
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height);
  if (source !== image && typeof source.close === 'function') source.close();
  return { rgba: ctx.getImageData(0, 0, width, height).data, width, height };
}

function topK(probabilities, labels, k) {
  return [...probabilities.keys()]
    .sort((a, b) => probabilities[b] - probabilities[a] || a - b)
    .slice(0, Math.max(0, k))
    .map((index) => ({ index, label: labels[index] ?? `class ${index}`, probability: probabilities[index] }));
}

function checkTensor(t, i) {
  if (!t || !(t.data instanceof Float32Array) || !Array.isArray(t.dims)) {
    throw codedError(`input ${i}: expected { data: Float32Array, dims: number[] }`, 'bad-input');
  }
  return { data: t.data, dims: t.dims };
}

// ---- the session ----------------------------------------------------------------------------

/** A model loaded from its weights, on the GPU or the CPU. */
export class Session {
  #wasm;
  #labels;
  #disposed = false;

  constructor(wasm, labels) {
    this.#wasm = wasm;
    this.#labels = labels;
    this.arch = wasm.arch();
    this.device = wasm.on_gpu() ? 'gpu' : 'cpu';
    this.adapter = wasm.adapter();
  }

  /** Loads `weights` (a URL, ArrayBuffer, Uint8Array or Blob) into a new session. */
  static async create(options = {}) {
    const { weights, arch = 'auto', options: archOptions = {}, device = 'auto', precision = 'f32', labels, input, mean, std, grayscale, replicate, key, onProgress, cache, wasm, tune = 'cache', fusion = 'on' } = options;
    if (weights === undefined) throw codedError('Session.create: `weights` is required', 'bad-input');
    if (!TUNE_MODES.includes(tune)) throw codedError(`Session.create: tune must be one of ${TUNE_MODES.join(', ')}, not ${JSON.stringify(tune)}`, 'bad-input');
    if (!FUSION_MODES.includes(fusion)) throw codedError(`Session.create: fusion must be one of ${FUSION_MODES.join(', ')}, not ${JSON.stringify(fusion)}`, 'bad-input');
    await initialize(wasm);
    const { bytes, name } = await weightBytes(weights, { onProgress, cache });
    const tuneCache = tune === 'off' ? undefined : await loadTuningCache();
    const config = { arch, options: archOptions, device, precision, labels, input, mean, std, grayscale: grayscale ?? false, replicate, key, tune, tune_cache: tuneCache, fusion };
    let session;
    try {
      const wasmSession = await WasmSession.create(JSON.stringify(config), bytes, name);
      session = new Session(wasmSession, JSON.parse(wasmSession.labels()));
    } catch (err) {
      throw coded(err);
    }
    if (tune === 'on') session.tuning = await session.tune();
    return session;
  }

  #live() {
    if (this.#disposed) throw codedError('this session was disposed of; create a new one', 'disposed');
    return this.#wasm;
  }

  /** Runs raw NCHW tensors (any batch): one, or `[x, residual]` for AFF and iAFF. */
  async run(input) {
    const wasm = this.#live();
    const inputs = (Array.isArray(input) ? input : [input]).map(checkTensor);
    try {
      return await wasm.run(inputs);
    } catch (err) {
      throw coded(err);
    }
  }

  /** Classifies an image with the model's own preprocessing. */
  async classify(image, { topK: k = 5, attention = false } = {}) {
    const wasm = this.#live();
    let result;
    try {
      if (isEncoded(image) && !browserDecodes()) {
        // No decoder in this context: gaze's own (JPEG and PNG), timed here.
        const bytes = image instanceof Blob ? new Uint8Array(await image.arrayBuffer()) : new Uint8Array(image.buffer ?? image, image.byteOffset ?? 0, image.byteLength);
        const start = performance.now();
        result = JSON.parse(await wasm.classify(bytes, 'image'));
        result.ms = performance.now() - start;
      } else {
        const { rgba, width, height } = await imageToRgba(image);
        result = JSON.parse(await wasm.classify_rgba(new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength), width, height, attention));
      }
    } catch (err) {
      throw coded(err);
    }
    const probabilities = Float32Array.from(result.probabilities);
    const out = { top: topK(probabilities, this.#labels, k), probabilities, ms: result.ms };
    if (attention) out.attention = result.attention;
    return out;
  }

  /** The image as the model sees it (resized, padded or cropped, gray or colour), as ImageData. */
  async inputView(image) {
    const wasm = this.#live();
    const { rgba, width, height } = await imageToRgba(image);
    let view;
    try {
      view = wasm.input_view_rgba(new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength), width, height);
    } catch (err) {
      throw coded(err);
    }
    const [h, w] = wasm.input_size();
    return new ImageData(new Uint8ClampedArray(view.buffer, view.byteOffset, view.byteLength), w, h);
  }

  /** The attention modules whose maps `classify(…, { attention: true })` returns, without data. */
  attentionBlocks() {
    try {
      return JSON.parse(this.#live().attention_blocks());
    } catch (err) {
      throw coded(err);
    }
  }

  /**
   * Times every kernel variant of each conv the model runs that this adapter has no cached
   * choice for, keeps the fastest (also for later visits) and runs them from now on.
   */
  async tune() {
    const wasm = this.#live();
    let report;
    try {
      report = JSON.parse(await wasm.tune());
    } catch (err) {
      throw coded(err);
    }
    await saveTuningCache(report.cache ?? undefined);
    return {
      tuningMs: report.tuning_ms,
      measured: report.measured.map(({ signature, variant, heuristic, ms }) => ({ signature, variant, heuristic, ms })),
    };
  }

  /** The kernel variant every op of the model runs on (batch 1), in order. */
  kernelVariants() {
    try {
      return JSON.parse(this.#live().kernel_variants());
    } catch (err) {
      throw coded(err);
    }
  }

  /** Destroys the GPU device as a driver reset would: for testing an app's recovery. */
  loseDeviceForTest() {
    this.#live().lose_device_for_test();
  }

  /** Frees the GPU buffers and the device now; later calls reject with code "disposed". */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#wasm.dispose();
    this.#wasm.free();
  }
}

export { CODES as ERROR_CODES };
