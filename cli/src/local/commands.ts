import type { Fleet, HostSpec } from './fleet';

/**
 * Argument vectors for every system command the local fleet runs. Pure data: nothing here
 * executes, so tests assert the exact command lines and the runner only runs what it is given.
 */
export type Argv = readonly string[];

export const bridgeCommands = (fleet: Fleet): Argv[] => [
  ['ip', 'link', 'add', fleet.bridge, 'type', 'bridge'],
  ['ip', 'addr', 'add', `${fleet.gateway}/${fleet.prefix}`, 'dev', fleet.bridge],
  ['ip', 'link', 'set', fleet.bridge, 'up'],
];

/**
 * A fixed, locally administered MAC per address: a host whose network is remade answers with
 * the same MAC, so no neighbour (this machine or another host) keeps a stale ARP entry for it.
 */
export const macFor = (ip: string): string =>
  ['02', 'cf', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');

/** A namespace per host with one veth end on the bridge and `eth0` inside, default route via this machine. */
export const hostNetworkCommands = (fleet: Fleet, host: HostSpec): Argv[] => [
  ['ip', 'netns', 'add', host.netns],
  ['ip', 'link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'address', macFor(host.ip), 'netns', host.netns],
  ['ip', 'link', 'set', host.veth, 'master', fleet.bridge, 'up'],
  ['ip', '-n', host.netns, 'link', 'set', 'lo', 'up'],
  ['ip', '-n', host.netns, 'addr', 'add', `${host.ip}/${fleet.prefix}`, 'dev', 'eth0'],
  ['ip', '-n', host.netns, 'link', 'set', 'eth0', 'up'],
  ['ip', '-n', host.netns, 'route', 'add', 'default', 'via', fleet.gateway],
];

/** Deleting a namespace deletes the veth pair with it. */
export const hostNetworkTeardown = (host: HostSpec): Argv[] => [['ip', 'netns', 'delete', host.netns]];
export const bridgeTeardown = (fleet: Fleet): Argv[] => [['ip', 'link', 'delete', fleet.bridge]];

export interface BootPaths {
  base: string;
  upper: string;
}

/**
 * Boots a host: the shared base rootfs read-only, this host's changes in its own upper layer.
 * PID 1 here is not systemd, so nspawn can neither register with machined nor create a scope
 * unit (`--register=no --keep-unit`), and `--network-veth` fails: the namespace is made with
 * `ip` beforehand and handed over by path.
 */
export const nspawnCommand = (host: HostSpec, paths: BootPaths): Argv => [
  'systemd-nspawn',
  '--quiet',
  '--boot',
  '--register=no',
  '--keep-unit',
  `--machine=${host.hostname}`,
  `--directory=${paths.base}`,
  `--overlay=${paths.base}:${paths.upper}:/`,
  `--network-namespace-path=/run/netns/${host.netns}`,
  // The namespace is the host's own network (as a VM's root has it): its firewall (the
  // firewall role's nftables) needs CAP_NET_ADMIN, which nspawn drops unless it made the
  // network itself.
  '--capability=CAP_NET_ADMIN',
];

/**
 * Starts a command inside its own cgroups. With no systemd as PID 1 here, nspawn leaves a
 * container in its caller's cgroup, and several containers' systemds then create and delete
 * each other's `/system.slice/...` groups (units fail with 219/CGROUP at random). A group per
 * host, entered before nspawn starts, keeps each container's tree its own.
 */
export const inCgroups = (cgroupDirs: readonly string[], argv: Argv): Argv => [
  'sh',
  '-c',
  'for d in $CADFLEET_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 1; done; exec "$@"',
  'cadfleet-cgroup',
  ...argv,
];

export const sshKeygenCommand = (file: string, type: 'ed25519' | 'rsa' | 'ecdsa', comment: string): Argv => [
  'ssh-keygen',
  '-q',
  '-t',
  type,
  '-N',
  '',
  '-C',
  comment,
  '-f',
  file,
];

export interface SshTarget {
  user: string;
  ip: string;
  keyFile: string;
  knownHosts: string;
}

/** SSH to a fleet host; host keys are pinned in the fleet's own known_hosts file. */
export const sshCommand = (target: SshTarget, remote: readonly string[] = [], extra: readonly string[] = []): Argv => [
  'ssh',
  '-i',
  target.keyFile,
  '-o',
  'BatchMode=yes',
  '-o',
  'IdentitiesOnly=yes',
  '-o',
  `UserKnownHostsFile=${target.knownHosts}`,
  '-o',
  'StrictHostKeyChecking=yes',
  '-o',
  'ConnectTimeout=5',
  '-o',
  'LogLevel=ERROR',
  ...extra,
  `${target.user}@${target.ip}`,
  ...remote,
];
