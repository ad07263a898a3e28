// Types of gaze-web (index.js and worker.js).

/** What every rejection's `code` says went wrong. */
export type ErrorCode =
  | 'no-adapter'
  | 'device-lost'
  | 'bad-checkpoint'
  | 'bad-input'
  | 'f16-unsupported'
  | 'disposed'
  | 'internal';

/** The `Error`s this package rejects with. */
export interface GazeError extends Error {
  code: ErrorCode;
}

/** A float32 NCHW tensor. */
export interface Tensor {
  data: Float32Array;
  dims: number[];
}

export interface Progress {
  loaded: number;
  total: number;
}

export interface SessionOptions {
  /** A URL, or the bytes of a .safetensors or torch.save file. */
  weights: string | URL | ArrayBuffer | Uint8Array | Blob;
  /** "auto" (read from the checkpoint's keys) or any `gaze run --arch` name. */
  arch?: string;
  /** Architecture options, as `--opt`: e.g. `{ sa_type: "patchwise" }`. */
  options?: Record<string, string>;
  device?: 'auto' | 'gpu' | 'cpu';
  precision?: 'f32' | 'f16';
  /** Class names; default: ImageNet's for a 1000-class head, else "class i". */
  labels?: string[];
  /** `[C, H, W]` of one image with its normalization, as in models.json; default: ImageNet's. */
  input?: [number, number, number];
  mean?: number[];
  std?: number[];
  grayscale?: boolean;
  /** Photos fitted to `input / replicate`, each pixel repeated (models.json's field). */
  replicate?: number;
  /** The entry of a torch.save container that holds the weights (`--key`). */
  key?: string;
  /** Called while the weights download. */
  onProgress?: (progress: Progress) => void;
  /** A Cache API name: downloaded weights are kept across visits. */
  cache?: string;
  /** The wasm module's URL, if not beside index.js. */
  wasm?: string | URL;
  /**
   * How the model's convs choose their kernel variants: "cache" (default: the choices measured
   * on this adapter and browser before, kept in IndexedDB, else a heuristic by device type),
   * "off" (the heuristic alone) or "on" (measure what is not cached before `create` resolves;
   * `session.tuning` says what it measured).
   */
  tune?: 'off' | 'cache' | 'on';
  /**
   * Whether the model's plans fuse ops into their neighbours' kernels: "on" (default: each
   * fusion where it pays; Coordinate Attention's means are summed in the depthwise conv before
   * it, and on GPUs its gates are computed from those sums in one kernel and its multiply is
   * applied as the 1×1 conv after it loads its input; SAN's relation is written straight
   * into the concatenation its conv_w reads), "off", or "everywhere" (each fusion on
   * any device, to measure it).
   */
  fusion?: 'on' | 'off' | 'everywhere';
}

/** One conv the tuner timed. */
export interface TunedConv {
  /** Its shapes and geometry, e.g. `conv2d x1x64x56x56 w64x64x3x3 s1x1 p1x1 d1x1 g1 f32`. */
  signature: string;
  /** The fastest variant, which the model now runs. */
  variant: string;
  /** What the heuristic would have run. */
  heuristic: string;
  /** Milliseconds per variant timed. */
  ms: Record<string, number>;
}

export interface TuneReport {
  tuningMs: number;
  /** Empty when every conv was cached already. */
  measured: TunedConv[];
}

export interface KernelVariant {
  /** `<model part> <kernel>` */
  op: string;
  variant: string;
}

/** Anything the browser decodes, or pixels. */
export type ImageInput =
  | HTMLImageElement
  | ImageBitmap
  | ImageData
  | HTMLCanvasElement
  | OffscreenCanvas
  | VideoFrame
  | Blob
  | ArrayBuffer
  | Uint8Array;

export interface ClassifyOptions {
  topK?: number;
  /** Also return every attention module's maps. */
  attention?: boolean;
}

export interface Prediction {
  index: number;
  label: string;
  probability: number;
}

export interface AttentionMap {
  label: string;
  rows: number;
  cols: number;
  /** `[H, W]` when each column is a pixel and each row a tap of its window (SAN). */
  pixels?: [number, number];
  data: number[];
}

export interface AttentionBlock {
  block: string;
  kind: 'triplet' | 'coord' | 'aff' | 'iaff' | 'san';
  maps: AttentionMap[];
}

export interface Classification {
  top: Prediction[];
  probabilities: Float32Array;
  attention?: AttentionBlock[];
  /** The inference alone, in milliseconds. */
  ms: number;
}

export declare class Session {
  static create(options: SessionOptions): Promise<Session>;
  readonly arch: string;
  readonly device: 'gpu' | 'cpu';
  /** The adapter's name, as the browser gives it ("" on the CPU). */
  readonly adapter: string;
  /** Logits for networks, the output for modules; `[x, residual]` for AFF and iAFF. */
  run(input: Tensor | Tensor[]): Promise<Tensor>;
  classify(image: ImageInput, options?: ClassifyOptions): Promise<Classification>;
  /** Frees the GPU buffers and device now; later calls reject with code "disposed". */
  /** The image as the model sees it (resized, padded or cropped, gray or colour). */
  inputView(image: ImageInput): Promise<ImageData>;
  /** The attention modules whose maps `classify(…, { attention: true })` returns, without data. */
  attentionBlocks(): Array<Omit<AttentionBlock, 'maps'> & { maps: Array<Omit<AttentionMap, 'data'>> }>;
  /** What `tune: "on"` measured while the session was created. */
  readonly tuning?: TuneReport;
  /** Measures the variants of every conv not tuned on this adapter yet, and runs the fastest. */
  tune(): Promise<TuneReport>;
  /** The kernel variant every op runs on (batch 1), in order. */
  kernelVariants(): KernelVariant[];
  /** Destroys the GPU device as a driver reset would: for testing an app's recovery. */
  loseDeviceForTest(): void;
  dispose(): void;
}

export declare function codedError(message: string, code: ErrorCode): GazeError;
export declare function initialize(wasm?: string | URL): Promise<unknown>;
export declare function architectures(): Promise<string[]>;
/** Bytes of GPU buffers held now by every session: a debug counter. */
export declare function liveGpuBytes(): Promise<number>;
export declare function imageToRgba(image: ImageInput): Promise<{ rgba: Uint8ClampedArray; width: number; height: number }>;
export declare const ERROR_CODES: Set<ErrorCode>;
