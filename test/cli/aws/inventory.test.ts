// The AWS inventory's route to hosts. The aws_ec2 plugin itself needs AWS to list instances, so
// the test stands in for it: it evaluates the inventory's `compose` expressions with Ansible for
// two workers (as the plugin would per instance), then lets Ansible's real ssh connection try
// them with a fake `aws` on PATH that records how it was called. That proves the quoting
// survives Jinja, Ansible's argument splitting and ssh's %h/%p expansion, and that the session
// uses a document the deploy role may start on this environment's instances.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { awsEc2Inventory, sshCommonArgs, ssmProxyCommand } from '../../../cli/src/aws/inventory';
import { stagingOutputs } from '../../helpers/aws-outputs';
import { SSH_SESSION_DOCUMENT } from '../../../stacks/contract';
import { deployStatements } from '../../../stacks/deploy-policy';

const outputs = stagingOutputs();

interface Inventory {
  hostnames: string[];
  compose: Record<string, string>;
  groups: Record<string, string>;
  filters: Record<string, string>;
}
const inventory = (route: 'ssm' | 'bastion'): Inventory => awsEc2Inventory(outputs, 'us-east-1', route) as unknown as Inventory;

/** Evaluates `compose` as the aws_ec2 plugin does: each value a Jinja expression over the instance's variables. */
function composeFor(compose: Record<string, string>, instance: Record<string, string>): Record<string, string> {
  const expression = `{{ { ${Object.entries(compose).map(([k, v]) => `'${k}': (${v})`).join(', ')} } }}`;
  const r = spawnSync('ansible', ['all', '-i', 'localhost,', '-c', 'local', '-m', 'ansible.builtin.debug', '-a', `msg=${expression}`, '-e', JSON.stringify(instance)], {
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_LOAD_CALLBACK_PLUGINS: '1', ANSIBLE_STDOUT_CALLBACK: 'json', ANSIBLE_NOCOLOR: '1' },
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout).plays[0].tasks[0].hosts.localhost.msg;
}

describe('AWS inventory', () => {
  it('keys hosts by instance id: every host of a role has the same Name tag', () => {
    for (const route of ['ssm', 'bastion'] as const) {
      const inv = inventory(route);
      expect(inv.hostnames).toEqual(['instance-id']);
      expect(inv.filters).toEqual({ 'tag:cadfleet:environment': 'staging', 'instance-state-name': 'running' });
      expect(Object.keys(inv.groups)).toEqual(['lb', 'api', 'worker', 'streamer']);
    }
  });

  it('gives the playbooks the variables a generated inventory gives them (the CloudWatch agent runs where cadfleet_provider is aws)', () => {
    const vars = composeFor(inventory('ssm').compose, { instance_id: 'i-0aaa', private_ip_address: '10.40.10.5' });
    expect(vars).toMatchObject({ ansible_host: 'i-0aaa', cadfleet_private_address: '10.40.10.5', ansible_user: 'admin', cadfleet_environment: 'staging', cadfleet_provider: 'aws' });
    const viaBastion = composeFor(inventory('bastion').compose, { instance_id: 'i-0aaa', private_ip_address: '10.40.10.5' });
    expect(viaBastion).toMatchObject({ ansible_host: '10.40.10.5', ansible_ssh_common_args: '-o ProxyCommand="ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -W %h:%p admin@203.0.113.7" -o StrictHostKeyChecking=accept-new' });
  });

  it('reaches every host of a role through Session Manager: ssh runs `aws ssm start-session` for each instance id', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-ssm-'));
    const calls = path.join(dir, 'aws-calls');
    // Stands in for the AWS CLI: records its arguments; no session, so ssh gives up at once.
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.writeFileSync(path.join(dir, 'bin', 'aws'), `#!/bin/sh\necho "$*" >> ${JSON.stringify(calls)}\nexit 1\n`, { mode: 0o755 });
    const compose = inventory('ssm').compose;
    const hosts = Object.fromEntries(
      ['i-0aaa', 'i-0bbb'].map((id, n) => [id, composeFor(compose, { instance_id: id, private_ip_address: `10.40.10.${5 + n}` })]),
    );
    const invFile = path.join(dir, 'hosts.json');
    fs.writeFileSync(invFile, JSON.stringify({ all: { children: { worker: { hosts } } } }));
    const r = spawnSync('ansible', ['worker', '-i', invFile, '-m', 'ansible.builtin.ping'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: {
        ...process.env,
        PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`,
        HOME: dir,
        ANSIBLE_HOST_KEY_CHECKING: 'False',
        ANSIBLE_SSH_RETRIES: '0',
        ANSIBLE_TIMEOUT: '10',
        ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(dir, 'cp'),
        ANSIBLE_NOCOLOR: '1',
      },
    });
    expect(r.stdout).toMatch(/UNREACHABLE/); // no real session behind the fake CLI
    const lines = fs.readFileSync(calls, 'utf8').trim().split('\n').sort();
    expect(lines).toEqual([
      `ssm start-session --target i-0aaa --document-name ${SSH_SESSION_DOCUMENT} --parameters portNumber=22 --region us-east-1`,
      `ssm start-session --target i-0bbb --document-name ${SSH_SESSION_DOCUMENT} --parameters portNumber=22 --region us-east-1`,
    ]);
    expect(sshCommonArgs(outputs, 'us-east-1', 'ssm')).toBe(`-o ProxyCommand="${ssmProxyCommand('us-east-1')}" -o StrictHostKeyChecking=accept-new`);
  });

  it('uses a session document the deploy role may start, on this environment\'s instances only', () => {
    const policies = deployStatements({
      environment: 'staging',
      partition: 'aws',
      region: 'us-east-1',
      account: '123456789012',
      state: { bucket: 'tfstate', key: 'cadfleet/staging/terraform.tfstate' },
      releasesBucketArn: 'arn:aws:s3:::cadfleet-staging-releases-1',
      settingsParameterArn: 'arn:aws:ssm:us-east-1:123456789012:parameter/cadfleet/staging/app.env',
      hostRoleNames: ['cadfleet-staging-api'],
      deployRoleName: 'cadfleet-staging-deploy',
    });
    const statements = Object.values(policies).flat();
    const starts = statements.filter((s) => s.effect !== 'Deny' && s.actions.includes('ssm:StartSession'));
    expect(starts.flatMap((s) => s.resources)).toContain(`arn:aws:ssm:us-east-1::document/${SSH_SESSION_DOCUMENT}`);
    const onInstances = starts.filter((s) => s.resources.some((r) => r.includes(':instance/')));
    expect(onInstances.length).toBeGreaterThan(0);
    for (const s of onInstances) expect(s.conditions).toContainEqual({ test: 'StringEquals', variable: 'ssm:resourceTag/cadfleet:environment', values: ['staging'] });
  });
});
