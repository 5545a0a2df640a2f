import { Command } from 'commander';
import { ROLE_CHECKS, statusLine } from '../remote';
import { loadEnvironment, sshTo, type Environment, type TargetHost } from '../environment';
import { systemRunner } from '../local/exec';
import type { Role } from '../local/fleet';

// The host's status line and each role's checks are remote commands (cli/src/remote.ts).
export { ROLE_CHECKS, statusLine as statusScript };

export interface HostStatus {
  host: string;
  role: Role;
  address: string;
  reachable: boolean;
  release: string | null;
  units: Record<string, string>;
  health: string;
  /** Queue depth on api hosts (waiting + active jobs), sessions on streamers. */
  figures: Record<string, number>;
  /** What works but should not stay so (a self-signed certificate on the LB). */
  warnings: string[];
  ok: boolean;
}

const WARNINGS: Readonly<Record<string, string>> = {
  'self-signed-certificate':
    'the LB serves a self-signed certificate (browsers warn): set tls_certificate_parameter to a SecureString with the chain and key, then cadfleet local replace lb (local) or replace the LB instance (AWS)',
};

export function parseStatus(host: TargetHost, output: string, reachable: boolean): HostStatus {
  const units: Record<string, string> = {};
  const figures: Record<string, number> = {};
  const warnings: string[] = [];
  let release: string | null = null;
  let health = reachable ? 'unknown' : 'unreachable';
  for (const line of output.split('\n')) {
    const unit = /^unit\.([\w.-]+)=(.*)$/.exec(line);
    if (unit) units[unit[1]!] = unit[2] || 'unknown';
    else if (line.startsWith('release=')) release = line.slice(8) || null;
    else if (line.startsWith('warning=')) warnings.push(WARNINGS[line.slice(8)] ?? line.slice(8))
    else if (line.startsWith('health=')) health = line.slice(7) === '200' ? 'ok' : line.slice(7) === 'n/a' ? 'n/a' : `failing (${line.slice(7) || 'no answer'})`;
    const metric = /^metric cadfleet_(\w+)(?:\{state="(\w+)"[^}]*\}|\{[^}]*\})? ([\d.e+-]+)$/.exec(line);
    if (metric) {
      const name = metric[1] === 'queue_jobs' ? 'queue' : 'sessions';
      figures[name] = (figures[name] ?? 0) + Number(metric[3]);
    }
  }
  const ok = reachable && Object.values(units).every((s) => s === 'active') && (health === 'ok' || health === 'n/a');
  return { host: host.name, role: host.role, address: host.address, reachable, release, units, health, figures, warnings, ok };
}

async function collect(env: Environment, host: TargetHost): Promise<HostStatus> {
  const r = await systemRunner.run(sshTo(env, host, [statusLine(host.role)]));
  return parseStatus(host, r.stdout, r.code !== 255);
}

export function statusCommand(): Command {
  return new Command('status')
    .description('Every host by role: release, units, health, queue depth (api) and sessions (streamers). Exit 1 if any host is not ok.')
    .requiredOption('--env <name>', 'environment')
    .option('--json', 'one JSON document')
    .addHelpText('after', '\nExample:\n  $ cadfleet status --env local --json | jq \'.hosts[] | select(.ok | not)\'')
    .action(async (opts: { env: string; json?: boolean }) => {
      let env: Environment;
      try {
        env = await loadEnvironment(opts.env);
      } catch (err) {
        process.stderr.write(`cadfleet status: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const hosts = await Promise.all(env.hosts.map((h) => collect(env, h)));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ environment: env.name, ok: hosts.every((h) => h.ok), hosts }, null, 2)}\n`);
      } else {
        const rows = hosts.map((h) => [
          h.host,
          h.role,
          h.ok ? 'ok' : h.reachable ? 'DEGRADED' : 'DOWN',
          h.release ?? '-',
          h.health,
          Object.entries(h.units).filter(([, s]) => s !== 'active').map(([u, s]) => `${u} ${s}`).join(', ') || Object.entries(h.figures).map(([k, v]) => `${k} ${v}`).join(', '),
        ]);
        const head = ['HOST', 'ROLE', 'STATE', 'RELEASE', 'HEALTH', 'DETAIL'];
        const widths = head.map((t, i) => Math.max(t.length, ...rows.map((r) => r[i]!.length)));
        for (const row of [head, ...rows]) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
        for (const h of hosts) for (const w of h.warnings) process.stderr.write(`WARNING ${h.host}: ${w}\n`);
      }
      if (!hosts.every((h) => h.ok)) process.exitCode = 1;
    });
}
