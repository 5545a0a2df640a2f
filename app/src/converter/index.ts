import { type ChildProcess, fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { failure } from './convert';
import { ConvertError } from './errors';
import { DEFAULT_LIMITS } from './isolate';
import type { ServeReply, ServeRequest } from './serve';
import type { ConvertJob, ConvertLimits, ConvertResult, Converter } from './types';

export type { ConvertJob, ConvertLimits, ConvertResult, Converter } from './types';

export interface ConverterOptions {
  /** `pool`: warm converter processes (the default); `process`: one process per job. */
  mode?: 'process' | 'pool';
  /** Warm processes kept (pool mode). @default 1 */
  poolSize?: number;
  /** A warm process is replaced after this many jobs. @default 50 */
  recycleAfterJobs?: number;
  /** A warm process is replaced after a job that leaves it above this RSS. @default 1024 */
  recycleMemoryMb?: number;
  /**
   * An operator's converter instead of ours, e.g. `/opt/vendor/conv --in {input} --out {outputDir}`.
   * Split on spaces (quotes group), placeholders replaced per argument, no shell. It must write the
   * contract's files; licences go through its environment or files, never this command line.
   */
  commandTemplate?: string;
  /** Extra environment for the converter process (a licence server address, say). */
  env?: Record<string, string>;
  limits?: Partial<ConvertLimits>;
  /** Where the converter's own stdout/stderr lines go. @default process.stderr */
  onOutput?: (line: string) => void;
}

const resultSchema = z.object({
  ok: z.boolean(),
  error: z.string().optional(),
  code: z.string().optional(),
  stats: z.object({
    triangles: z.number(),
    parts: z.number(),
    inputBytes: z.number(),
    outputBytes: z.number(),
    seconds: z.number(),
  }),
});

/** The cadfleet-convert launcher: CADFLEET_CONVERT_BIN, else bin/ of the package this file belongs to. */
export function converterBin(): string {
  if (process.env.CADFLEET_CONVERT_BIN) return process.env.CADFLEET_CONVERT_BIN;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'bin', 'cadfleet-convert.js');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find bin/cadfleet-convert.js; set CADFLEET_CONVERT_BIN');
    dir = parent;
  }
}

/** Reads and checks DIR/result.json; a missing or malformed one is a converter crash. */
export function readResult(outputDir: string, fallback: string): ConvertResult {
  try {
    const parsed = resultSchema.parse(JSON.parse(fs.readFileSync(path.join(outputDir, 'result.json'), 'utf8')));
    return parsed as ConvertResult;
  } catch {
    return failure(new ConvertError('crashed', fallback));
  }
}

/** Splits a command template into argv; single or double quotes group words. */
export function templateArgv(template: string, values: Record<string, string>): string[] {
  const words = template.match(/"[^"]*"|'[^']*'|\S+/g) ?? [];
  if (words.length === 0) throw new Error('the converter command template is empty');
  return words.map((word) =>
    word.replace(/^(["'])(.*)\1$/, '$2').replace(/\{(\w+)\}/g, (match, key: string) => values[key] ?? match),
  );
}

function rssMb(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

function forwardOutput(child: ChildProcess, onOutput: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line) onOutput(line);
    });
  }
}

/**
 * One process per job. Limits are enforced from outside as well: a watchdog on the child's
 * resident memory and a hard kill after the timeout, which also covers a third-party converter.
 */
function runProcess(argv: string[], job: ConvertJob, limits: ConvertLimits, options: ConverterOptions): Promise<ConvertResult> {
  const onOutput = options.onOutput ?? ((line) => process.stderr.write(`${line}\n`));
  return new Promise((resolve) => {
    fs.mkdirSync(job.outputDir, { recursive: true });
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    forwardOutput(child, onOutput);
    let killedFor: ConvertError | undefined;
    const kill = (reason: ConvertError): void => {
      killedFor ??= reason;
      child.kill('SIGKILL');
    };
    // Our converter stops itself at the limits; the outer guard allows it a margin to do so.
    const graceMs = options.commandTemplate ? 0 : 5000;
    const timer = setTimeout(
      () => kill(new ConvertError('timeout', `the conversion took longer than the limit of ${limits.timeoutMs / 1000} s and was stopped`)),
      limits.timeoutMs + graceMs,
    );
    const sampler = setInterval(() => {
      const mb = child.pid ? rssMb(child.pid) : 0;
      if (mb > limits.maxMemoryMb * (options.commandTemplate ? 1 : 1.25)) {
        kill(new ConvertError('memory', `the conversion used ${Math.round(mb)} MiB, over the limit of ${limits.maxMemoryMb} MiB, and was stopped`));
      }
    }, 100);
    const done = (code: number | null, signal: string | null): void => {
      clearTimeout(timer);
      clearInterval(sampler);
      if (killedFor) return resolve(failure(killedFor));
      const result = readResult(job.outputDir, `the converter exited (${signal ?? `code ${code}`}) without writing result.json`);
      if (result.ok || options.commandTemplate === undefined) return resolve(result);
      // A third-party converter that wrote a model but no result file: accept the model.
      const glb = path.join(job.outputDir, 'model.glb');
      if (code === 0 && fs.existsSync(glb)) {
        return resolve({ ok: true, stats: { triangles: 0, parts: 0, inputBytes: fs.statSync(job.input).size, outputBytes: fs.statSync(glb).size, seconds: 0 } });
      }
      resolve(result);
    };
    child.once('error', (err) => {
      clearTimeout(timer);
      clearInterval(sampler);
      resolve(failure(new ConvertError('crashed', `the converter could not be started: ${err.message}`)));
    });
    child.once('exit', done);
  });
}

class WarmProcess {
  private child: ChildProcess;
  private waiting = new Map<number, (reply: ConvertResult) => void>();
  readonly ready: Promise<void>;
  alive = true;
  busy = false;

  constructor(bin: string, options: ConverterOptions) {
    const onOutput = options.onOutput ?? ((line) => process.stderr.write(`${line}\n`));
    this.child = fork(
      bin,
      ['--serve', '--recycle-after-jobs', String(options.recycleAfterJobs ?? 50), '--recycle-memory-mb', String(options.recycleMemoryMb ?? 1024)],
      { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, ...options.env } },
    );
    forwardOutput(this.child, onOutput);
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (msg: ServeReply) => {
        if (msg.type === 'ready') resolve();
        if (msg.type === 'result') {
          if (msg.recycling) this.alive = false;
          this.waiting.get(msg.id)?.(msg.result as ConvertResult);
          this.waiting.delete(msg.id);
        }
      });
      this.child.once('exit', (code, signal) => {
        this.alive = false;
        reject(new Error(`warm converter exited before it was ready (${signal ?? `code ${code}`})`));
        for (const settle of this.waiting.values()) {
          settle(failure(new ConvertError('crashed', `the warm converter process died (${signal ?? `code ${code}`})`)));
        }
        this.waiting.clear();
      });
    });
    this.ready.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  convert(id: number, job: ConvertJob, limits: ConvertLimits): Promise<ConvertResult> {
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      // Outer guard in case the process itself hangs (it stops its own jobs at the limit).
      const guard = setTimeout(() => this.kill(), limits.timeoutMs + 10_000);
      this.waiting.set(id, (result) => {
        clearTimeout(guard);
        resolve(result);
      });
      this.child.send({ type: 'convert', id, job, limits } satisfies ServeRequest);
    });
  }

  kill(): void {
    this.alive = false;
    this.child.kill('SIGKILL');
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Warm converter processes, one job at a time each, replaced when they recycle or die. */
class PoolConverter implements ManagedConverter {
  private readonly processes: WarmProcess[] = [];
  private readonly queue: Array<() => void> = [];
  private nextId = 1;
  private closed = false;
  private started = 0;

  constructor(
    private readonly bin: string,
    private readonly options: ConverterOptions,
    private readonly limits: ConvertLimits,
  ) {}

  private async acquire(): Promise<WarmProcess> {
    for (;;) {
      if (this.closed) throw new Error('the converter pool is closed');
      for (let i = this.processes.length - 1; i >= 0; i--) if (!this.processes[i]!.alive) this.processes.splice(i, 1);
      const idle = this.processes.find((p) => !p.busy);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      if (this.processes.length < (this.options.poolSize ?? 1)) {
        const fresh = new WarmProcess(this.bin, this.options);
        this.started++;
        fresh.busy = true;
        this.processes.push(fresh);
        return fresh;
      }
      await new Promise<void>((resolve) => this.queue.push(resolve));
    }
  }

  private release(proc: WarmProcess): void {
    proc.busy = false;
    if (!proc.alive) void proc.close();
    this.queue.shift()?.();
  }

  async convert(job: ConvertJob, limits?: Partial<ConvertLimits>): Promise<ConvertResult> {
    const proc = await this.acquire();
    try {
      fs.mkdirSync(job.outputDir, { recursive: true });
      await proc.ready;
      return await proc.convert(this.nextId++, job, { ...this.limits, ...limits });
    } catch (err) {
      proc.kill();
      return failure(new ConvertError('crashed', (err as Error).message));
    } finally {
      this.release(proc);
    }
  }

  /** How many warm processes this pool has started, recycled ones included. */
  stats(): { processesStarted: number; alive: number } {
    return { processesStarted: this.started, alive: this.processes.filter((p) => p.alive).length };
  }

  /** Starts the pool's processes ahead of the first job. */
  async warmUp(): Promise<void> {
    const procs = await Promise.all(Array.from({ length: this.options.poolSize ?? 1 }, () => this.acquire()));
    await Promise.all(procs.map((p) => p.ready.catch(() => undefined)));
    procs.forEach((p) => this.release(p));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const resolve of this.queue.splice(0)) resolve();
    await Promise.all(this.processes.map((p) => p.close()));
  }
}

/** The converter the worker service uses: our warm pool, one process per job, or an operator's command. */
export interface ManagedConverter extends Converter {
  warmUp(): Promise<void>;
  stats(): { processesStarted: number; alive: number };
}

const NO_POOL = (): { processesStarted: number; alive: number } => ({ processesStarted: 0, alive: 0 });

export function createConverter(options: ConverterOptions = {}): ManagedConverter {
  const limits: ConvertLimits = { ...DEFAULT_LIMITS, ...options.limits };
  if (options.commandTemplate !== undefined) {
    const template = options.commandTemplate;
    templateArgv(template, {}); // refuse an empty template at start, not at the first job
    return {
      convert: (job, over) =>
        runProcess(templateArgv(template, { input: job.input, outputDir: job.outputDir, quality: job.quality ?? 'normal', baseDir: job.baseDir ?? path.dirname(job.input) }), job, { ...limits, ...over }, options),
      warmUp: async () => undefined,
      stats: NO_POOL,
      close: async () => undefined,
    };
  }
  const bin = converterBin();
  if (options.mode === 'process') {
    return {
      convert: (job, over) => {
        const l = { ...limits, ...over };
        const argv = [process.execPath, bin, '--input', job.input, '--output-dir', job.outputDir, '--quality', job.quality ?? 'normal', ...(job.baseDir ? ['--base-dir', job.baseDir] : []), '--timeout', String(l.timeoutMs / 1000), '--max-memory', String(l.maxMemoryMb)];
        return runProcess(argv, job, l, options);
      },
      warmUp: async () => undefined,
      stats: NO_POOL,
      close: async () => undefined,
    };
  }
  return new PoolConverter(bin, options, limits);
}
