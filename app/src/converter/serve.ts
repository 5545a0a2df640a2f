import { IsolatedConverter } from './isolate';
import { writeOutput } from './output';
import type { ConvertJob, ConvertLimits, ConvertResult } from './types';

/** Parent -> warm converter. */
export interface ServeRequest {
  type: 'convert';
  id: number;
  job: ConvertJob;
  limits: ConvertLimits;
}

/** Warm converter -> parent. `recycling` says the process exits after this reply. */
export type ServeReply = { type: 'ready' } | { type: 'result'; id: number; result: ConvertResult; recycling: boolean };

export interface ServeOptions {
  entry: URL;
  maxInputBytes: number;
  recycleAfterJobs: number;
  recycleMemoryMb: number;
}

/**
 * Warm mode: keeps the WebAssembly engines loaded across jobs and serves the parent over the
 * IPC channel of child_process.fork (stdout stays free for the engines' chatter). The process
 * exits after N jobs, after a job that leaves it holding too much memory (WebAssembly memory
 * never shrinks), or after a limit stopped a job.
 */
export async function serve(options: ServeOptions): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('cadfleet-convert: --serve needs a parent process with an IPC channel (child_process.fork)\n');
    return 2;
  }
  const converter = new IsolatedConverter(options.entry, { maxInputBytes: options.maxInputBytes, preload: true });
  const reply = (msg: ServeReply): Promise<void> => new Promise((resolve) => send(msg, undefined, {}, () => resolve()));
  let busy = Promise.resolve();
  return new Promise<number>((resolve) => {
    const finish = (code: number): void => {
      void converter.terminate().then(() => resolve(code));
    };
    process.on('disconnect', () => finish(0));
    process.on('message', (msg: ServeRequest) => {
      if (msg?.type !== 'convert') return;
      busy = busy.then(async () => {
        const result = await converter.convert(msg.job, msg.limits);
        await writeOutput(msg.job.outputDir, 'result.json', JSON.stringify(result, null, 1) + '\n').catch(() => undefined);
        const rssMb = process.memoryUsage.rss() / 1024 ** 2;
        const recycling =
          converter.jobsDone >= options.recycleAfterJobs ||
          rssMb > options.recycleMemoryMb ||
          (!result.ok && (result.code === 'timeout' || result.code === 'memory' || result.code === 'crashed'));
        await reply({ type: 'result', id: msg.id, result, recycling });
        if (recycling) {
          process.disconnect();
          finish(0);
        }
      });
    });
    // Load the engines before saying ready, so the first job is warm too.
    void converter.warmUp().then(
      () => reply({ type: 'ready' }),
      (err: Error) => {
        process.stderr.write(`cadfleet-convert: the engines did not load: ${err.message}\n`);
        finish(4);
      },
    );
  });
}
