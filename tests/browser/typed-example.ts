// A typed app against gaze-web's declarations (web/pkg/index.d.ts and worker.d.ts), checked
// by `tsc --strict --noEmit` in CI: the API an app writes must type-check as documented.
import { Session, type Classification, type GazeError, type KernelVariant, type Tensor, type TuneReport } from 'gaze-web';
import { WorkerSession } from 'gaze-web/worker';

export async function app(img: HTMLImageElement, file: Blob): Promise<string> {
  const session = await Session.create({
    weights: 'models/fashion_mnist_mbv2_ta.safetensors',
    arch: 'auto',
    options: {},
    device: 'auto',
    precision: 'f32',
    labels: ['a', 'b'],
    input: [3, 28, 28],
    mean: [0.286, 0.286, 0.286],
    std: [0.353, 0.353, 0.353],
    grayscale: true,
    onProgress: ({ loaded, total }) => console.log(`${loaded}/${total}`),
    cache: 'gaze-weights',
    tune: 'cache',
  });
  const tuned: TuneReport = await session.tune();
  const slowest = tuned.measured.map((m) => Math.max(...Object.values(m.ms)));
  const variants: KernelVariant[] = session.kernelVariants();
  const where: 'gpu' | 'cpu' = session.device;
  const logits: Tensor = await session.run({ data: new Float32Array(2 * 3 * 28 * 28), dims: [2, 3, 28, 28] });
  const fused: Tensor = await session.run([logits, logits]);
  const result: Classification = await session.classify(img, { topK: 3, attention: true });
  const probabilities: Float32Array = result.probabilities;
  const maps = result.attention?.flatMap((block) => block.maps) ?? [];
  session.dispose();
  try {
    await session.classify(file);
  } catch (err) {
    const code = (err as GazeError).code;
    if (code !== 'disposed') throw err;
  }
  const worker = await WorkerSession.create({ weights: await file.arrayBuffer(), device: 'cpu', tune: 'on' });
  const inWorker: Classification = await worker.classify(file, { topK: 1 });
  const workerVariants: KernelVariant[] = await worker.kernelVariants();
  worker.dispose();
  // @ts-expect-error precision is "f32" or "f16"
  await Session.create({ weights: 'w', precision: 'f64' });
  // @ts-expect-error tune is "off", "cache" or "on"
  await Session.create({ weights: 'w', tune: 'always' });
  return `${where} ${fused.dims.join('×')} ${probabilities.length} ${maps.length} ${inWorker.top[0].label} ${session.adapter} ${slowest.length} ${variants.length} ${workerVariants.length} ${worker.tuning?.tuningMs}`;
}
