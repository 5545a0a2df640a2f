import { describe, expect, it } from 'vitest';
import { journalctlArgv, since } from '../../cli/src/commands/ops';
import { hostsOf, resolveHosts, sshTo, type Environment } from '../../cli/src/environment';
import { parseFleetSpec, planFleet } from '../../cli/src/local/fleet';
import { fleetPaths } from '../../cli/src/local/hosts';
import { localOutputs, outputsSchema } from '../../cli/src/outputs';

const fleet = planFleet(parseFleetSpec({}));
const outputs = localOutputs('local', fleet, fleetPaths('/state', fleet));
const env: Environment = { name: 'local', outputs, hosts: hostsOf(outputs) };

describe('deployment outputs of the local fleet', () => {
  it('fit the contract and name every host by role, the data host\'s endpoints and SSH access, no secrets', () => {
    expect(outputsSchema.parse(outputs)).toEqual(outputs);
    expect(outputs.lb).toEqual({ address: '10.213.0.10', url: 'https://10.213.0.10' });
    expect(outputs.hosts.worker).toEqual([{ name: 'cf-worker-1', address: '10.213.0.31' }, { name: 'cf-worker-2', address: '10.213.0.32' }]);
    expect(outputs.postgres).toMatchObject({ host: '10.213.0.11', port: 5432, tls: true });
    expect(outputs.ssh).toEqual({ user: 'admin', keyFile: '/state/cf/ssh/id_ed25519', knownHostsFile: '/state/cf/ssh/known_hosts', bastion: null });
    expect(JSON.stringify(outputs)).not.toMatch(/password|secret/i);
  });
});

describe('host selection', () => {
  it('takes a role, role/index, a host name or its short form, or an address', () => {
    expect(resolveHosts(env, 'streamer').map((h) => h.name)).toEqual(['cf-streamer-1', 'cf-streamer-2']);
    expect(resolveHosts(env, 'api/2').map((h) => h.name)).toEqual(['cf-api-2']);
    expect(resolveHosts(env, 'worker-1').map((h) => h.name)).toEqual(['cf-worker-1']);
    expect(resolveHosts(env, '10.213.0.11').map((h) => h.name)).toEqual(['cf-data']);
    expect(() => resolveHosts(env, 'api/5')).toThrow(/role api has 2 host\(s\) in local; api\/5 is not one of them/);
    expect(() => resolveHosts(env, 'nosuch')).toThrow(/no host "nosuch" in local; hosts: cf-lb, cf-data/);
  });

  it('goes through the bastion when the environment has one', () => {
    const aws: Environment = { ...env, outputs: { ...outputs, ssh: { ...outputs.ssh, bastion: '203.0.113.7' } } };
    const argv = sshTo(aws, env.hosts[2]!, ['hostname']);
    expect(argv.slice(-4)).toEqual(['-J', 'admin@203.0.113.7', 'admin@10.213.0.21', 'hostname']);
  });
});

describe('journalctlArgv', () => {
  it('builds the journal query run on each host', () => {
    expect(journalctlArgv({ unit: 'cadfleet-worker*', since: '-10min', lines: 50, follow: true })).toEqual([
      'sudo', 'journalctl', '--no-pager', '--output=short-iso-precise', '--unit=cadfleet-worker*', '--since=-10min', '--lines=50', '--follow',
    ]);
  });
});

describe('since', () => {
  it('turns what people write into journalctl time specs, and refuses the rest', () => {
    expect(since('10 min ago')).toBe('-10min');
    expect(since('2h')).toBe('-2h');
    expect(since('30 seconds ago')).toBe('-30s');
    expect(since('today')).toBe('today');
    expect(since('2026-01-31 12:00')).toBe('2026-01-31 12:00');
    expect(() => since('last tuesday')).toThrow(/must be like "10 min ago"/);
  });
});
