// What is fixed when a stack is synthesized: which environment it is, and where its state
// lives. Terraform needs a concrete backend block (no variables allowed there), so these
// come from the environment of `cdktf synth`, not from terraform.tfvars.
import path from 'node:path';
import { PropsError } from './validate';

/** Remote state in S3, locked with an S3 lock file (no DynamoDB table needed). */
export interface S3StateConfig {
  readonly kind: 's3';
  readonly bucket: string;
  readonly key: string;
  readonly region: string;
}

/** State on this machine: for trying things out alone, never for a shared environment. */
export interface LocalStateConfig {
  readonly kind: 'local';
  readonly path: string;
}

export interface StackConfig {
  /** Environment name: stack `cadfleet-<environment>`, resource names, tags. */
  readonly environment: string;
  /** Production environments default to deletion protection. */
  readonly production: boolean;
  readonly state: S3StateConfig | LocalStateConfig;
}

export const ENVIRONMENT_PATTERN = /^[a-z][a-z0-9-]{0,14}[a-z0-9]$/;
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION_PATTERN = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/;
const KEY_PATTERN = /^[A-Za-z0-9!_.*'()/-]{1,1024}$/;

export const DEFAULT_ENVIRONMENT = 'staging';

/** Environments whose name says production: deletion protection on by default, S3 state required. */
export const isProductionName = (environment: string): boolean => /^(prod|production)(-|$)/.test(environment);

export const stackName = (environment: string): string => `cadfleet-${environment}`;

type Env = Record<string, string | undefined>;

function fail(name: string, requirement: string, got: string | undefined): never {
  throw new PropsError(`\`${name}\` must ${requirement}, got ${got === undefined ? 'nothing (it is not set)' : JSON.stringify(got)}`);
}

/**
 * Reads the synth-time settings:
 * - `CADFLEET_ENV` environment name (default `staging`);
 * - `CADFLEET_STATE_BUCKET` S3 bucket for the state (unset: local state under `.cadfleet/state/`,
 *   refused for production environments);
 * - `CADFLEET_STATE_REGION` that bucket's region (default `AWS_REGION`, then `AWS_DEFAULT_REGION`);
 * - `CADFLEET_STATE_KEY` object key (default `cadfleet/<env>/terraform.tfstate`).
 */
export function loadStackConfig(env: Env, repoRoot: string): StackConfig {
  const value = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const environment = value('CADFLEET_ENV') ?? DEFAULT_ENVIRONMENT;
  if (!ENVIRONMENT_PATTERN.test(environment)) {
    fail('CADFLEET_ENV', 'be 2 to 16 lowercase letters, digits or dashes, starting with a letter', environment);
  }
  const production = isProductionName(environment);
  const bucket = value('CADFLEET_STATE_BUCKET');
  if (bucket === undefined) {
    if (production) fail('CADFLEET_STATE_BUCKET', `be set for the production environment "${environment}" (state must be shared and locked)`, bucket);
    return { environment, production, state: { kind: 'local', path: path.join(repoRoot, '.cadfleet', 'state', environment, 'terraform.tfstate') } };
  }
  if (!BUCKET_PATTERN.test(bucket) || bucket.includes('..')) fail('CADFLEET_STATE_BUCKET', 'be an S3 bucket name', bucket);
  const region = value('CADFLEET_STATE_REGION') ?? value('AWS_REGION') ?? value('AWS_DEFAULT_REGION');
  if (region === undefined || !REGION_PATTERN.test(region)) {
    fail('CADFLEET_STATE_REGION', 'be the AWS region of the state bucket, e.g. "eu-west-1" (or set AWS_REGION)', region);
  }
  const key = value('CADFLEET_STATE_KEY') ?? `cadfleet/${environment}/terraform.tfstate`;
  if (!KEY_PATTERN.test(key) || key.startsWith('/')) fail('CADFLEET_STATE_KEY', 'be an S3 object key (letters, digits, /._-), not starting with "/"', key);
  return { environment, production, state: { kind: 's3', bucket, key, region } };
}
