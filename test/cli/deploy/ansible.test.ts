import { describe, expect, it } from 'vitest';
import { ansiblePlaybookArgv, inventoryFrom, playFailures, playRecap } from '../../../cli/src/deploy/ansible';
import { redact } from '../../../cli/src/deploy/local-secrets';
import { parseFleetSpec, planFleet } from '../../../cli/src/local/fleet';
import { fleetPaths } from '../../../cli/src/local/hosts';
import { localOutputs } from '../../../cli/src/outputs';

const fleet = planFleet(parseFleetSpec({}));
const outputs = localOutputs('local', fleet, fleetPaths('/state', fleet));

describe('ansible-playbook command line', () => {
  it('passes variables by file, never inline', () => {
    expect(ansiblePlaybookArgv({ playbook: 'playbooks/site.yml', inventory: '/d/inventory.json', varsFile: '/d/vars.json', limit: 'data' })).toEqual([
      'ansible-playbook', '-i', '/d/inventory.json', '--extra-vars', '@/d/vars.json', '--limit', 'data', 'playbooks/site.yml',
    ]);
  });
});

describe('inventory from the deployment outputs', () => {
  it('groups hosts by role with their addresses and pins SSH host keys', () => {
    const inv = inventoryFrom(outputs) as { all: { vars: Record<string, string>; children: Record<string, { hosts: Record<string, { ansible_host: string; cadfleet_private_address: string }> }> } };
    expect(Object.keys(inv.all.children)).toEqual(['lb', 'data', 'api', 'worker', 'streamer']);
    expect(inv.all.children.worker!.hosts).toEqual({
      'cf-worker-1': { ansible_host: '10.213.0.31', cadfleet_private_address: '10.213.0.31' },
      'cf-worker-2': { ansible_host: '10.213.0.32', cadfleet_private_address: '10.213.0.32' },
    });
    expect(inv.all.vars).toMatchObject({ ansible_user: 'admin', ansible_ssh_private_key_file: '/state/cf/ssh/id_ed25519', cadfleet_environment: 'local' });
    expect(inv.all.vars.ansible_ssh_common_args).toContain('-o UserKnownHostsFile=/state/cf/ssh/known_hosts -o StrictHostKeyChecking=yes');
  });

  it('reaches AWS hosts through the bastion', () => {
    const inv = inventoryFrom({ ...outputs, ssh: { ...outputs.ssh, bastion: '203.0.113.7', knownHostsFile: null } }) as { all: { vars: Record<string, string> } };
    expect(inv.all.vars.ansible_ssh_common_args).toBe('-o ProxyJump=admin@203.0.113.7 -o IdentitiesOnly=yes');
  });
});

describe('reading a playbook run', () => {
  const output = [
    'TASK [common : Ensure sshd allows keys only and no root login.] ***',
    'ok: [cf-api-1]',
    'fatal: [cf-streamer-1]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: ssh: connect to host 10.213.0.41 port 22: Connection refused", "unreachable": true}',
    'TASK [redis_local : Ensure Redis is started and enabled at boot.] ***',
    'fatal: [cf-data]: FAILED! => {"changed": false, "msg": "Unable to start service redis-server"}',
    'PLAY RECAP *********',
    'cf-api-1                   : ok=11   changed=2    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0',
    'cf-streamer-1              : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0',
  ].join('\n');

  it('names the failing host and task with the reason', () => {
    expect(playFailures(output)).toEqual([
      { host: 'cf-streamer-1', task: 'common : Ensure sshd allows keys only and no root login. (host unreachable)', message: expect.stringContaining('port 22: Connection refused') },
      { host: 'cf-data', task: 'redis_local : Ensure Redis is started and enabled at boot.', message: 'Unable to start service redis-server' },
    ]);
  });

  it('reads the recap', () => {
    expect(playRecap(output)).toEqual([
      { host: 'cf-api-1', ok: 11, changed: 2, unreachable: 0, failed: 0 },
      { host: 'cf-streamer-1', ok: 0, changed: 0, unreachable: 1, failed: 0 },
    ]);
  });

  it('redacts secrets from output', () => {
    const secrets = { postgresPassword: 'p'.repeat(20), redisPassword: 'r'.repeat(20), streamTokenSecret: 't'.repeat(40) };
    expect(redact(`requirepass ${'r'.repeat(20)}`, secrets)).toBe('requirepass [REDACTED]');
  });
});

describe('service setting overrides', () => {
  it('take a JSON object of CADFLEET_* variables and nothing else', async () => {
    const { extraServiceEnv } = await import('../../../cli/src/deploy/service-env');
    expect(extraServiceEnv('{"CADFLEET_JOB_LOCK_MS":4000}')).toEqual({ CADFLEET_JOB_LOCK_MS: '4000' });
    expect(extraServiceEnv(undefined)).toEqual({});
    expect(() => extraServiceEnv('{"PATH":"/tmp"}')).toThrow(/only set CADFLEET_\* variables, got PATH/);
    expect(() => extraServiceEnv('lock=1')).toThrow(/must be a JSON object/);
  });
});
