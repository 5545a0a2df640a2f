// The staging stack the plan tests synthesize (test/stacks/plan.test.ts, image-pin.test.ts):
// S3 state as a shared environment has it, and terraform.tfvars.example as its variables.
import path from 'node:path';
import { buildApp } from '../../../stacks/app';
import type { StackConfig } from '../../../stacks/config';

export const repoRoot = path.resolve(import.meta.dirname, '../../..');
export const exampleVars = path.join(repoRoot, 'terraform.tfvars.example');
export const ENV = 'staging';
export const config: StackConfig = {
  environment: ENV,
  production: false,
  state: { kind: 's3', bucket: 'cadfleet-tfstate-example', key: `cadfleet/${ENV}/terraform.tfstate`, region: 'us-east-1' },
};

/** Synthesizes the staging stack under `workDir`; returns the folder of its cdk.tf.json. */
export function synthStaging(workDir: string): string {
  buildApp(config, { outdir: path.join(workDir, 'cdktf.out') }).app.synth();
  return path.join(workDir, 'cdktf.out', 'stacks', `cadfleet-${ENV}`);
}
