import { execa } from 'execa';
import type { Argv } from './commands';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the command did not exit by itself: the runner killed it after `timeoutMs`. */
  timedOut?: boolean;
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
    const how = result.timedOut ? `timed out and killed, exit ${result.code}` : `exit ${result.code}`;
    super(`${argv.join(' ')} failed (${how}): ${(result.stderr || result.stdout).trim().split('\n').slice(-3).join(' / ')}`);
    this.name = 'CommandError';
  }
}

/** What runResultOf reads of an execa result or error (run with `reject: false`). */
export interface ExecaOutcome {
  exitCode?: number;
  signal?: string;
  timedOut: boolean;
  stdout?: unknown;
  stderr?: unknown;
  originalMessage?: string;
  shortMessage?: string;
}

/**
 * The exit code a Runner reports for what execa saw: the command's own code; 128 for one that a
 * signal ended (a timeout's SIGKILL included); 127, as a shell says it, for one that could not be
 * started at all (not installed, not executable), with the reason as its stderr.
 */
export function runResultOf(argv: Argv, r: ExecaOutcome): RunResult {
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = typeof r.stderr === 'string' ? r.stderr : '';
  if (r.exitCode !== undefined) return { code: r.exitCode, stdout, stderr };
  if (r.signal) return { code: 128, stdout, stderr, ...(r.timedOut ? { timedOut: true } : {}) };
  return { code: 127, stdout, stderr: `${argv[0]}: ${r.originalMessage ?? r.shortMessage ?? 'could not be started'}` };
}

export const systemRunner: Runner = {
  async run(argv, options = {}) {
    const r = await execa(argv[0]!, argv.slice(1), {
      reject: false,
      // A command that exits before reading its input must not fail the run (execa drops the EPIPE).
      ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
      // The environment given is the whole environment, as it was with spawn: no merging with ours.
      env: options.env ?? process.env,
      extendEnv: false,
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
      // Callers parse the output as the command wrote it.
      stripFinalNewline: false,
      encoding: 'utf8',
    });
    return runResultOf(argv, r);
  },
};

/** Runs and throws a CommandError that names the command and its last lines of output. */
export async function must(runner: Runner, argv: Argv, options?: Parameters<Runner['run']>[1]): Promise<RunResult> {
  const result = await runner.run(argv, options);
  if (result.code !== 0) throw new CommandError(argv, result);
  return result;
}
