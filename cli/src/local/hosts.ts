import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
// Not execa: nspawn must write into its console log by file descriptor and outlive this
// command. execa's types take descriptors 0 to 9 only, its `{ file }` target is a pipe through
// this process (the host would lose its console when the CLI exits), and nothing here reads a
// result: spawn, detach, unref is the whole job.
import { spawn } from 'node:child_process';
import { inCgroups, nspawnCommand, sshCommand, sshKeygenCommand, type SshTarget } from './commands';
import { must, type Runner } from './exec';
import type { Fleet, HostSpec } from './fleet';
import { disableCloudInit, trustFleetCa, writeCloudInitSeed, type CloudInitSeed } from './cloud-init';

export interface FleetPaths {
  root: string;
  keyFile: string;
  knownHosts: string;
  hostDir(host: HostSpec): string;
  upper(host: HostSpec): string;
}

export function fleetPaths(stateDir: string, fleet: Fleet): FleetPaths {
  const root = path.join(stateDir, fleet.spec.name);
  return {
    root,
    keyFile: path.join(root, 'ssh', 'id_ed25519'),
    knownHosts: path.join(root, 'ssh', 'known_hosts'),
    hostDir: (host) => path.join(root, 'hosts', host.name),
    upper: (host) => path.join(root, 'hosts', host.name, 'upper'),
  };
}

export function sshTarget(fleet: Fleet, paths: FleetPaths, host: HostSpec): SshTarget {
  return { user: fleet.spec.sshUser, ip: host.ip, keyFile: paths.keyFile, knownHosts: paths.knownHosts };
}

/** The operator's key for this fleet: made once, kept with the fleet's state. */
export async function ensureFleetKey(runner: Runner, fleet: Fleet, paths: FleetPaths): Promise<void> {
  if (fs.existsSync(paths.keyFile)) return;
  fs.mkdirSync(path.dirname(paths.keyFile), { recursive: true, mode: 0o700 });
  await must(runner, sshKeygenCommand(paths.keyFile, 'ed25519', `cadfleet-local-${fleet.spec.name}`));
}

function userIds(base: string, user: string): { uid: number; gid: number } {
  const line = fs
    .readFileSync(path.join(base, 'etc/passwd'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`the base image has no user ${user}; rebuild it (cadfleet local destroy --image)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Gives a new host its own identity in its upper layer: machine-id, SSH host key, hostname and
 * the operator's key, and the fleet CA in its trust store. Done once; a host keeps its identity
 * across `down` and `up`. With a seed (user-data), cloud-init runs its user-data at first boot
 * (`local scale-out`); without, cloud-init is off.
 */
export async function prepareHost(runner: Runner, fleet: Fleet, paths: FleetPaths, host: HostSpec, base: string, seed: CloudInitSeed | { caCertificate: string }): Promise<void> {
  const upper = paths.upper(host);
  const marker = path.join(paths.hostDir(host), 'identity');
  if (fs.existsSync(marker)) return;
  fs.rmSync(paths.hostDir(host), { recursive: true, force: true });
  fs.mkdirSync(path.join(upper, 'etc/ssh'), { recursive: true });
  fs.writeFileSync(path.join(upper, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
  fs.writeFileSync(path.join(upper, 'etc/hostname'), `${host.hostname}\n`);
  const hostsFile = ['127.0.0.1 localhost', `127.0.1.1 ${host.hostname}`, ...fleet.hosts.map((h) => `${h.ip} ${h.hostname} ${h.name}`)];
  fs.writeFileSync(path.join(upper, 'etc/hosts'), `${hostsFile.join('\n')}\n`);
  await must(runner, sshKeygenCommand(path.join(upper, 'etc/ssh/ssh_host_ed25519_key'), 'ed25519', host.hostname));
  const { uid, gid } = userIds(base, fleet.spec.sshUser);
  const sshDir = path.join(upper, 'home', fleet.spec.sshUser, '.ssh');
  fs.mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  fs.copyFileSync(`${paths.keyFile}.pub`, path.join(sshDir, 'authorized_keys'));
  fs.chmodSync(path.join(sshDir, 'authorized_keys'), 0o600);
  for (const p of [path.join(upper, 'home', fleet.spec.sshUser), sshDir, path.join(sshDir, 'authorized_keys')]) fs.chownSync(p, uid, gid);
  if ('userData' in seed) writeCloudInitSeed(upper, base, host, seed);
  else {
    trustFleetCa(upper, base, seed.caCertificate);
    disableCloudInit(upper);
  }
  const hostKey = fs.readFileSync(path.join(upper, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  fs.writeFileSync(marker, `${host.ip} ${hostKey}\n`);
}

/** Pins every host's key, so SSH checks it strictly from the first connection on. */
export function writeKnownHosts(fleet: Fleet, paths: FleetPaths): void {
  const lines = fleet.hosts
    .map((h) => path.join(paths.hostDir(h), 'identity'))
    .filter((f) => fs.existsSync(f))
    .map((f) => fs.readFileSync(f, 'utf8').trim());
  fs.writeFileSync(paths.knownHosts, `${lines.join('\n')}\n`);
}

/** How a host's nspawn process ended, as this process saw it (it is the process's parent). */
export interface HostExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The nspawn processes this cadfleet process started, by pid, and how each ended once it has.
 * The parent's exit event is the one certain word that a host stopped: anything read from
 * /proc is a sample of a moment.
 */
const started = new Map<number, { exit?: HostExit; exited: Promise<HostExit> }>();

/** A process's state letter and its start time (clock ticks since boot), from /proc/<pid>/stat. */
export function processStat(pid: number): { state: string; startTime: string } | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, startTime: fields[19]! };
}

/**
 * The nspawn process of a host, if it is running. The pid file holds the pid and the process's
 * start time, which stays the same across the `exec` from the cgroup shell to nspawn and tells a
 * reused pid apart. Not the command line: while a process is inside `execve` the kernel reports
 * it empty, for a few milliseconds on a warm machine and far longer on one that has just booted
 * (binaries read from a cold disk), and a check in that window declared a booting host stopped.
 * A pid file of an older cadfleet (the pid alone) is still checked by its command line.
 */
export function runningPid(fleet: Fleet, paths: FleetPaths, host: HostSpec): number | undefined {
  const { pid, startTime } = readPidFile(paths, host) ?? {};
  if (pid === undefined) return undefined;
  if (started.get(pid)?.exit) return undefined;
  const stat = processStat(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return undefined;
  if (startTime !== undefined) return stat.startTime === startTime ? pid : undefined;
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes(`--machine=${host.hostname}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

const pidFile = (paths: FleetPaths, host: HostSpec): string => path.join(paths.hostDir(host), 'nspawn.pid');

/** The pid file: `<pid> <start time>` (an older cadfleet wrote the pid alone). */
function readPidFile(paths: FleetPaths, host: HostSpec): { pid: number; startTime?: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(pidFile(paths, host), 'utf8');
  } catch {
    return undefined;
  }
  const [pidText, startTime] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  return Number.isInteger(pid) && pid > 0 ? { pid, startTime } : undefined;
}

/** How a host's nspawn ended, when this process started it; waits briefly for the exit event, which follows the process's end by a moment. */
export async function hostExit(pid: number, waitMs = 2000): Promise<HostExit | undefined> {
  const entry = started.get(pid);
  if (!entry) return undefined;
  return entry.exit ?? (await Promise.race([entry.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), waitMs).unref())]));
}

/** "exited with status 1", "was killed by SIGKILL", or why it is not known. */
export function describeExit(exit: HostExit | undefined): string {
  if (!exit) return 'it was started by another cadfleet process, so its exit status is not known here';
  return exit.signal ? `it was killed by ${exit.signal}` : `it exited with status ${exit.code}`;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/** This host's group in every mounted cgroup hierarchy (v1 controllers, name=systemd, unified). */
export function hostCgroups(host: HostSpec): string[] {
  if (fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.procs'))) return [path.join(CGROUP_ROOT, 'cadfleet', host.hostname)];
  return fs
    .readdirSync(CGROUP_ROOT)
    .map((d) => path.join(CGROUP_ROOT, d))
    // A new cpuset group starts with no CPUs and refuses members; the container needs none of its own.
    .filter((d) => fs.existsSync(path.join(d, 'cgroup.procs')) && !fs.existsSync(path.join(d, 'cpuset.cpus')))
    .map((d) => path.join(d, 'cadfleet', host.hostname));
}

/** Removes a stopped host's groups, deepest first (the container's systemd made groups inside). */
export function removeHostCgroups(host: HostSpec): void {
  const remove = (dir: string): void => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) remove(path.join(dir, entry.name));
    try {
      fs.rmdirSync(dir);
    } catch {
      // Still in use or already gone: the next start reuses it.
    }
  };
  for (const dir of hostCgroups(host)) remove(dir);
}

function groupPids(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  // Zombies count as gone: this machine's PID 1 may be slow to reap what a dead nspawn left.
  const alive = (pid: number): boolean => {
    const state = processStat(pid)?.state;
    return state !== undefined && state !== 'Z';
  };
  const own = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number).filter(alive);
  const nested = fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => groupPids(path.join(dir, e.name)));
  return [...own, ...nested];
}

/**
 * Kills what is left of a host whose nspawn process died: its container's processes live on
 * in the host's cgroups (nspawn killed with SIGKILL does not take its container with it), and
 * a second boot beside them would fight over the same disk and address.
 */
export async function killLeftovers(host: HostSpec): Promise<number> {
  const pids = new Set(hostCgroups(host).flatMap(groupPids));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (let i = 0; i < 50 && hostCgroups(host).some((d) => groupPids(d).length > 0); i++) await new Promise((r) => setTimeout(r, 100));
  return pids.size;
}

/**
 * Starts a host and waits for SSH. A host whose nspawn exits while it boots is started once
 * more (its first console log kept as console.log.1), and reported with both logs' ends if
 * that fails too: a boot that died once (seen once in CI, with no log left to read) should
 * not fail a whole `up`.
 */
export async function bootHost(runner: Runner, fleet: Fleet, paths: FleetPaths, host: HostSpec, base: string, timeoutMs: number, log: (line: string) => void): Promise<number> {
  try {
    return await waitForSsh(runner, fleet, paths, host, timeoutMs);
  } catch (err) {
    if (!(err instanceof BootStopped)) throw err;
    const first = `${err.consoleLog}.1`;
    fs.renameSync(err.consoleLog, first);
    log(`${host.hostname} stopped while booting (${err.how}); starting it once more (first console log: ${first}; ${outputOf(first)})`);
    await startHost(fleet, paths, host, base);
    return await waitForSsh(runner, fleet, paths, host, timeoutMs);
  }
}

export async function startHost(fleet: Fleet, paths: FleetPaths, host: HostSpec, base: string): Promise<number> {
  await killLeftovers(host);
  removeHostCgroups(host);
  const groups = hostCgroups(host);
  for (const dir of groups) fs.mkdirSync(dir, { recursive: true });
  const argv = inCgroups(groups, nspawnCommand(host, { base, upper: paths.upper(host) }));
  const console = fs.openSync(path.join(paths.hostDir(host), 'console.log'), 'a');
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ['ignore', console, console],
    env: { ...process.env, CADFLEET_CGROUPS: groups.join(' ') },
  });
  fs.closeSync(console);
  const pid = child.pid;
  if (pid === undefined) {
    const failure = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`could not start ${host.hostname}'s ${argv[0]}: ${failure.message}`);
  }
  // Read at once: until this process has handled its exit, even a child that already died
  // is a zombie whose stat still holds the start time.
  const stat = processStat(pid);
  const entry: { exit?: HostExit; exited: Promise<HostExit> } = {
    exited: new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        entry.exit = { code, signal };
        resolve(entry.exit);
      }),
    ),
  };
  started.set(pid, entry);
  child.unref();
  fs.writeFileSync(pidFile(paths, host), `${pid} ${stat?.startTime ?? ''}`.trim() + '\n');
  return pid;
}

function tcpOpen(ip: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: ip, port, timeout: timeoutMs });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/** The last lines of a console log, for an error message (the log itself may be gone by the time someone reads it). */
export function consoleTail(file: string, lines = 12): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
  } catch {
    return '    (no console log)';
  }
}

/** What a console log says for an error message: its last lines, or that nothing was written. */
export function outputOf(file: string): string {
  const tail = consoleTail(file);
  return tail.trim() === '' || tail.trim() === '(no console log)' ? 'it wrote nothing' : `its output ends:\n${tail}`;
}

/** nspawn exited before the host answered SSH: how it ended (exit status or signal) and what it wrote. */
export class BootStopped extends Error {
  constructor(
    readonly host: HostSpec,
    readonly consoleLog: string,
    readonly how: string,
  ) {
    super(`host ${host.hostname} stopped while booting: ${how}; console log ${consoleLog}, ${outputOf(consoleLog)}`);
  }
}

/** Waits until the host answers SSH with its pinned key, or fails naming the host and its console log. */
export async function waitForSsh(runner: Runner, fleet: Fleet, paths: FleetPaths, host: HostSpec, timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await tcpOpen(host.ip, 22, 1000)) {
      const probe = await runner.run(sshCommand(sshTarget(fleet, paths, host), ['true']), { timeoutMs: 10_000 });
      if (probe.code === 0) return (performance.now() - started) / 1000;
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(`host ${host.hostname} (${host.ip}) did not answer SSH within ${timeoutMs / 1000} s; its console log: ${path.join(paths.hostDir(host), 'console.log')}`);
    }
    if (runningPid(fleet, paths, host) === undefined) {
      const pid = readPidFile(paths, host)?.pid;
      const how = describeExit(pid === undefined ? undefined : await hostExit(pid));
      throw new BootStopped(host, path.join(paths.hostDir(host), 'console.log'), how);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** An orderly shutdown (SIGTERM to nspawn powers the host off), then SIGKILL after the grace time. */
export async function stopHost(fleet: Fleet, paths: FleetPaths, host: HostSpec, graceMs = 30_000): Promise<'stopped' | 'killed' | 'not running'> {
  const pid = runningPid(fleet, paths, host);
  if (pid === undefined) return 'not running';
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (runningPid(fleet, paths, host) === undefined) {
      removeHostCgroups(host);
      return 'stopped';
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  process.kill(pid, 'SIGKILL');
  await killLeftovers(host);
  removeHostCgroups(host);
  return 'killed';
}
