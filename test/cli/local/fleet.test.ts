import { describe, expect, it } from 'vitest';
import { bridgeCommands, hostNetworkCommands, inCgroups, nspawnCommand, sshCommand } from '../../../cli/src/local/commands';
import { debianMirror } from '../../../cli/src/local/base-image';
import { parseFleetSpec, planFleet, selectHosts } from '../../../cli/src/local/fleet';

describe('the fleet plan', () => {
  const fleet = planFleet(parseFleetSpec({}));

  it('has DESIGN\'s default shape: lb, data, api x2, worker x2, streamer x2 with fixed addresses', () => {
    expect(fleet.hosts.map((h) => `${h.hostname}=${h.ip}`)).toEqual([
      'cf-lb=10.213.0.10',
      'cf-data=10.213.0.11',
      'cf-api-1=10.213.0.21',
      'cf-api-2=10.213.0.22',
      'cf-worker-1=10.213.0.31',
      'cf-worker-2=10.213.0.32',
      'cf-streamer-1=10.213.0.41',
      'cf-streamer-2=10.213.0.42',
    ]);
    expect(fleet.gateway).toBe('10.213.0.1');
    expect(fleet.bridge).toBe('cf-br0');
  });

  it('keeps every interface name within the kernel limit of 15 characters', () => {
    const big = planFleet(parseFleetSpec({ name: 'abcd', counts: { api: 9, worker: 9, streamer: 9 } }));
    for (const host of big.hosts) expect(host.veth.length, host.veth).toBeLessThanOrEqual(15);
    expect(new Set(big.hosts.map((h) => h.veth)).size).toBe(big.hosts.length);
  });

  it('refuses bad settings naming the setting', () => {
    expect(() => parseFleetSpec({ name: 'Fleet_1' })).toThrow(/`name` must be 1 to 4 lower-case letters/);
    expect(() => parseFleetSpec({ subnet: '10.0.0.0/16' })).toThrow(/`subnet` must be a \/24/);
    expect(() => parseFleetSpec({ subnet: '10.300.0.0/24' })).toThrow(/`subnet` has an octet over 255/);
    expect(() => parseFleetSpec({ counts: { api: 0 } })).toThrow(/`counts.api`/);
  });

  it('selects hosts by name, role and role/index', () => {
    expect(selectHosts(fleet, 'api').map((h) => h.name)).toEqual(['api-1', 'api-2']);
    expect(selectHosts(fleet, 'streamer/2').map((h) => h.name)).toEqual(['streamer-2']);
    expect(selectHosts(fleet, 'cf-worker-1').map((h) => h.name)).toEqual(['worker-1']);
    expect(() => selectHosts(fleet, 'db')).toThrow(/no host or role "db" in fleet cf; hosts: lb, data, api-1/);
    expect(() => selectHosts(fleet, 'api/3')).toThrow(/role api has hosts 1 to 2, not 3/);
  });
});

describe('command builders', () => {
  const fleet = planFleet(parseFleetSpec({ name: 'cft', subnet: '10.213.250.0/24' }));
  const api1 = fleet.hosts.find((h) => h.name === 'api-1')!;

  it('builds the bridge and a host network with ip', () => {
    expect(bridgeCommands(fleet)).toEqual([
      ['ip', 'link', 'add', 'cft-br0', 'type', 'bridge'],
      ['ip', 'addr', 'add', '10.213.250.1/24', 'dev', 'cft-br0'],
      ['ip', 'link', 'set', 'cft-br0', 'up'],
    ]);
    expect(hostNetworkCommands(fleet, api1)).toEqual([
      ['ip', 'netns', 'add', 'cft-api-1'],
      ['ip', 'link', 'add', 'cftvapi-1', 'type', 'veth', 'peer', 'name', 'eth0', 'address', '02:cf:0a:d5:fa:15', 'netns', 'cft-api-1'],
      ['ip', 'link', 'set', 'cftvapi-1', 'master', 'cft-br0', 'up'],
      ['ip', '-n', 'cft-api-1', 'link', 'set', 'lo', 'up'],
      ['ip', '-n', 'cft-api-1', 'addr', 'add', '10.213.250.21/24', 'dev', 'eth0'],
      ['ip', '-n', 'cft-api-1', 'link', 'set', 'eth0', 'up'],
      ['ip', '-n', 'cft-api-1', 'route', 'add', 'default', 'via', '10.213.250.1'],
    ]);
  });

  it('boots a host on an overlay of the base image, in its namespace and its own cgroups', () => {
    const argv = inCgroups(['/sys/fs/cgroup/unified/cadfleet/cft-api-1'], nspawnCommand(api1, { base: '/img/base', upper: '/state/api-1/upper' }));
    expect(argv).toEqual([
      'sh',
      '-c',
      'for d in $CADFLEET_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 1; done; exec "$@"',
      'cadfleet-cgroup',
      'systemd-nspawn',
      '--quiet',
      '--boot',
      '--register=no',
      '--keep-unit',
      '--machine=cft-api-1',
      '--directory=/img/base',
      '--overlay=/img/base:/state/api-1/upper:/',
      '--network-namespace-path=/run/netns/cft-api-1',
      '--capability=CAP_NET_ADMIN',
    ]);
  });

  it('pins host keys for SSH and never prompts', () => {
    expect(sshCommand({ user: 'admin', ip: '10.213.250.21', keyFile: '/k', knownHosts: '/kh' }, ['hostname'])).toEqual([
      'ssh', '-i', '/k', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'UserKnownHostsFile=/kh',
      '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', 'admin@10.213.250.21', 'hostname',
    ]);
  });
});

describe('debianMirror', () => {
  it('reads deb822 and one-line apt sources, skipping other repositories', () => {
    expect(debianMirror(['Types: deb\nURIs: https://mirror.example/debian\nSuites: bookworm\n'])).toBe('https://mirror.example/debian');
    expect(debianMirror(['deb https://other.example/apt stable main\n', 'deb [arch=amd64] http://mirror.example/debian/ bookworm main\n'])).toBe('http://mirror.example/debian/');
    expect(debianMirror(['URIs: https://mirror.example/debian-security\n'])).toBeUndefined();
  });
});
