// The suite's fleet and the helpers every scenario uses: one fleet, booted once, shared by the
// scenarios that local-fleet.test.ts runs in sequence (DESIGN: one fleet boot in CI).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { sshCommand } from '../../cli/src/local/commands';
import { parseFleetSpec, planFleet } from '../../cli/src/local/fleet';
import { killLeftovers } from '../../cli/src/local/hosts';
import { runCli } from '../helpers/cli';
import { tempDir } from '../helpers/convert';

// This suite's own fleet: its own name, range and state, so it never touches `cf`, the user's fleet.
// CADFLEET_TEST_FLEET / CADFLEET_TEST_SUBNET let a second checkout run the suite beside this one.
export const NAME = process.env.CADFLEET_TEST_FLEET ?? 'cft';
export const SUBNET = process.env.CADFLEET_TEST_SUBNET ?? '10.213.250.0/24';
// CADFLEET_TEST_STATE: an existing state folder (a fleet left up by hand), for running single scenarios against it.
export const state = process.env.CADFLEET_TEST_STATE ?? tempDir('cadfleet-fleet-', { keep: true });
export const fleet = planFleet(parseFleetSpec({ name: NAME, subnet: SUBNET }));
// Stall detection shortened, so a job held by a dead worker host moves on within seconds.
// A streamer's drain is cut short (3 s), so an upgrade under load makes some sessions resume.
export const SERVICE_ENV = JSON.stringify({
  CADFLEET_JOB_LOCK_MS: '4000',
  CADFLEET_STALLED_INTERVAL_MS: '2000',
  CADFLEET_NODE_TTL_MS: '6000',
  CADFLEET_HEARTBEAT_INTERVAL_MS: '1000',
  CADFLEET_DRAIN_TIMEOUT_MS: '3000',
  // A draining api serves on 5 s after the LB's routing left it out (12 s by default); the LB's
  // keepalive_time follows it (3 s: ansible/playbooks/group_vars/lb/lb.yml).
  CADFLEET_LB_LINGER_MS: '5000',
  // The webhook receiver of the features scenario runs on this machine, the fleet's gateway:
  // admitted on purpose, over plain HTTP; every other private address stays refused.
  CADFLEET_WEBHOOK_ALLOW_HTTP: 'true',
  CADFLEET_WEBHOOK_ALLOW_NETWORKS: `${fleet.gateway}/32`,
  CADFLEET_WEBHOOK_BACKOFF_MS: '500',
});
export const env = { CADFLEET_LOCAL_FLEET: NAME, CADFLEET_LOCAL_STATE: state, CADFLEET_RELEASES_DIR: path.join(state, 'releases'), CADFLEET_SERVICE_ENV: SERVICE_ENV };
export const root = path.join(state, NAME);
/** A host's node id / hostname (`cft-api-1`) and address, by its short name (`api-1`). */
export const id = (host: string): string => `${NAME}-${host}`;
export const ipOf = (host: string): string => fleet.hosts.find((h) => h.name === host)!.ip;

export const cli = (...args: string[]) => runCli(args, env);

export function ssh(hostName: string, ...remote: string[]): { code: number; out: string } {
  const host = fleet.hosts.find((h) => h.name === hostName)!;
  const argv = sshCommand({ user: 'admin', ip: host.ip, keyFile: path.join(root, 'ssh/id_ed25519'), knownHosts: path.join(root, 'ssh/known_hosts') }, remote);
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status ?? 255, out: (r.stdout ?? '').trim() };
}

export async function statusJson(): Promise<Record<string, string>> {
  const r = await cli('local', 'status', '--json');
  expect(r.code, r.stderr).toBe(0);
  const parsed = JSON.parse(r.stdout) as { hosts: Array<{ name: string; state: string }> };
  return Object.fromEntries(parsed.hosts.map((h) => [h.name, h.state]));
}

/** HTTPS through the LB, as a client outside the fleet: curl, checking the LB's certificate against the fleet CA. */
export function lb(method: string, urlPath: string, key: string, extra: string[] = []): { status: number; body: string } {
  const host = fleet.hosts.find((h) => h.role === 'lb')!;
  const r = spawnSync('curl', ['-sS', '--max-time', '60', '--cacert', path.join(root, 'pki/ca.crt'), '-X', method, '-H', `Authorization: Bearer ${key}`, '-w', '\n%{http_code}', ...extra, `https://${host.ip}${urlPath}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const lines = (r.stdout ?? '').split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

/** What the scenarios pass on: the admin key, the converted sample, the first release. */
export const e2e = { key: '', modelId: '', version: '' };
export const lbAddress = (): string => fleet.hosts.find((h) => h.role === 'lb')!.ip;

/** Replaces `from` (which must be there: a changed source file should fail loudly, not build an unchanged v2) in a file. */
export function patch(file: string, from: string, to: string): void {
  const text = fs.readFileSync(file, 'utf8');
  if (!text.includes(from)) throw new Error(`${file} no longer contains ${JSON.stringify(from)}; update the upgrade test's v2`);
  fs.writeFileSync(file, text.replace(from, to));
}

/** A copy of this tree's tracked files (node_modules linked), changed by `change`, then built. */
export function variantTree(dir: string, change: (tree: string) => void): string {
  execFileSync('sh', ['-c', 'mkdir -p "$1" && git ls-files -z | xargs -0 cp --parents -t "$1" && ln -s "$PWD/node_modules" "$1/node_modules"', 'copy', dir]);
  change(dir);
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: dir });
  return dir;
}

export const links = (): string => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });


/** A host's nspawn pid, the first field of its pid file (`<pid> <start time>`). */
export const nspawnPid = (hostName: string): number => Number(fs.readFileSync(path.join(root, 'hosts', hostName, 'nspawn.pid'), 'utf8').split(' ')[0]);

/**
 * Pulls the plug on a host, as a crash or a power cut does: its network goes first (the wire is
 * cut: nothing it held open gets a FIN or a reset), then nspawn and every process of its
 * container are killed (from its cgroups). SIGKILL to nspawn alone is no crash: the container
 * lives on, serving, until the next `local up` kills its leftovers. `local up` boots it again.
 */
export async function killHost(hostName: string): Promise<void> {
  const host = fleet.hosts.find((h) => h.name === hostName)!;
  execFileSync('ip', ['link', 'delete', host.veth]);
  const pid = nspawnPid(hostName);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  await killLeftovers(host);
}
