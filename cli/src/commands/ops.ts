import { Command, InvalidArgumentError } from 'commander';
import { execa } from 'execa';
import { loadEnvironment, resolveHosts, sshTo, type Environment, type TargetHost } from '../environment';
import { targetOf } from '../target';

const fail = (message: string, code = 1): void => {
  process.stderr.write(`cadfleet: ${message}\n`);
  process.exitCode = code;
};

/** SSH's exit code 255 is its own failure (no route, refused, key rejected), not the remote command's. */
const SSH_FAILED = 255;

interface Streamed {
  code: number;
  stderr: string;
}

/** Runs ssh to a host, handing each output line to `onLine` as it comes (the last unterminated one too); never throws for a host that is down. */
async function streamFrom(argv: readonly string[], onLine: (line: string, stream: 'out' | 'err') => void): Promise<Streamed> {
  // Not buffered: `logs -f` runs for as long as the operator watches.
  const child = execa(argv[0]!, argv.slice(1), { stdin: 'ignore', buffer: false, reject: false });
  let stderr = '';
  const read = async (from: 'stdout' | 'stderr', name: 'out' | 'err'): Promise<void> => {
    for await (const line of child.iterable({ from })) {
      if (name === 'err') stderr += `${line}\n`;
      onLine(line, name);
    }
  };
  const [, , r] = await Promise.all([read('stdout', 'out'), read('stderr', 'err'), child]);
  if (r.exitCode !== undefined) return { code: r.exitCode, stderr };
  return { code: SSH_FAILED, stderr: r.signal ? stderr : (r.originalMessage ?? stderr) };
}

/** What to look at when a host does not answer: the fleet's own status locally, EC2 and Session Manager on AWS. */
export const runningHint = (env: Environment, host: TargetHost): string => targetOf(env).runningHint(host);

const unreachable = (env: Environment, host: TargetHost, stderr: string): string =>
  `${host.name} (${host.address}) did not answer: ${stderr.trim().split('\n').pop() || 'ssh failed'}; ${runningHint(env, host)}`;

function withEnv(action: (env: Environment, ...rest: never[]) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    const opts = args.find((a): a is { env: string } => typeof a === 'object' && a !== null && 'env' in a)!;
    let env: Environment;
    try {
      env = await loadEnvironment(opts.env);
    } catch (err) {
      return fail((err as Error).message, 2);
    }
    try {
      await (action as (env: Environment, ...rest: unknown[]) => Promise<void>)(env, ...args);
    } catch (err) {
      fail((err as Error).message);
    }
  };
}

export function sshCommandLine(): Command {
  return new Command('ssh')
    .description('Open a shell on a host, or run one command there (after --).')
    .requiredOption('--env <name>', 'environment')
    .argument('<host>', 'a host name, a role (its first host) or role/index, e.g. api/2')
    .argument('[command...]', 'a command to run instead of a shell')
    .addHelpText('after', '\nExamples:\n  $ cadfleet ssh --env local worker/2\n  $ cadfleet ssh --env local api -- systemctl status cadfleet-api')
    .action(
      withEnv(async (env: Environment, selector: string, command: string[]) => {
        const host = resolveHosts(env, selector)[0]!;
        const tty = command.length === 0 && process.stdin.isTTY;
        const argv = sshTo(env, host, command, { tty });
        const code = (await execa(argv[0]!, argv.slice(1), { stdio: 'inherit', reject: false })).exitCode ?? SSH_FAILED;
        if (code === SSH_FAILED) fail(`${host.name} (${host.address}) did not answer SSH; ${runningHint(env, host)}`, SSH_FAILED);
        else process.exitCode = code;
      }),
    );
}

export function execCommandLine(): Command {
  return new Command('exec')
    .description('Run a command on every host of a role (or on one host), output prefixed by host.')
    .requiredOption('--env <name>', 'environment')
    .argument('<hosts>', 'a role, role/index or host name')
    .argument('<command...>', 'the command (after --)')
    .option('--json', 'one JSON object per host: {host, code, stdout, stderr}')
    .addHelpText('after', '\nExample:\n  $ cadfleet exec --env local worker -- systemctl is-active cadfleet-worker')
    .action(
      withEnv(async (env: Environment, selector: string, command: string[], opts: { json?: boolean }) => {
        const hosts = resolveHosts(env, selector);
        const width = Math.max(...hosts.map((h) => h.name.length));
        const results = await Promise.all(
          hosts.map(async (host) => {
            let stdout = '';
            const r = await streamFrom(sshTo(env, host, command), (line, stream) => {
              if (stream === 'out') stdout += `${line}\n`;
              if (!opts.json && stream === 'out') process.stdout.write(`${host.name.padEnd(width)} | ${line}\n`);
            });
            return { host, ...r, stdout };
          }),
        );
        let failed = 0;
        for (const r of results) {
          if (opts.json) process.stdout.write(`${JSON.stringify({ host: r.host.name, code: r.code, stdout: r.stdout, stderr: r.stderr, reachable: r.code !== SSH_FAILED })}\n`);
          if (r.code === SSH_FAILED) {
            failed++;
            process.stderr.write(`${unreachable(env, r.host, r.stderr)}\n`);
          } else if (r.code !== 0) {
            failed++;
            process.stderr.write(`${r.host.name}: exit ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').pop()}` : ''}\n`);
          }
        }
        if (failed) process.exitCode = 1;
      }),
    );
}

const UNITS: Readonly<Record<string, string>> = { s: 's', sec: 's', second: 's', seconds: 's', m: 'min', min: 'min', minute: 'min', minutes: 'min', h: 'h', hour: 'h', hours: 'h', d: 'd', day: 'd', days: 'd' };

/** "10 min ago", "2h", "today", "2026-01-31 12:00" -> what journalctl's --since takes. */
export function since(value: string): string {
  const relative = /^(\d+)\s*([a-z]+)(\s+ago)?$/.exec(value.trim());
  if (relative && UNITS[relative[2]!]) return `-${relative[1]}${UNITS[relative[2]!]}`;
  if (/^(today|yesterday|\d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?)?)$/.test(value.trim())) return value.trim();
  throw new InvalidArgumentError(`must be like "10 min ago", "2h", "today" or "2026-01-31 12:00", got ${JSON.stringify(value)}.`);
}

/** The journalctl command line `cadfleet logs` runs on each host. */
export function journalctlArgv(options: { unit: string; since?: string; lines?: number; follow?: boolean }): string[] {
  return [
    'sudo',
    'journalctl',
    '--no-pager',
    '--output=short-iso-precise',
    `--unit=${options.unit}`,
    ...(options.since ? [`--since=${options.since}`] : []),
    ...(options.lines !== undefined ? [`--lines=${options.lines}`] : []),
    ...(options.follow ? ['--follow'] : []),
  ];
}

export function logsCommandLine(): Command {
  return new Command('logs')
    .description("Journal lines of the cadfleet services on a role's hosts, interleaved by time, each with its host.")
    .requiredOption('--env <name>', 'environment')
    .argument('<hosts>', 'a role, role/index or host name')
    .option('-f, --follow', 'keep printing new lines')
    .option('--since <when>', 'from this time on ("10 min ago", "1h", "today")', since)
    .option('-n, --lines <n>', 'the last N lines of each host', (v) => Number.parseInt(v, 10))
    .option('-u, --unit <unit>', 'the systemd unit (default: the role\'s cadfleet unit)')
    .addHelpText('after', '\nExamples:\n  $ cadfleet logs --env local worker --since "10 min ago"\n  $ cadfleet logs --env local api/1 -f')
    .action(
      withEnv(async (env: Environment, selector: string, opts: { follow?: boolean; since?: string; lines?: number; unit?: string }) => {
        const hosts = resolveHosts(env, selector);
        const width = Math.max(...hosts.map((h) => h.name.length));
        const collected: Array<{ stamp: string; text: string }> = [];
        const results = await Promise.all(
          hosts.map(async (host) => {
            const argv = sshTo(env, host, journalctlArgv({ unit: opts.unit ?? `cadfleet-${host.role}*`, since: opts.since, lines: opts.lines, follow: opts.follow }));
            return {
              host,
              ...(await streamFrom(argv, (line, stream) => {
                if (stream !== 'out' || line.startsWith('-- ')) return;
                const text = `${host.name.padEnd(width)} | ${line}`;
                if (opts.follow) process.stdout.write(`${text}\n`);
                else collected.push({ stamp: line.split(' ')[0] ?? '', text });
              })),
            };
          }),
        );
        // short-iso-precise stamps sort as text: interleave the hosts by time.
        collected.sort((a, b) => (a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : 0));
        for (const line of collected) process.stdout.write(`${line.text}\n`);
        const down = results.filter((r) => r.code === SSH_FAILED);
        for (const r of down) process.stderr.write(`${unreachable(env, r.host, r.stderr)}\n`);
        if (down.length) process.exitCode = 1;
      }),
    );
}
