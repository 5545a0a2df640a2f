// The one place that tells the two kinds of environment apart: `local` is the fleet on this
// machine, any other name an AWS environment (cli/src/target/types.ts says what differs).
import type { Environment } from '../contract';
import { awsTarget } from './aws';
import { localTarget } from './local';
import { LOCAL } from './places';
import type { Target, Workspace } from './types';

export function targetNamed(name: string): Target {
  return name === LOCAL ? localTarget(name) : awsTarget(name);
}

/** The target of a loaded environment, by what its outputs say it is. */
export function targetOf(env: Pick<Environment, 'name' | 'outputs'>): Target {
  return env.outputs.provider === 'local' ? localTarget(env.name) : awsTarget(env.name);
}

export type { ApiTarget, Check, LoadOptions, Target, Workspace } from './types';

/** Where an environment's deploy state lives on this machine (deploy files, audit log), and its lock. */
export function workspaceOf(envName: string): Promise<Workspace> {
  return targetNamed(envName).workspace();
}
