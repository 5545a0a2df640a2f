import fs from 'node:fs';
import { bridgeCommands, bridgeTeardown, hostNetworkCommands, hostNetworkTeardown } from './commands';
import { must, type Runner } from './exec';
import type { Fleet, HostSpec } from './fleet';

interface IpAddr {
  ifname: string;
  master?: string;
  operstate?: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

async function addresses(runner: Runner, netns?: string): Promise<IpAddr[]> {
  const argv = netns ? ['ip', '-n', netns, '-j', 'addr', 'show'] : ['ip', '-j', 'addr', 'show'];
  const result = await runner.run(argv);
  if (result.code !== 0) return [];
  return JSON.parse(result.stdout || '[]') as IpAddr[];
}

const hasAddress = (link: IpAddr | undefined, ip: string): boolean => !!link?.addr_info?.some((a) => a.family === 'inet' && a.local === ip);

/**
 * Makes the fleet's bridge and each host's namespace exist as planned. Namespaces, bridges and
 * veths are kernel state that outlives the processes (a crash, or CI right after a session):
 * whatever is there is checked, and anything half-made is deleted and made again.
 */
export async function ensureNetwork(runner: Runner, fleet: Fleet, hosts: HostSpec[] = fleet.hosts): Promise<void> {
  const links = await addresses(runner);
  const bridge = links.find((l) => l.ifname === fleet.bridge);
  const squatter = links.find((l) => l.ifname !== fleet.bridge && l.addr_info?.some((a) => a.family === 'inet' && a.local.split('.').slice(0, 3).join('.') === fleet.gateway.split('.').slice(0, 3).join('.')));
  if (squatter) {
    throw new Error(
      `the fleet's range ${fleet.spec.subnet} is taken by interface ${squatter.ifname} (${squatter.addr_info?.map((a) => a.local).join(', ')}); choose another with --subnet`,
    );
  }
  if (bridge && !hasAddress(bridge, fleet.gateway)) {
    await runner.run(bridgeTeardown(fleet)[0]!);
  }
  if (!bridge || !hasAddress(bridge, fleet.gateway)) {
    for (const argv of bridgeCommands(fleet)) await must(runner, argv);
  } else if (bridge.operstate === 'DOWN') {
    await must(runner, ['ip', 'link', 'set', fleet.bridge, 'up']);
  }
  const fresh = await addresses(runner);
  for (const host of hosts) {
    const inside = fs.existsSync(`/run/netns/${host.netns}`) ? await addresses(runner, host.netns) : [];
    const veth = fresh.find((l) => l.ifname === host.veth);
    const healthy = hasAddress(inside.find((l) => l.ifname === 'eth0'), host.ip) && veth?.master === fleet.bridge;
    if (healthy) continue;
    if (fs.existsSync(`/run/netns/${host.netns}`)) await runner.run(hostNetworkTeardown(host)[0]!);
    if (veth) await runner.run(['ip', 'link', 'delete', host.veth]);
    for (const argv of hostNetworkCommands(fleet, host)) await must(runner, argv);
  }
}

export async function removeNetwork(runner: Runner, fleet: Fleet): Promise<void> {
  for (const host of fleet.hosts) {
    if (fs.existsSync(`/run/netns/${host.netns}`)) await runner.run(hostNetworkTeardown(host)[0]!);
    await runner.run(['ip', 'link', 'delete', host.veth]);
  }
  await runner.run(bridgeTeardown(fleet)[0]!);
}
