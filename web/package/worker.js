// WorkerSession: the Session API with the model in a dedicated Worker, so that decoding,
// preprocessing and the CPU fallback never block the page. Inputs and outputs move as
// transferables: a Float32Array or ArrayBuffer handed to run() or classify() is detached.
import { codedError } from './index.js';

function isTransferable(x) {
  return x instanceof ArrayBuffer || (typeof ImageBitmap !== 'undefined' && x instanceof ImageBitmap);
}

// What the Worker can receive of an image: elements and canvases are drawn into an ImageBitmap
// here (they cannot leave the page), everything else is sent as it is.
async function sendable(image) {
  const onPage = (typeof HTMLImageElement !== 'undefined' && image instanceof HTMLImageElement)
    || (typeof HTMLCanvasElement !== 'undefined' && image instanceof HTMLCanvasElement);
  if (!onPage) return image;
  if (image instanceof HTMLImageElement && (!image.complete || image.naturalWidth === 0)) await image.decode();
  return createImageBitmap(image, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
}

function bufferOf(x) {
  if (x instanceof ArrayBuffer) return x;
  if (ArrayBuffer.isView(x) && x.byteOffset === 0 && x.byteLength === x.buffer.byteLength) return x.buffer;
  return null;
}

export class WorkerSession {
  #worker;
  #pending = new Map();
  #next = 0;
  #disposed = false;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      const call = this.#pending.get(data.id);
      if (!call) return;
      if (data.progress) {
        call.onProgress?.(data.progress);
        return;
      }
      this.#pending.delete(data.id);
      if (data.error) call.reject(codedError(data.error.message, data.error.code));
      else call.resolve(data.result);
    };
    worker.onerror = (event) => {
      const err = codedError(`the gaze worker failed: ${event.message ?? 'unknown error'}`, 'internal');
      for (const call of this.#pending.values()) call.reject(err);
      this.#pending.clear();
    };
  }

  #call(op, args, transfer = [], onProgress) {
    if (this.#disposed) return Promise.reject(codedError('this session was disposed of; create a new one', 'disposed'));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** `Session.create` in a new dedicated Worker. */
  static async create(options = {}) {
    const worker = new Worker(new URL('./worker-host.js', import.meta.url), { type: 'module' });
    const session = new WorkerSession(worker);
    const { onProgress, ...rest } = options;
    // A relative URL means the page's, not the worker script's.
    const weights = typeof options.weights === 'string' || options.weights instanceof URL
      ? new URL(options.weights, globalThis.location?.href).href
      : options.weights;
    const buffer = bufferOf(weights);
    try {
      const info = await session.#call('create', { ...rest, weights, progress: Boolean(onProgress) }, buffer ? [buffer] : [], onProgress);
      Object.assign(session, info);
      return session;
    } catch (err) {
      worker.terminate();
      throw err;
    }
  }

  /** `Session.run`; the inputs' buffers are transferred to the Worker. */
  run(input) {
    const inputs = Array.isArray(input) ? input : [input];
    const transfer = inputs.map((t) => t?.data?.buffer).filter(isTransferable);
    return this.#call('run', input, [...new Set(transfer)]);
  }

  /** `Session.classify`; encoded images and bitmaps are transferred to the Worker. */
  async classify(image, options = {}) {
    const sent = await sendable(image);
    const buffer = bufferOf(sent);
    const transfer = buffer ? [buffer] : isTransferable(sent) ? [sent] : [];
    return this.#call('classify', { image: sent, options }, transfer);
  }

  /** `Session.tune`, in the Worker. */
  tune() {
    return this.#call('tune', null);
  }

  /** `Session.kernelVariants`, from the Worker. */
  kernelVariants() {
    return this.#call('kernelVariants', null);
  }

  /** Destroys the Worker's GPU device as a driver reset would: for testing recovery. */
  loseDeviceForTest() {
    return this.#call('loseDeviceForTest', null);
  }

  /** Frees the GPU memory and the device, and ends the Worker. */
  dispose() {
    if (this.#disposed) return;
    const done = this.#call('dispose', null);
    this.#disposed = true;
    done.finally(() => this.#worker.terminate());
  }
}
