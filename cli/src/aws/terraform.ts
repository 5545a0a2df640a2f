import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from '../local/commands';
import type { Runner } from '../local/exec';
import { ROLES } from '../local/fleet';
import { outputsSchema, type Outputs } from '../outputs';
import { TAG_ENVIRONMENT } from '../../../stacks/contract';

/**
 * An AWS environment as the operator tools drive it: the stack is synthesized by the stacks' app
 * (CADFLEET_ENV names it), then planned and applied with terraform itself on the synthesized
 * JSON, so `plan` shows exactly what `apply` will do.
 */
export interface AwsEnvironment {
  name: string;
  repoRoot: string;
  /** The environment's variables: environments/<name>.tfvars by default. */
  varFile: string;
}

export const ENV_NAME = /^[a-z][a-z0-9-]{0,14}[a-z0-9]$/;

export function awsEnvironment(name: string, repoRoot: string, varFile?: string): AwsEnvironment {
  if (name === 'local') throw new Error('the local environment has no stack: use cadfleet local up');
  if (!ENV_NAME.test(name)) throw new Error(`--env must be 2 to 16 lowercase letters, digits or dashes, starting with a letter, got ${JSON.stringify(name)}`);
  return { name, repoRoot, varFile: path.resolve(varFile ?? path.join(repoRoot, 'environments', `${name}.tfvars`)) };
}

export const stackDir = (env: AwsEnvironment): string => path.join(env.repoRoot, 'cdktf.out', 'stacks', `cadfleet-${env.name}`);

/**
 * The stacks' app itself (cdktf.json's "app"), which writes cdktf.out/ as `cdktf synth` would, without
 * cdktf-cli: that CLI loads node-pty at start, which has no build for Node 24, and the stacks stay
 * free of CLI-specific steps (docs/aws.md, "CDK Terrain").
 */
export const synthArgv = (): Argv => [process.execPath, '--import', 'tsx', 'stacks/main.ts'];
export const initArgv = (env: AwsEnvironment): Argv => ['terraform', `-chdir=${stackDir(env)}`, 'init', '-input=false'];
export const planArgv = (env: AwsEnvironment, planFile?: string): Argv => [
  'terraform', `-chdir=${stackDir(env)}`, 'plan', '-input=false', `-var-file=${env.varFile}`, ...(planFile ? [`-out=${planFile}`] : []),
];
export const showPlanArgv = (env: AwsEnvironment, planFile: string): Argv => ['terraform', `-chdir=${stackDir(env)}`, 'show', '-json', planFile];
export const applyArgv = (env: AwsEnvironment, planFile: string): Argv => ['terraform', `-chdir=${stackDir(env)}`, 'apply', '-input=false', planFile];
export const destroyArgv = (env: AwsEnvironment, yes: boolean): Argv => [
  'terraform', `-chdir=${stackDir(env)}`, 'destroy', '-input=false', `-var-file=${env.varFile}`, ...(yes ? ['-auto-approve'] : []),
];
export const outputArgv = (env: AwsEnvironment): Argv => ['terraform', `-chdir=${stackDir(env)}`, 'output', '-json'];

interface TfOutput<T> {
  value: T;
}
interface StackOutputs {
  environment: TfOutput<string>;
  /** Absent from states written before the region became an output. */
  region?: TfOutput<string>;
  lb_address: TfOutput<string>;
  redis: TfOutput<{ host: string; port: number; tls: boolean }>;
  postgres: TfOutput<{ host: string; port: number; database: string }>;
  buckets: TfOutput<{ models: string; releases: string }>;
  ssh_user: TfOutput<string>;
  bastion: TfOutput<{ host: string; user: string }>;
}

/** The deployment outputs of an AWS environment, from `terraform output -json` of its stack. */
export function awsOutputs(tf: StackOutputs): Outputs {
  return outputsSchema.parse({
    environment: tf.environment.value,
    provider: 'aws',
    region: tf.region?.value ?? null,
    lb: { address: tf.lb_address.value, url: `https://${tf.lb_address.value}` },
    // Auto scaling groups own the hosts: the inventory finds them by tag, not by list.
    hosts: Object.fromEntries(ROLES.map((role) => [role, []])),
    hostFilter: { [`tag:${TAG_ENVIRONMENT}`]: tf.environment.value },
    redis: { host: tf.redis.value.host, port: tf.redis.value.port, tls: tf.redis.value.tls },
    postgres: { host: tf.postgres.value.host, port: tf.postgres.value.port, database: tf.postgres.value.database, tls: true },
    buckets: { models: tf.buckets.value.models, releases: tf.buckets.value.releases, endpoint: null },
    ssh: { user: tf.ssh_user.value, keyFile: null, knownHostsFile: null, bastion: tf.bastion.value.host },
  });
}

/**
 * The deployment outputs of an applied AWS environment, read from its stack's state with
 * `terraform output -json` (the stack synthesized and its backend initialized by `cadfleet plan`).
 * Each way it can fail says what to run.
 */
export async function readAwsOutputs(runner: Runner, env: AwsEnvironment): Promise<Outputs> {
  if (!fs.existsSync(path.join(stackDir(env), 'cdk.tf.json'))) {
    throw new Error(`${env.name} has no synthesized stack (${stackDir(env)}): run cadfleet plan --env ${env.name} first; it synthesizes the stack and opens its state`);
  }
  const result = await runner.run(outputArgv(env), { timeoutMs: 120_000 });
  if (result.code !== 0) {
    const why = result.stderr.trim().split('\n').filter(Boolean).pop() ?? `exit ${result.code}`;
    throw new Error(`terraform could not read the state of ${env.name}: ${why}; run cadfleet plan --env ${env.name} (it initializes the state backend) with AWS credentials that may read the state bucket`);
  }
  const tf = JSON.parse(result.stdout || '{}') as Partial<StackOutputs>;
  if (!tf.environment) throw new Error(`the state of ${env.name} has no outputs: the environment was never applied; run cadfleet apply --env ${env.name}`);
  return awsOutputs(tf as StackOutputs);
}

// The inventory moved to ./inventory (with its two routes, SSM and bastion); kept importable from here.
export { awsEc2Inventory } from './inventory';
