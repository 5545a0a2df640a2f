import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyArgv, awsEc2Inventory, awsEnvironment, awsOutputs, destroyArgv, planArgv, readAwsOutputs, stackDir, synthArgv } from '../../../cli/src/aws/terraform';
import { systemRunner } from '../../../cli/src/local/exec';
import { tempDir } from '../../helpers/convert';
import { inventoryFrom } from '../../../cli/src/deploy/ansible';

const env = awsEnvironment('staging', '/repo');

describe('AWS environment commands', () => {
  it("synthesizes by running the stacks' app on this Node, not through cdktf-cli (whose node-pty has no Node 24 build)", () => {
    // The command test/stacks/synth-cli.test.ts runs as stacks/main.ts, from the repository root.
    expect(synthArgv()).toEqual([process.execPath, '--import', 'tsx', 'stacks/main.ts']);
  });

  it('plans with the environment\'s tfvars and applies exactly the saved plan', () => {
    expect(env.varFile).toBe('/repo/environments/staging.tfvars');
    expect(planArgv(env, '/tmp/p/tfplan')).toEqual(['terraform', '-chdir=/repo/cdktf.out/stacks/cadfleet-staging', 'plan', '-input=false', '-var-file=/repo/environments/staging.tfvars', '-out=/tmp/p/tfplan']);
    expect(applyArgv(env, '/tmp/p/tfplan')).toEqual(['terraform', '-chdir=/repo/cdktf.out/stacks/cadfleet-staging', 'apply', '-input=false', '/tmp/p/tfplan']);
    expect(destroyArgv(env, false)).not.toContain('-auto-approve');
    expect(destroyArgv(env, true)).toContain('-auto-approve');
  });

  it('refuses environment names the stack would refuse, and local', () => {
    expect(() => awsEnvironment('Prod', '/repo')).toThrow(/--env must be 2 to 16 lowercase letters/);
    expect(() => awsEnvironment('local', '/repo')).toThrow(/cadfleet local up/);
  });
});

describe('deployment outputs of an AWS environment', () => {
  const tf = {
    environment: { value: 'staging' },
    lb_address: { value: '203.0.113.7' },
    redis: { value: { host: 'master.cadfleet-staging.abc.use1.cache.amazonaws.com', port: 6379, tls: true } },
    postgres: { value: { host: 'cadfleet-staging.abc.us-east-1.rds.amazonaws.com', port: 5432, database: 'cadfleet' } },
    buckets: { value: { models: 'cadfleet-staging-models-123', releases: 'cadfleet-staging-releases-123' } },
    ssh_user: { value: 'admin' },
    bastion: { value: { host: '203.0.113.7', user: 'admin' } },
  };

  it('has the same shape as the local ones, with a tag filter for the hosts and the LB as bastion', () => {
    const outputs = awsOutputs(tf);
    expect(outputs).toMatchObject({ environment: 'staging', provider: 'aws', lb: { url: 'https://203.0.113.7' }, hostFilter: { 'tag:cadfleet:environment': 'staging' }, ssh: { user: 'admin', bastion: '203.0.113.7' } });
    expect(outputs.hosts.api).toEqual([]);
    const inv = inventoryFrom(outputs) as { all: { vars: Record<string, string> } };
    expect(inv.all.vars.ansible_ssh_common_args).toContain('-o ProxyJump=admin@203.0.113.7');
  });

  it('finds hosts for Ansible by the stack\'s tags, one group per role', () => {
    const inv = awsEc2Inventory(awsOutputs(tf), 'us-east-1');
    expect(inv).toMatchObject({
      plugin: 'amazon.aws.aws_ec2',
      filters: { 'tag:cadfleet:environment': 'staging', 'instance-state-name': 'running' },
      groups: { lb: "tags.get('cadfleet:role') == 'lb'", worker: "tags.get('cadfleet:role') == 'worker'" },
    });
  });
});

describe('cadfleet outputs of an applied AWS environment', () => {
  it('reads them from the stack\'s state with terraform, and says what to run when there is none', async () => {
    const repo = tempDir('cadfleet-outputs-');
    const env = awsEnvironment('staging', repo);
    await expect(readAwsOutputs(systemRunner, env)).rejects.toThrow(/has no synthesized stack .* run cadfleet plan --env staging first/);

    // A stack with the outputs the real one declares (stacks/cadfleet-stack.ts), literal values
    // in place of resource attributes: terraform writes them to a local state as an apply would.
    const dir = stackDir(env);
    fs.mkdirSync(dir, { recursive: true });
    const outputs = {
      environment: 'staging',
      region: 'eu-west-1',
      lb_address: 'fleet.example.com',
      redis: { host: 'master.cadfleet-staging.abc.euw1.cache.amazonaws.com', port: 6379, tls: true, auth: 'iam', user: 'cadfleet-app', cache_id: 'cadfleet-staging' },
      postgres: { host: 'cadfleet-staging.abc.eu-west-1.rds.amazonaws.com', port: 5432, database: 'cadfleet', user: 'cadfleet', sslmode: 'verify-full', password_secret_arn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1' },
      buckets: { uploads: 'cadfleet-staging-models-1', models: 'cadfleet-staging-models-1', releases: 'cadfleet-staging-releases-1' },
      ssh_user: 'admin',
      bastion: { host: '203.0.113.7', user: 'admin' },
    };
    fs.writeFileSync(path.join(dir, 'cdk.tf.json'), JSON.stringify({ output: Object.fromEntries(Object.entries(outputs).map(([k, value]) => [k, { value }])) }));
    const tf = (...args: string[]): void => void execFileSync('terraform', [`-chdir=${dir}`, ...args, '-input=false', '-no-color'], { encoding: 'utf8', stdio: 'pipe' });
    tf('init');
    await expect(readAwsOutputs(systemRunner, env)).rejects.toThrow(/has no outputs: the environment was never applied; run cadfleet apply --env staging/);
    tf('apply', '-auto-approve');
    const read = await readAwsOutputs(systemRunner, env);
    expect(read).toMatchObject({
      environment: 'staging',
      provider: 'aws',
      lb: { address: 'fleet.example.com', url: 'https://fleet.example.com' },
      hostFilter: { 'tag:cadfleet:environment': 'staging' },
      buckets: { models: 'cadfleet-staging-models-1', releases: 'cadfleet-staging-releases-1', endpoint: null },
      postgres: { host: 'cadfleet-staging.abc.eu-west-1.rds.amazonaws.com', tls: true },
      ssh: { user: 'admin', bastion: '203.0.113.7' },
    });
    // No secret reaches the document: the secret's ARN is not even carried.
    expect(JSON.stringify(read)).not.toContain('secretsmanager');
  });
});
