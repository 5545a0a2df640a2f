// The converter contract shared by the CLI, the warm pool and the worker service.
// DESIGN.md: `cadfleet-convert --input FILE --output-dir DIR [--quality coarse|normal|fine]`
// writes DIR/model.glb, DIR/manifest.json and DIR/result.json.

export const QUALITIES = ['coarse', 'normal', 'fine'] as const;
export type Quality = (typeof QUALITIES)[number];

export interface ConvertStats {
  triangles: number;
  parts: number;
  inputBytes: number;
  outputBytes: number;
  seconds: number;
}

/** The content of result.json. */
export interface ConvertResult {
  ok: boolean;
  error?: string;
  /** Machine-readable reason, for the service to decide on retries (`timeout` and `memory` are not retried forever). */
  code?: ConvertErrorCode;
  stats: ConvertStats;
}

export type ConvertErrorCode =
  | 'unsupported'
  | 'empty'
  | 'too-large'
  | 'corrupt'
  | 'unsafe-reference'
  | 'timeout'
  | 'memory'
  | 'crashed'
  | 'internal';

export interface ConvertJob {
  input: string;
  outputDir: string;
  quality?: Quality;
  /**
   * The folder that files the model references (MTL, .bin, textures) may come from: an
   * extracted archive's root, so `../textures/a.png` from a model in a subfolder resolves.
   * @default the input's own folder
   */
  baseDir?: string;
}

export interface ConvertLimits {
  /** Wall-clock limit for one conversion. */
  timeoutMs: number;
  /** Resident memory limit of the converting process, in MiB. */
  maxMemoryMb: number;
}

/** What the worker service calls: one conversion at a time per call, results per the contract. */
export interface Converter {
  convert(job: ConvertJob, limits?: Partial<ConvertLimits>): Promise<ConvertResult>;
  close(): Promise<void>;
}
