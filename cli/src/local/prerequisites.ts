import fs from 'node:fs';
import path from 'node:path';
import type { Runner } from './exec';

/** One thing the local fleet needs of this machine: what was found, and how to get it when missing. */
export interface Prerequisite {
  name: string;
  for: string;
  ok: boolean;
  found: string;
  fix: string;
}

const TOOLS: Array<[string, string]> = [
  ['systemd-nspawn', 'apt-get install systemd-container'],
  ['debootstrap', 'apt-get install debootstrap'],
  ['ip', 'apt-get install iproute2'],
  ['unshare', 'apt-get install util-linux'],
  ['ssh', 'apt-get install openssh-client'],
  ['ssh-keygen', 'apt-get install openssh-client'],
];

const kernelFilesystems = (): string => {
  try {
    return fs.readFileSync('/proc/filesystems', 'utf8');
  } catch {
    return '';
  }
};
const hasOverlay = (): boolean => /\toverlay$/m.test(kernelFilesystems());

/**
 * Where the hosts' cgroups go: the unified root, or on a v1 (hybrid) machine the name=systemd
 * hierarchy that a container's systemd needs (nspawn mounts it into the container).
 */
function cgroupCheck(cgroupRoot: string): Prerequisite {
  const check = { name: 'cgroups', for: 'a cgroup per host (its systemd manages its own tree)' };
  if (fs.existsSync(path.join(cgroupRoot, 'cgroup.procs'))) return { ...check, ...writable(path.join(cgroupRoot, 'cadfleet'), 'cgroup2 (unified)') };
  if (fs.existsSync(path.join(cgroupRoot, 'systemd', 'cgroup.procs'))) return { ...check, ...writable(path.join(cgroupRoot, 'systemd', 'cadfleet'), 'v1 with name=systemd') };
  return {
    ...check,
    ok: false,
    found: fs.existsSync(cgroupRoot) ? `no cgroup2 and no name=systemd hierarchy under ${cgroupRoot}` : `${cgroupRoot} is missing`,
    fix: `mount cgroup2 on ${cgroupRoot} (mount -t cgroup2 none ${cgroupRoot}), or boot with systemd, which mounts it`,
  };
}

/** Makes (and removes again) a group under `parent`, as a host start will. */
function writable(parent: string, kind: string): { ok: boolean; found: string; fix: string } {
  const probe = path.join(parent, `doctor-${process.pid}`);
  try {
    fs.mkdirSync(probe, { recursive: true });
    fs.rmdirSync(probe);
    return { ok: true, found: kind, fix: '' };
  } catch (err) {
    return { ok: false, found: `${kind}, but ${(err as Error).message}`, fix: 'run as root on a machine whose cgroup file system is writable (not a read-only container mount)' };
  }
}

/**
 * The local fleet's prerequisites, checked before anything boots (`cadfleet local up`) and by
 * `cadfleet doctor --env local`: root, the tools, and what the kernel must provide: the overlay
 * file system (each host's disk), writable cgroups, network namespaces with bridges and veth
 * pairs. The network probe runs in a namespace of its own that vanishes with it: it leaves
 * nothing behind.
 */
export async function localPrerequisites(runner: Runner, cgroupRoot = '/sys/fs/cgroup'): Promise<Prerequisite[]> {
  const uid = process.getuid?.() ?? 0;
  const checks: Prerequisite[] = [
    { name: 'root', for: 'namespaces, bridges, containers', ok: uid === 0, found: uid === 0 ? 'yes' : `uid ${uid}`, fix: uid === 0 ? '' : 'the local fleet needs root (namespaces, bridges, containers): run it with sudo' },
  ];
  for (const [tool, fix] of TOOLS) {
    const found = await runner.run(['sh', '-c', `command -v ${tool}`]);
    checks.push({ name: tool, for: 'the local fleet', ok: found.code === 0, found: found.code === 0 ? 'yes' : 'not found', fix: found.code === 0 ? '' : fix });
  }
  // A kernel that builds overlayfs as a module loads it on the first mount; loading it here
  // first says plainly when it cannot.
  if (!hasOverlay()) await runner.run(['sh', '-c', 'command -v modprobe >/dev/null && modprobe overlay']);
  checks.push({
    name: 'overlay file system',
    for: "each host's disk (a layer over the base image)",
    ok: hasOverlay(),
    found: hasOverlay() ? 'yes' : 'not in /proc/filesystems',
    fix: hasOverlay() ? '' : 'load it (modprobe overlay), or use a kernel with CONFIG_OVERLAY_FS',
  });
  if (uid === 0) {
    checks.push(cgroupCheck(cgroupRoot));
    const net = await runner.run(['unshare', '--net', 'sh', '-c', 'ip link add cfprobe-br type bridge && ip link add cfprobe-v0 type veth peer name cfprobe-v1'], { timeoutMs: 10_000 });
    checks.push({
      name: 'network namespaces',
      for: "each host's own network on the fleet's bridge",
      ok: net.code === 0,
      found: net.code === 0 ? 'netns, bridge, veth' : (net.stderr || net.stdout).trim().split('\n').slice(-1)[0] || `exit ${net.code}`,
      fix: net.code === 0 ? '' : 'the kernel needs network namespaces, bridges and veth pairs (CONFIG_NET_NS, CONFIG_BRIDGE, CONFIG_VETH): load the modules (modprobe bridge veth) or use a kernel that has them',
    });
  }
  return checks;
}
