import fs from 'node:fs';
import path from 'node:path';
import { DRAIN_HOOK, DRAIN_SECONDS } from '../../../stacks/contract';
import { hostNetworkTeardown, sshCommand } from './commands';
import { bootAwsWay, startLocalAws, type BootedHost } from './cloud-boot';
import { parseFleetSpec, planFleet } from './fleet';
import { sshTarget, stopHost, writeKnownHosts } from './hosts';
import { openFleet, type LocalContext } from './local-fleet';

/** The roles an auto scaling group runs on AWS (and so the roles a local host can be added to). */
export const SCALABLE_ROLES = ['api', 'worker', 'streamer'] as const;
export type ScalableRole = (typeof SCALABLE_ROLES)[number];

export interface ScaleOutReport {
  host: Omit<BootedHost, 'seconds' | 'bootLog'>;
  release: string;
  /** Seconds from the start of the boot to the role's health check answering. */
  seconds: number;
  /** What the metadata and SSM stand-ins answered, by kind. */
  served: Record<string, number>;
  /** The end of the host's boot log. */
  bootLog: string[];
}

/**
 * Adds one host of a role to a deployed local fleet the way an auto scaling group adds one on
 * AWS (cloud-boot.ts): a fresh host from the base image, booted with the stacks' user-data. It
 * then registers and takes work like any other; nothing is run against it from this machine.
 */
export async function scaleOut(ctx: LocalContext, name: string, role: ScalableRole, options: { timeoutMs?: number; settingsAfterMs?: number } = {}): Promise<ScaleOutReport> {
  const { fleet: before, paths } = openFleet(ctx, name);
  if (!fs.existsSync(path.join(paths.root, 'fleet.json'))) throw new Error(`there is no local fleet ${name}: run cadfleet local up, then cadfleet deploy --env local`);
  const count = before.spec.counts[role];
  if (count >= 9) throw new Error(`role ${role} already has ${count} hosts, the most a local fleet holds`);
  const spec = parseFleetSpec({ ...before.spec, counts: { ...before.spec.counts, [role]: count + 1 } });
  const fleet = planFleet(spec);
  const host = fleet.hosts.find((h) => h.role === role && h.index === count + 1)!;
  ctx.log(`adding ${host.hostname} (${role}, ${host.ip}) through cloud-init`);
  // The new host exists from here on: `up`, `down`, `status`, `deploy` and `destroy` know it.
  fs.writeFileSync(path.join(paths.root, 'fleet.json'), `${JSON.stringify(spec, null, 2)}\n`);
  const boot = await bootAwsWay(ctx, fleet, paths, [host], options);
  const { seconds, bootLog, ...added } = boot.hosts[0]!;
  return { host: added, release: boot.release, seconds, served: boot.served, bootLog };
}

export interface ScaleInReport {
  host: string;
  /** How the host's own system stopped. */
  stop: string;
  /**
   * A host booted the AWS way (its lifecycle watcher runs) of a role that drains: what it told its
   * group's termination hook, and how long after the hook held it. null: no hook, or no watcher.
   */
  lifecycle: { hook: string; result: string; seconds: number } | null;
}

/**
 * Removes the last host of a role, as an auto scaling group scales in. A worker or streamer booted
 * the AWS way is held by its group's termination hook first, as on AWS: the stand-in's IMDS says
 * Terminated, the host's lifecycle watcher drains its service (a worker finishes its conversions,
 * a streamer's viewers resume elsewhere) and completes the lifecycle action, which the stand-in
 * records; after the hook's timeout the host goes anyway, as on AWS. Then an orderly shutdown
 * (the role drains on SIGTERM), and its disk and network are deleted. A role keeps one host at least.
 */
export async function scaleIn(ctx: LocalContext, name: string, role: ScalableRole, options: { drainTimeoutMs?: number } = {}): Promise<ScaleInReport> {
  const { fleet, paths } = openFleet(ctx, name);
  if (!fs.existsSync(path.join(paths.root, 'fleet.json'))) throw new Error(`there is no local fleet ${name}`);
  const count = fleet.spec.counts[role];
  if (count <= 1) throw new Error(`role ${role} has one host left; a fleet keeps at least one of each role (cadfleet local destroy removes everything)`);
  const host = fleet.hosts.find((h) => h.role === role && h.index === count)!;
  let lifecycle: ScaleInReport['lifecycle'] = null;
  const drainSeconds = DRAIN_SECONDS[role];
  const watched = drainSeconds !== undefined && (await ctx.runner.run(sshCommand(sshTarget(fleet, paths, host), ['systemctl is-active --quiet cadfleet-lifecycle']), { timeoutMs: 30_000 })).code === 0;
  if (watched) {
    const standIn = await startLocalAws(ctx, fleet, paths);
    try {
      ctx.log(`${host.hostname}: the termination hook ${DRAIN_HOOK} holds it; waiting for it to drain and complete the lifecycle action (at most ${drainSeconds} s, as on AWS)`);
      const started = performance.now();
      standIn.setLifecycleState(host.hostname, 'Terminated');
      try {
        const call = await standIn.waitForCall((c) => c.action === 'CompleteLifecycleAction' && c.from === host.hostname, options.drainTimeoutMs ?? drainSeconds * 1000);
        lifecycle = { hook: call.params.LifecycleHookName ?? '', result: call.params.LifecycleActionResult ?? '', seconds: (performance.now() - started) / 1000 };
        ctx.log(`${host.hostname} drained and completed ${lifecycle.hook} (${lifecycle.result}) after ${lifecycle.seconds.toFixed(1)} s`);
      } catch (err) {
        // The hook's default result: the host goes anyway.
        lifecycle = { hook: DRAIN_HOOK, result: 'timeout', seconds: (performance.now() - started) / 1000 };
        ctx.log(`warning: ${(err as Error).message}; removing ${host.hostname} anyway, as the hook's timeout does on AWS`);
      }
    } finally {
      await standIn.close();
    }
  }
  const stop = await stopHost(fleet, paths, host);
  await ctx.runner.run(hostNetworkTeardown(host)[0]!);
  await ctx.runner.run(['ip', 'link', 'delete', host.veth]);
  fs.rmSync(paths.hostDir(host), { recursive: true, force: true });
  const spec = parseFleetSpec({ ...fleet.spec, counts: { ...fleet.spec.counts, [role]: count - 1 } });
  fs.writeFileSync(path.join(paths.root, 'fleet.json'), `${JSON.stringify(spec, null, 2)}\n`);
  writeKnownHosts(planFleet(spec), paths);
  return { host: host.name, stop, lifecycle };
}
