// The system runner's contract, which every caller's error handling reads: the command's own
// exit code, 128 for a signal (a timeout's kill included), 127 for a command that cannot start,
// the output as written, the environment given as the whole environment.
import { describe, expect, it } from 'vitest';
import { CommandError, must, systemRunner } from '../../../cli/src/local/exec';

describe('systemRunner', () => {
  it('gives the exit code and the output as the command wrote it', async () => {
    expect(await systemRunner.run(['sh', '-c', 'echo out; echo err >&2; exit 3'])).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('says 127 and why for a command that cannot be started', async () => {
    expect(await systemRunner.run(['cadfleet-no-such-tool', '--version'])).toEqual({ code: 127, stdout: '', stderr: 'cadfleet-no-such-tool: spawn cadfleet-no-such-tool ENOENT' });
  });

  it('kills a command at its timeout, and the error says it timed out', async () => {
    const started = performance.now();
    const r = await systemRunner.run(['sleep', '10'], { timeoutMs: 200 });
    expect(performance.now() - started).toBeLessThan(5000);
    expect(r).toEqual({ code: 128, stdout: '', stderr: '', timedOut: true });
    await expect(must(systemRunner, ['sleep', '10'], { timeoutMs: 200 })).rejects.toThrow(/^sleep 10 failed \(timed out and killed, exit 128\)/);
  });

  it('feeds input, and a command that does not read it still succeeds', async () => {
    expect((await systemRunner.run(['cat'], { input: 'hello\n' })).stdout).toBe('hello\n');
    expect((await systemRunner.run(['true'], { input: 'x'.repeat(4 * 1024 * 1024) })).code).toBe(0);
    // Without input, stdin is closed: a reader gets end of file, not this test's terminal.
    expect((await systemRunner.run(['sh', '-c', 'read x || echo eof'])).stdout).toBe('eof\n');
  });

  it('runs with exactly the environment given', async () => {
    const r = await systemRunner.run(['sh', '-c', 'echo "$FOO|${HOME:-unset}"'], { env: { FOO: 'bar', PATH: process.env.PATH } });
    expect(r.stdout).toBe('bar|unset\n');
  });

  it('names the command and the last lines of its output when it fails', async () => {
    const err = await must(systemRunner, ['sh', '-c', 'echo 1; echo 2; echo 3; echo 4 >&2; exit 5']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).message).toBe('sh -c echo 1; echo 2; echo 3; echo 4 >&2; exit 5 failed (exit 5): 4');
  });
});
