// The inside of a WorkerSession: one Session in this dedicated Worker, driven by messages
// `{ id, op, args }` and answering `{ id, result }`, `{ id, error: { message, code } }` or, while
// weights download, `{ id, progress }`. Results move back as transferables.
import { Session } from './index.js';

let session = null;

function transfers(result) {
  if (result?.data instanceof Float32Array) return [result.data.buffer];
  if (result?.probabilities instanceof Float32Array) return [result.probabilities.buffer];
  return [];
}

const ops = {
  async create(id, options) {
    const onProgress = options.progress ? (p) => self.postMessage({ id, progress: p }) : undefined;
    session = await Session.create({ ...options, onProgress });
    return { arch: session.arch, device: session.device, adapter: session.adapter, tuning: session.tuning };
  },
  tune() {
    return session.tune();
  },
  kernelVariants() {
    return session.kernelVariants();
  },
  run(id, input) {
    return session.run(input);
  },
  // Encoded images are decoded here, off the page's thread: a large JPEG costs the page nothing.
  classify(id, { image, options }) {
    return session.classify(image, options);
  },
  loseDeviceForTest() {
    session.loseDeviceForTest();
    return null;
  },
  dispose() {
    session?.dispose();
    return null;
  },
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    if (op !== 'create' && !session) throw Object.assign(new Error('the worker has no session'), { code: 'disposed' });
    const result = await ops[op](id, args);
    self.postMessage({ id, result }, transfers(result));
  } catch (err) {
    self.postMessage({ id, error: { message: err?.message ?? String(err), code: err?.code ?? 'internal' } });
  }
};
