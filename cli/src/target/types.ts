// What differs between the two kinds of environment cadfleet deploys: the local fleet on this
// machine, and an AWS environment. The commands, the deploy and the upgrade ask the target;
// none of them branches on the environment's name (test/cli/targets.test.ts holds them to it).
import type { Environment, Outputs, TargetHost } from '../contract';
import type { DeployOptions } from '../deploy/options';
import type { LocalSecrets } from '../deploy/local-secrets';
import type { Runner } from '../local/exec';
import type { LocalContext } from '../local/local-fleet';
import type { Release } from '../release/bundle';
import type { ReleaseStore } from '../release/store';
import type { EnvLock } from '../upgrade/env-lock';

/** One thing `cadfleet doctor` checks on this machine. */
export interface Check {
  name: string;
  /** What the check is needed for; `optional` checks warn instead of failing. */
  for: string;
  ok: boolean;
  optional?: boolean;
  found: string;
  fix: string;
}

export interface LoadOptions {
  makeContext?: () => LocalContext;
  runner?: Runner;
  /** Progress and warnings (a host that did not take the run key). @default stderr */
  log?: (line: string) => void;
}

/** Where an environment's deploy state lives on this machine (deploy files, audit log), and its lock. */
export interface Workspace {
  root: string;
  lock: EnvLock;
}

/** The LB of an environment as the API clients of the CLI reach it. */
export interface ApiTarget {
  url: string;
  /** PEM of the CA that signed the LB's certificate, when it is not a public one (the local fleet's). */
  ca?: Buffer;
}

export interface Target {
  readonly kind: 'local' | 'aws';
  readonly name: string;
  /** The deployment outputs. */
  outputs(): Promise<Outputs>;
  /** The environment as the operator commands see it: its outputs, its hosts, the route to them. */
  load(options?: LoadOptions): Promise<Environment>;
  /** Where this machine keeps the environment's deploy files and audit log, and the lock deploys and upgrades take. */
  workspace(): Promise<Workspace>;
  /** The ssh argv for a host of the environment. */
  ssh(env: Environment, host: TargetHost, remote: readonly string[], options?: { tty?: boolean }): readonly string[];
  /** The inventory a playbook runs on (a file), and what the deploy digest takes of it. */
  inventory(env: Environment, dir: string): { file: string; text: string };
  /** The variables a playbook gets for a release. */
  playbookVars(opts: DeployOptions, release: Release): Promise<Record<string, unknown>>;
  /** Secrets to redact from Ansible's output; null where no secret goes through the playbooks (AWS hosts read theirs at run time). */
  secrets(stateRoot: string): LocalSecrets | null;
  /** The environment's releases bucket. */
  releaseStore(outputs: Outputs, stateRoot: string): ReleaseStore;
  /** Whether a whole-fleet `cadfleet deploy` publishes its release and moves `releases/current` (hosts that boot by themselves install it). */
  readonly publishesAfterDeploy: boolean;
  /** Why `cadfleet deploy` does not apply to this environment, and what to run instead; undefined where it does. */
  readonly deployRefusal: string | undefined;
  /** The file an upgrade keeps the pointer it wrote in, where the bucket is the fleet's own. */
  pointerFile(workspaceRoot: string): string | undefined;
  /** What to look at when a host does not answer. */
  runningHint(host: TargetHost): string;
  /** The LB's URL, and the CA to trust for it. */
  api(caFile?: string): Promise<ApiTarget>;
  /** Of this machine's checks, those the environment needs, each required or optional as it needs it. */
  doctorChecks(machine: Check[]): Promise<Check[]>;
}
