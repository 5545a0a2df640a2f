import { spawn } from 'node:child_process';
import type { Argv } from './commands';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs commands that builders produced; the only place the local fleet touches the system. */
export interface Runner {
  run(argv: Argv, options?: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
}

export class CommandError extends Error {
  constructor(
    readonly argv: Argv,
    readonly result: RunResult,
  ) {
    super(`${argv.join(' ')} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim().split('\n').slice(-3).join(' / ')}`);
    this.name = 'CommandError';
  }
}

export const systemRunner: Runner = {
  run(argv, options = {}) {
    return new Promise((resolve) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve({ code: 127, stdout, stderr: `${argv[0]}: ${err.message}` });
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      if (child.stdin) {
        // A command that exits before reading its input must not crash us with EPIPE.
        child.stdin.on('error', () => undefined);
        child.stdin.end(options.input);
      }
    });
  },
};

/** Runs and throws a CommandError that names the command and its last lines of output. */
export async function must(runner: Runner, argv: Argv, options?: Parameters<Runner['run']>[1]): Promise<RunResult> {
  const result = await runner.run(argv, options);
  if (result.code !== 0) throw new CommandError(argv, result);
  return result;
}
