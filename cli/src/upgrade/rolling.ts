import type { TargetHost } from '../environment';
import type { Role } from '../local/fleet';
import { type BatchSize, roleBatches, UPGRADE_ORDER } from './plan';

/** What a rolling upgrade needs done to hosts. The local fleet's runs over SSH; tests pass fakes. */
export interface UpgradeRunner {
  /** The hosts as they are now (re-read before each role: hosts may have come or gone). */
  hosts(): Promise<TargetHost[]>;
  /**
   * The release each host runs now; null when it has none: a host still booting (not answering
   * yet, or waiting for the first release), which installs the release the pointer names itself.
   */
  current(host: TargetHost): Promise<string | null>;
  /** Put the release in the releases bucket (the pointer may name it only once it is there). */
  publish(version: string): Promise<void>;
  /** Put the release on these hosts without switching to it. */
  install(version: string, hosts: TargetHost[]): Promise<void>;
  /** Database migrations of the new release, once, before the first batch, on this api host. */
  migrate(version: string, api: TargetHost): Promise<void>;
  /** Resolves ok once a host that was booting runs the release and is ready, or with the reason it is not. */
  waitConfigured(host: TargetHost, version: string): Promise<{ ok: true } | { ok: false; reason: string }>;
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
  /** `configured itself`: it had no release and installed this one at boot; `left booting`: it was still booting and is not waited for. */
  result: 'upgraded' | 'unchanged' | 'failed' | 'rolled back' | 'configured itself' | 'left booting';
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

  const configured = initial.filter((h) => befores.get(h.name));
  const booting = initial.filter((h) => !befores.get(h.name));
  const names = (hosts: TargetHost[]): string => hosts.map((h) => h.name).join(', ');

  runner.log(`publishing ${version} to the releases bucket`);
  await runner.publish(version);
  if (!configured.length) {
    // The first release of an environment: no host has configured itself, so there is nothing
    // to install on or migrate from. The pointer is all it takes: every host waiting at boot
    // installs the release and configures itself (an api's host.yml runs the migrations).
    runner.log(`no host runs a release yet: ${version} is the first; pointing releases/current at it, and every host installs it and configures itself`);
    await runner.setPointer(version);
    if (!initial.length) {
      runner.log('no host exists yet: each host the groups launch will install it');
      return finish({});
    }
    runner.log(`waiting for ${initial.length} host(s) to configure themselves with ${version}: ${names(initial)}`);
    const gates = await Promise.all(
      initial.map(async (h) => {
        const gate = await runner.waitConfigured(h, version);
        runner.log(gate.ok ? `${h.name}: configured itself, ready` : `${h.name}: not ready: ${gate.reason}`);
        return { h, gate };
      }),
    );
    for (const { h, gate } of gates) outcomes.push({ host: h.name, role: h.role, from: null, to: version, result: gate.ok ? 'configured itself' : 'failed', ...(gate.ok ? {} : { reason: gate.reason }) });
    const failed = gates.find((g) => !g.gate.ok);
    return finish(failed && !failed.gate.ok ? { ok: false, failedHost: failed.h.name, reason: failed.gate.reason } : {});
  }
  if (booting.length) runner.log(`left out, still booting (they install the release releases/current names themselves): ${names(booting)}`);
  runner.log(`installing ${version} on ${configured.length} host(s)`);
  await runner.install(version, configured);
  const api = configured.find((h) => h.role === 'api');
  if (api) {
    runner.log(`running database migrations of the new release on ${api.name}`);
    await runner.migrate(version, api);
  } else {
    runner.log('no api host runs a release yet: its own host.yml runs the migrations when it configures itself');
  }
  // Hosts an auto scaling group launches from now on get the new release.
  await runner.setPointer(version);

  for (const role of UPGRADE_ORDER) {
    const hosts = await runner.hosts();
    for (const host of hosts.filter((h) => h.role === role && !befores.has(h.name))) befores.set(host.name, await runner.current(host));
    for (const batch of roleBatches(role, hosts, size)) {
      // A host without a release is booting: the release it installs is the pointer's.
      for (const h of batch.hosts.filter((x) => !befores.get(x.name))) outcomes.push({ host: h.name, role, from: null, to: version, result: 'left booting' });
      const todo = batch.hosts.filter((h) => befores.get(h.name) && befores.get(h.name) !== version);
      for (const h of batch.hosts.filter((x) => befores.get(x.name) === version)) outcomes.push({ host: h.name, role, from: version, to: version, result: 'unchanged' });
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
