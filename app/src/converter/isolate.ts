import fs from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { convertFile, type ConvertOptions, failure } from './convert';
import { ConvertError } from './errors';
import { preloadEngines } from './importers/index';
import type { ConvertJob, ConvertLimits, ConvertResult } from './types';

export const DEFAULT_LIMITS: ConvertLimits = { timeoutMs: 300_000, maxMemoryMb: 2048 };

/** How often resident memory is sampled. WebAssembly grows in large steps; 50 ms keeps overshoot small. */
const SAMPLE_MS = 50;
const WORKER_KIND = 'cadfleet-convert-worker';

interface WorkerRequest {
  id: number;
  job: ConvertJob;
  options: ConvertOptions;
}
interface WorkerReply {
  id: number;
  result: ConvertResult;
}

/** True when this module runs as the conversion thread that IsolatedConverter started. */
export const isConvertWorker = (): boolean => !isMainThread && (workerData as { kind?: string } | null)?.kind === WORKER_KIND;

/** The conversion thread's loop: one job at a time, engines kept loaded between jobs. */
export async function runConvertWorker(): Promise<void> {
  const port = parentPort!;
  if ((workerData as { preload?: boolean }).preload) await preloadEngines();
  port.on('message', (request: WorkerRequest) => {
    void convertFile(request.job, request.options).then((result) => port.postMessage({ id: request.id, result } satisfies WorkerReply));
  });
  port.postMessage({ ready: true });
}

/**
 * Runs conversions in a worker thread of this process while the main thread watches the clock
 * and the process's resident memory. RLIMIT_AS cannot cap WebAssembly (V8 reserves ~10 GiB of
 * address space up front), so the cap is a watchdog on RSS; where the host has cgroups, the
 * systemd unit's MemoryMax is the hard outer limit.
 */
export class IsolatedConverter {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private nextId = 1;
  jobsDone = 0;

  constructor(
    private readonly entry: URL,
    private readonly options: ConvertOptions & { preload: boolean },
  ) {}

  /** Starts the conversion thread (and, with `preload`, loads every engine) ahead of the first job. */
  warmUp(): Promise<void> {
    if (this.ready) return this.ready;
    const worker = new Worker(this.entry, {
      workerData: { kind: WORKER_KIND, preload: this.options.preload },
      // The engines print diagnostics with console.log; keep stdout free of them.
      stdout: true,
    });
    worker.stdout.pipe(process.stderr);
    this.worker = worker;
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (msg: { ready?: boolean }): void => {
        if (msg.ready) {
          worker.off('error', reject);
          resolve();
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
    return this.ready;
  }

  async convert(job: ConvertJob, limits: ConvertLimits): Promise<ConvertResult> {
    const started = performance.now();
    const elapsed = (): number => Math.round((performance.now() - started) / 10) / 100;
    let inputBytes = 0;
    try {
      inputBytes = fs.statSync(job.input).size;
    } catch {
      // convertFile reports a missing input with the right message.
    }
    const failed = (err: ConvertError): ConvertResult => failure(err, { inputBytes, seconds: elapsed() });
    try {
      await this.warmUp();
    } catch (err) {
      await this.terminate();
      return failed(new ConvertError('crashed', `the conversion thread did not start: ${(err as Error).message}`));
    }
    const worker = this.worker!;
    const id = this.nextId++;
    let timer: NodeJS.Timeout | undefined;
    let sampler: NodeJS.Timeout | undefined;
    const outcome = new Promise<ConvertResult>((resolve) => {
      const onMessage = (msg: WorkerReply): void => {
        if (msg.id === id) resolve(msg.result);
      };
      const onError = (err: Error): void => resolve(failed(new ConvertError('crashed', `the converter crashed: ${err.message}`)));
      const onExit = (code: number): void => resolve(failed(new ConvertError('crashed', `the conversion thread exited (code ${code})`)));
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      timer = setTimeout(() => {
        resolve(failed(new ConvertError('timeout', `the conversion took longer than the limit of ${limits.timeoutMs / 1000} s and was stopped; try --quality coarse or raise the time limit`)));
      }, limits.timeoutMs);
      sampler = setInterval(() => {
        const rssMb = process.memoryUsage.rss() / 1024 ** 2;
        if (rssMb > limits.maxMemoryMb) {
          resolve(failed(new ConvertError('memory', `the conversion used ${Math.round(rssMb)} MiB, over the limit of ${limits.maxMemoryMb} MiB, and was stopped; try --quality coarse or raise the memory limit`)));
        }
      }, SAMPLE_MS);
      worker.postMessage({ id, job, options: { maxInputBytes: this.options.maxInputBytes, limits } } satisfies WorkerRequest);
    });
    const result = await outcome;
    clearTimeout(timer);
    clearInterval(sampler);
    this.jobsDone++;
    if (!result.ok && (result.code === 'timeout' || result.code === 'memory' || result.code === 'crashed')) {
      // The thread may still be running or holding gigabytes of WebAssembly memory: drop it.
      await this.terminate();
    }
    return result;
  }

  /** Stops the conversion thread; resolves false if it did not stop within the grace period. */
  async terminate(graceMs = 3000): Promise<boolean> {
    const worker = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    if (!worker) return true;
    let grace: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      worker.terminate().then(() => true),
      new Promise<boolean>((resolve) => (grace = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(grace);
    return stopped;
  }
}
