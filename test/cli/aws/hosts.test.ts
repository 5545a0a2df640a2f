// Host discovery of an AWS environment. The aws_ec2 plugin needs EC2 to list instances, which
// nothing here answers; so the listing is checked in two halves, each with real Ansible:
// - `ansible-inventory --list` of an inventory whose hosts carry the variables the plugin
//   gives each instance (instance_id, private_ip_address, launch_time, tags), grouped by role
//   as the environment's inventory groups them; the CLI reads that answer into hosts by role;
// - the environment's own aws_ec2 inventory file, run by the real plugin with boto3 up to its
//   DescribeInstances call (which meets a proxy that refuses it): the file is accepted, the
//   failure is an error and not an empty fleet, and the message says what to check.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverAwsHosts, hostsFromInventory, inventoryError, type InventoryList } from '../../../cli/src/aws/hosts';
import { stagingOutputs } from '../../helpers/aws-outputs';
import { type Environment, sshTo } from '../../../cli/src/environment';
import { systemRunner } from '../../../cli/src/local/exec';
import { tempDir } from '../../helpers/convert';

const outputs = stagingOutputs('eu-west-1');

const instance = (id: string, role: string, ip: string, launched: string): Record<string, unknown> => ({
  instance_id: id,
  private_ip_address: ip,
  launch_time: launched,
  tags: { Name: `cadfleet-staging-${role}`, 'cadfleet:environment': 'staging', 'cadfleet:role': role },
  ansible_host: id,
  cadfleet_private_address: ip,
});

/** `ansible-inventory --list` of a YAML inventory (JSON is YAML) with these groups. */
function listed(groups: Record<string, Record<string, Record<string, unknown>>>): InventoryList {
  const dir = tempDir('cadfleet-inv-');
  const file = path.join(dir, 'hosts.yml');
  fs.writeFileSync(file, JSON.stringify({ all: { children: Object.fromEntries(Object.entries(groups).map(([g, hosts]) => [g, { hosts }])) } }));
  const r = spawnSync('ansible-inventory', ['-i', file, '--list'], { encoding: 'utf8', env: { ...process.env, ANSIBLE_NOCOLOR: '1' } });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as InventoryList;
}

describe('hosts of an AWS environment', () => {
  it('reads ansible-inventory\'s listing into hosts by role, numbered in launch order, addressed by private address', () => {
    const list = listed({
      lb: { 'i-0lb': instance('i-0lb', 'lb', '10.40.0.10', '2026-11-01T10:00:00+00:00') },
      worker: {
        'i-0w2': instance('i-0w2', 'worker', '10.40.10.7', '2026-12-01T09:30:00+00:00'),
        'i-0w1': instance('i-0w1', 'worker', '10.40.11.5', '2026-11-30T08:00:00+00:00'),
      },
      api: { 'i-0a1': instance('i-0a1', 'api', '10.40.10.4', '2026-11-01T10:00:00+00:00') },
      // The plugin's own group of every instance; not a role.
      aws_ec2: { 'i-0stray': instance('i-0stray', 'other', '10.40.12.9', '2026-11-01T10:00:00+00:00') },
    });
    expect(hostsFromInventory(list)).toEqual([
      { name: 'i-0lb', role: 'lb', index: 1, address: '10.40.0.10' },
      { name: 'i-0a1', role: 'api', index: 1, address: '10.40.10.4' },
      { name: 'i-0w1', role: 'worker', index: 1, address: '10.40.11.5' },
      { name: 'i-0w2', role: 'worker', index: 2, address: '10.40.10.7' },
    ]);
  });

  it('refuses an instance tagged into two roles, and names it', () => {
    const twice = instance('i-0both', 'api', '10.40.10.4', '2026-11-01T10:00:00+00:00');
    expect(() => hostsFromInventory(listed({ api: { 'i-0both': twice }, worker: { 'i-0both': twice } }))).toThrow(/i-0both is tagged into two roles \(api and worker\)/);
  });

  it('runs the environment\'s aws_ec2 inventory with the real plugin, and a failed EC2 call is an error that says what to check, not an empty fleet', async () => {
    const saved = { ...process.env };
    // Credentials that sign, and a proxy that refuses: the plugin gets as far as DescribeInstances.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example', HTTPS_PROXY: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9', AWS_MAX_ATTEMPTS: '1' });
    delete process.env.AWS_PROFILE;
    const dir = tempDir('cadfleet-aws-');
    try {
      const err = await discoverAwsHosts(systemRunner, outputs, 'ssm', dir, path.join(dir, 'run_ed25519')).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/cannot list the hosts of staging with the aws_ec2 inventory: Failed to describe instances/);
      expect(err?.message).toMatch(/ec2:DescribeInstances in eu-west-1/);
      const written = JSON.parse(fs.readFileSync(path.join(dir, 'inventory.aws_ec2.yml'), 'utf8'));
      expect(written).toMatchObject({ plugin: 'amazon.aws.aws_ec2', regions: ['eu-west-1'], compose: { ansible_ssh_private_key_file: `'${path.join(dir, 'run_ed25519')}'` } });
    } finally {
      process.env = saved;
    }
  });

  it('pulls the plugin\'s reason out of ansible-inventory\'s wrapped warnings', () => {
    const stderr = `[WARNING]:  * Failed to parse /x/inventory.aws_ec2.yml with
ansible_collections.amazon.aws.plugins.inventory.aws_ec2 plugin: Failed to
describe instances: An error occurred (UnauthorizedOperation) when calling the
DescribeInstances operation: You are not authorized to perform this operation.
[WARNING]: Unable to parse /x/inventory.aws_ec2.yml as an inventory source
ERROR! No inventory was parsed, please check your configuration and options.`;
    expect(inventoryError(stderr)).toBe(
      'Failed to describe instances: An error occurred (UnauthorizedOperation) when calling the DescribeInstances operation: You are not authorized to perform this operation.',
    );
  });
});

describe('ssh to an AWS host', () => {
  const hosts = [{ name: 'i-0w1', role: 'worker' as const, index: 1, address: '10.40.11.5' }];
  const key = '/home/op/.cadfleet/run_ed25519';

  it('goes inside a Session Manager session to the instance id, with the run key', () => {
    const env: Environment = { name: 'staging', outputs, hosts, route: 'ssm', keyFile: key };
    const argv = sshTo(env, hosts[0]!, ['hostname']);
    expect(argv).toEqual([
      'ssh', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new', '-o', 'ConnectTimeout=20', '-o', 'LogLevel=ERROR',
      '-o', 'ProxyCommand=aws ssm start-session --target %h --document-name AWS-StartSSHSession --parameters portNumber=%p --region eu-west-1',
      'admin@i-0w1', 'hostname',
    ]);
  });

  it('goes through the bastion to the private address, the bastion taking the same key', () => {
    const env: Environment = { name: 'staging', outputs, hosts, route: 'bastion', keyFile: key };
    const argv = sshTo(env, hosts[0]!, ['hostname']);
    expect(argv).toContain(`ProxyCommand=ssh -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -W %h:%p admin@203.0.113.7`);
    expect(argv.slice(-2)).toEqual(['admin@10.40.11.5', 'hostname']);
  });
});
