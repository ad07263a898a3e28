// Types of gaze-web/worker: the Session API, run in a dedicated Worker.
import type { SessionOptions, Tensor, ImageInput, ClassifyOptions, Classification, TuneReport, KernelVariant } from './index.js';

export declare class WorkerSession {
  static create(options: SessionOptions): Promise<WorkerSession>;
  readonly arch: string;
  readonly device: 'gpu' | 'cpu';
  readonly adapter: string;
  /** The inputs' buffers are transferred to the Worker (detached here). */
  run(input: Tensor | Tensor[]): Promise<Tensor>;
  /** Encoded images and bitmaps are transferred to the Worker. */
  classify(image: ImageInput, options?: ClassifyOptions): Promise<Classification>;
  readonly tuning?: TuneReport;
  tune(): Promise<TuneReport>;
  kernelVariants(): Promise<KernelVariant[]>;
  /** Destroys the GPU device as a driver reset would: for testing an app's recovery. */
  loseDeviceForTest(): Promise<void>;
  dispose(): void;
}
