import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBaseImage, baseImagePath } from './base-image';
import type { Runner } from './exec';
import { LOCAL_ENVIRONMENT, type Fleet, type FleetSpec, type HostSpec, parseFleetSpec, planFleet, type Role } from './fleet';
import { ensureCa, pkiPaths } from './pki';
import { bootHost, ensureFleetKey, fleetPaths, type FleetPaths, prepareHost, runningPid, startHost, stopHost, waitForSsh, writeKnownHosts } from './hosts';
import { ensureNetwork, removeNetwork } from './network';
import { localPrerequisites } from './prerequisites';

export interface LocalContext {
  runner: Runner;
  /** Fleet state: keys, host layers, pid files. @default /var/lib/cadfleet/local */
  stateDir: string;
  /** Built base images, shared by all fleets. @default /var/cache/cadfleet/images */
  cacheDir: string;
  recipeDir: string;
  log: (line: string) => void;
  /** How long a host may take to answer SSH after boot. */
  bootTimeoutMs: number;
}

export function defaultContext(runner: Runner, log: (line: string) => void): LocalContext {
  const repo = findRepoRoot();
  return {
    runner,
    stateDir: process.env.CADFLEET_LOCAL_STATE ?? '/var/lib/cadfleet/local',
    cacheDir: process.env.CADFLEET_IMAGE_CACHE ?? '/var/cache/cadfleet/images',
    recipeDir: repo,
    log,
    bootTimeoutMs: Number(process.env.CADFLEET_BOOT_TIMEOUT_MS ?? 90_000),
  };
}

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'images', 'host-image.yml'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find images/host-image.yml above the CLI');
    dir = parent;
  }
  return dir;
}

/** What `up` needs of this machine (the checks of `cadfleet doctor --env local`), each missing piece with the way to get it. */
export async function preflight(runner: Runner): Promise<string[]> {
  return (await localPrerequisites(runner)).filter((c) => !c.ok).map((c) => `${c.name}: ${c.found} -> ${c.fix}`);
}

function loadSpec(ctx: LocalContext, name: string, overrides: Partial<FleetSpec>): FleetSpec {
  const file = path.join(ctx.stateDir, name, 'fleet.json');
  const saved = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<FleetSpec>) : {};
  return parseFleetSpec({ ...saved, ...overrides, name });
}

export function openFleet(ctx: LocalContext, name: string, overrides: Partial<FleetSpec> = {}): { fleet: Fleet; paths: FleetPaths } {
  const fleet = planFleet(loadSpec(ctx, name, overrides));
  return { fleet, paths: fleetPaths(ctx.stateDir, fleet) };
}

export interface UpReport {
  fleet: Fleet;
  baseImage: { path: string; built: boolean; seconds: number };
  started: string[];
  alreadyRunning: string[];
  seconds: number;
}

/**
 * Brings the fleet to running: image, key, network, hosts, SSH. Idempotent, and repairs what a
 * crash left. `only` limits the hosts made and started (the others are left as they are).
 */
export async function up(ctx: LocalContext, name: string, overrides: Partial<FleetSpec> = {}, only?: (host: HostSpec) => boolean): Promise<UpReport> {
  const started = performance.now();
  const problems = await preflight(ctx.runner);
  if (problems.length) throw new Error(`cannot bring up the local fleet:\n  - ${problems.join('\n  - ')}`);
  const { fleet, paths } = openFleet(ctx, name, overrides);
  fs.mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  const baseImage = await ensureBaseImage(ctx.runner, { recipeDir: ctx.recipeDir, cacheDir: ctx.cacheDir, log: ctx.log });
  if (baseImage.built) ctx.log(`base image built in ${baseImage.seconds.toFixed(0)} s`);
  await ensureFleetKey(ctx.runner, fleet, paths);
  await ensureNetwork(ctx.runner, fleet);
  fs.writeFileSync(path.join(paths.root, 'fleet.json'), `${JSON.stringify(fleet.spec, null, 2)}\n`);
  // A fleet made from an older base image keeps it: its hosts' layers were made on top of it.
  const imageFile = path.join(paths.root, 'base-image');
  const base = fs.existsSync(imageFile) && fs.existsSync(fs.readFileSync(imageFile, 'utf8').trim()) ? fs.readFileSync(imageFile, 'utf8').trim() : baseImage.path;
  fs.writeFileSync(imageFile, `${base}\n`);
  const hosts = fleet.hosts.filter(only ?? (() => true));
  // The fleet CA (the one cadfleet deploy signs the data host's and the LB's certificates with),
  // trusted by each new host from its first boot.
  const pki = pkiPaths(paths.root);
  await ensureCa(ctx.runner, pki, LOCAL_ENVIRONMENT);
  const caCertificate = fs.readFileSync(pki.caCert, 'utf8');
  for (const host of hosts) await prepareHost(ctx.runner, fleet, paths, host, base, { caCertificate });
  writeKnownHosts(fleet, paths);
  const report: UpReport = { fleet, baseImage, started: [], alreadyRunning: [], seconds: 0 };
  for (const host of hosts) {
    if (runningPid(fleet, paths, host) !== undefined) {
      report.alreadyRunning.push(host.name);
      continue;
    }
    await startHost(fleet, paths, host, base);
    report.started.push(host.name);
  }
  await Promise.all(
    hosts.map(async (host) => {
      const seconds = report.started.includes(host.name)
        ? await bootHost(ctx.runner, fleet, paths, host, base, ctx.bootTimeoutMs, ctx.log)
        : await waitForSsh(ctx.runner, fleet, paths, host, ctx.bootTimeoutMs);
      if (report.started.includes(host.name)) ctx.log(`${host.hostname} (${host.role}, ${host.ip}) answers SSH after ${seconds.toFixed(1)} s`);
    }),
  );
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/** Stops the hosts in an orderly way; their disks are kept for the next `up`. */
export async function down(ctx: LocalContext, name: string, hosts?: HostSpec[]): Promise<Record<string, string>> {
  const { fleet, paths } = openFleet(ctx, name);
  const outcome: Record<string, string> = {};
  await Promise.all((hosts ?? fleet.hosts).map(async (host) => (outcome[host.name] = await stopHost(fleet, paths, host))));
  if (!hosts) await removeNetwork(ctx.runner, fleet);
  return outcome;
}

/** Starts stopped hosts of a running fleet (after `down` of single hosts). */
export async function startHosts(ctx: LocalContext, name: string, hosts: HostSpec[]): Promise<void> {
  const { fleet, paths } = openFleet(ctx, name);
  const base = fs.readFileSync(path.join(paths.root, 'base-image'), 'utf8').trim();
  await ensureNetwork(ctx.runner, fleet, hosts);
  const started = new Set<HostSpec>();
  for (const host of hosts) {
    if (runningPid(fleet, paths, host) !== undefined) continue;
    await startHost(fleet, paths, host, base);
    started.add(host);
  }
  await Promise.all(hosts.map((host) => (started.has(host) ? bootHost(ctx.runner, fleet, paths, host, base, ctx.bootTimeoutMs, ctx.log) : waitForSsh(ctx.runner, fleet, paths, host, ctx.bootTimeoutMs))));
}

/** Stops everything and deletes the fleet's state (the base image cache stays unless asked). */
export async function destroy(ctx: LocalContext, name: string, options: { image?: boolean } = {}): Promise<void> {
  const { fleet, paths } = openFleet(ctx, name);
  await Promise.all(fleet.hosts.map((host) => stopHost(fleet, paths, host, 10_000)));
  await removeNetwork(ctx.runner, fleet);
  fs.rmSync(paths.root, { recursive: true, force: true });
  if (options.image) fs.rmSync(baseImagePath({ recipeDir: ctx.recipeDir, cacheDir: ctx.cacheDir }), { recursive: true, force: true });
}

export interface HostStatus {
  name: string;
  hostname: string;
  role: Role;
  ip: string;
  state: 'running' | 'stopped';
  pid: number | null;
}

export function status(ctx: LocalContext, name: string): { fleet: Fleet; exists: boolean; hosts: HostStatus[] } {
  const { fleet, paths } = openFleet(ctx, name);
  return {
    fleet,
    exists: fs.existsSync(path.join(paths.root, 'fleet.json')),
    hosts: fleet.hosts.map((host) => {
      const pid = runningPid(fleet, paths, host);
      return { name: host.name, hostname: host.hostname, role: host.role, ip: host.ip, state: pid ? 'running' : 'stopped', pid: pid ?? null };
    }),
  };
}
