import type { TargetHost } from '../environment';
import type { Role } from '../local/fleet';
import { type BatchSize, roleBatches, UPGRADE_ORDER } from './plan';

/** What a rolling upgrade needs done to hosts. The local fleet's runs over SSH; tests pass fakes. */
export interface UpgradeRunner {
  /** The hosts as they are now (re-read before each role: hosts may have come or gone). */
  hosts(): Promise<TargetHost[]>;
  /** The release each host runs now (null when it has none). */
  current(host: TargetHost): Promise<string | null>;
  /** Put the release on the hosts without switching to it. */
  install(version: string): Promise<void>;
  /** Database migrations of the new release, once, before the first batch. */
  migrate(version: string): Promise<void>;
  /** Take the host out of service gracefully (drain), switch `current`, start it again. */
  switchTo(host: TargetHost, version: string): Promise<void>;
  /** Resolves ok when the host is ready and back in the LB, or with the reason it is not. */
  waitReady(host: TargetHost): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** The releases pointer that auto-scaled hosts install from. */
  setPointer(version: string): Promise<void>;
  log(line: string): void;
}

export interface HostOutcome {
  host: string;
  role: Role;
  from: string | null;
  to: string;
  result: 'upgraded' | 'unchanged' | 'failed' | 'rolled back';
  reason?: string;
}

export interface UpgradeReport {
  ok: boolean;
  version: string;
  previous: string | null;
  hosts: HostOutcome[];
  failedHost?: string;
  reason?: string;
  seconds: number;
}

/**
 * Upgrades role by role in batches behind the readiness gate. A batch that fails its gate goes
 * back to the release it ran, the upgrade stops, the pointer flips back, and the report says
 * which host failed and why, and what runs where.
 */
export async function rollingUpgrade(runner: UpgradeRunner, version: string, size: BatchSize): Promise<UpgradeReport> {
  const started = performance.now();
  const outcomes: HostOutcome[] = [];
  const initial = await runner.hosts();
  const befores = new Map<string, string | null>();
  for (const host of initial) befores.set(host.name, await runner.current(host));
  const previous = [...befores.values()].find((v): v is string => !!v && v !== version) ?? null;
  const finish = (extra: Partial<UpgradeReport>): UpgradeReport => ({ ok: true, version, previous, hosts: outcomes, seconds: (performance.now() - started) / 1000, ...extra });

  runner.log(`installing ${version} on every host`);
  await runner.install(version);
  runner.log('running database migrations of the new release');
  await runner.migrate(version);
  // Hosts an auto scaling group launches from now on get the new release.
  await runner.setPointer(version);

  for (const role of UPGRADE_ORDER) {
    const hosts = await runner.hosts();
    for (const host of hosts.filter((h) => h.role === role && !befores.has(h.name))) befores.set(host.name, await runner.current(host));
    for (const batch of roleBatches(role, hosts, size)) {
      const todo = batch.hosts.filter((h) => befores.get(h.name) !== version);
      for (const h of batch.hosts.filter((x) => !todo.includes(x))) outcomes.push({ host: h.name, role, from: version, to: version, result: 'unchanged' });
      if (!todo.length) continue;
      runner.log(`${role}: ${todo.map((h) => h.name).join(', ')} -> ${version}`);
      const gates = await Promise.all(
        todo.map(async (h) => {
          try {
            await runner.switchTo(h, version);
          } catch (err) {
            return { h, gate: { ok: false as const, reason: (err as Error).message } };
          }
          return { h, gate: await runner.waitReady(h) };
        }),
      );
      const failed = gates.filter((g) => !g.gate.ok);
      if (!failed.length) {
        for (const h of todo) outcomes.push({ host: h.name, role, from: befores.get(h.name) ?? null, to: version, result: 'upgraded' });
        continue;
      }
      // Put this batch back where it was, flip the pointer back, stop.
      for (const { h, gate } of gates) {
        const back = befores.get(h.name);
        if (back) {
          runner.log(`${h.name}: back to ${back}`);
          try {
            await runner.switchTo(h, back);
            await runner.waitReady(h);
          } catch (err) {
            runner.log(`${h.name}: could not go back to ${back}: ${(err as Error).message}`);
          }
        }
        outcomes.push({ host: h.name, role, from: back ?? null, to: version, result: back ? 'rolled back' : 'failed', ...(gate.ok ? {} : { reason: gate.reason }) });
      }
      if (previous) await runner.setPointer(previous);
      const first = failed[0]!;
      return finish({ ok: false, failedHost: first.h.name, reason: first.gate.ok ? '' : first.gate.reason });
    }
  }
  return finish({});
}
