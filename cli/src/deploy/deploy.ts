import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { Outputs } from '../outputs';
import { buildRelease, type Release } from '../release/bundle';
import type { ReleaseStore } from '../release/store';
import { targetOf } from '../target';
import { ansibleDir } from './ansible-dir';
import { ansiblePlaybookArgv, playFailures, playRecap, type PlayFailure, type RecapLine } from './ansible';
import { redact } from './local-secrets';
import type { DeployOptions } from './options';

export type { DeployOptions };

export interface DeployReport {
  ok: boolean;
  /** The version `releases/current` names after the deploy (null: not changed, e.g. a --limit deploy). */
  pointer: string | null;
  release: Pick<Release, 'version' | 'sha256' | 'bytes' | 'reused'>;
  seconds: number;
  recap: RecapLine[];
  changed: number;
  failures: PlayFailure[];
  log: string;
}

export { ansibleDir };
export { localFirewallSources, localReleaseStore } from './local-vars';


/** Root (the local fleet's commands) keeps releases beside the fleet; anyone else (an AWS upgrade from a laptop or a runner) in their cache. */
export const releasesDir = (opts: { releasesDir?: string }): string =>
  opts.releasesDir ??
  process.env.CADFLEET_RELEASES_DIR ??
  (process.getuid?.() === 0 ? '/var/lib/cadfleet/releases' : path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'cadfleet', 'releases'));

/** Builds (or finds) the release of the working tree under the given version. */
export async function releaseFor(opts: Pick<DeployOptions, 'version' | 'releasesDir' | 'log'>): Promise<Release> {
  const release = await buildRelease({ repoRoot: path.dirname(ansibleDir()), outDir: releasesDir(opts), version: opts.version, log: opts.log });
  opts.log?.(`release ${release.version} (${(release.bytes / 1024 ** 2).toFixed(0)} MiB${release.reused ? ', already built' : ''})`);
  return release;
}

export interface PlaybookResult {
  ok: boolean;
  seconds: number;
  recap: RecapLine[];
  changed: number;
  failures: PlayFailure[];
  log: string;
}

/**
 * The variables a deploy's digest takes, as JSON: all but two. The app settings stay out: each host
 * adds the part it reads (cadfleet_deploy_settings in ansible/playbooks/group_vars), so a changed
 * setting re-runs only the hosts it reaches. A presigned release URL (AWS) stays out: it is signed
 * anew on every run, and would make every deploy configure every host again; the release is named
 * by release_version and release_sha256, which stay in.
 */
export function digestedVars(vars: Record<string, unknown>): string {
  const { cadfleet_service_env_common: _settings, release_url: _url, ...rest } = vars;
  return JSON.stringify(rest);
}

/**
 * What decides a host's configuration in a deploy, as one sha256: every file of the Ansible
 * content (playbooks, group_vars, roles, ansible.cfg), the variables and the inventory. site.yml
 * leaves out a host whose record of the last deploy that completed there holds the same digest
 * (and that runs this release and its services): anything that could change a host changes it.
 */
export function deployDigest(ansibleRoot: string, vars: string, inventory: string): string {
  const hash = createHash('sha256');
  const files = (fs.readdirSync(ansibleRoot, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((f) => !f.split(path.sep).includes('__pycache__') && fs.statSync(path.join(ansibleRoot, f)).isFile())
    .sort();
  for (const file of files) hash.update(`${file}\0`).update(fs.readFileSync(path.join(ansibleRoot, file))).update('\0');
  return hash.update(`vars\0${vars}\0inventory\0${inventory}`).digest('hex');
}

/** Writes the inventory and the variables (0600), runs one playbook, and reads what happened. */
export async function runPlaybook(opts: DeployOptions, release: Release, playbook: string): Promise<PlaybookResult> {
  const started = performance.now();
  const dir = path.join(opts.stateRoot, 'deploy');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const target = targetOf(opts.env);
  // What the digest takes of the inventory: the local one as written, the aws_ec2 configuration file.
  const { file: inventory, text: inventoryText } = target.inventory(opts.env, dir);
  const varsFile = path.join(dir, 'vars.json');
  const vars = await target.playbookVars(opts, release);
  const digest = deployDigest(ansibleDir(), digestedVars(vars), inventoryText);
  fs.writeFileSync(varsFile, `${JSON.stringify({ ...vars, cadfleet_deploy_digest: digest, cadfleet_deploy_full: opts.full ?? false })}\n`, { mode: 0o600 });
  const secrets = target.secrets(opts.stateRoot);
  const log = path.join(dir, `last-${path.basename(playbook, '.yml')}.log`);
  const argv = ansiblePlaybookArgv({ playbook, inventory, varsFile, limit: opts.limit });
  const cwd = ansibleDir();
  const child = execa(argv[0]!, argv.slice(1), {
    cwd,
    env: { ANSIBLE_CONFIG: path.join(cwd, 'ansible.cfg'), ANSIBLE_FORCE_COLOR: '0', ANSIBLE_NOCOLOR: '1', PYTHONUNBUFFERED: '1' },
    stdin: 'ignore',
    all: true,
    // The lines are kept here, redacted; execa's own buffer would hold the secrets a second time.
    buffer: false,
    reject: false,
    // A Ctrl-C reaches ansible-playbook from the terminal; execa's cleanup would send it a SIGTERM on top.
    cleanup: false,
  });
  let output = '';
  // Redacted line by line: a secret is one line, and a line is never split the way chunks are.
  for await (const raw of child.iterable({ from: 'all' })) {
    const line = secrets ? redact(raw, secrets) : raw;
    output += `${line}\n`;
    opts.onLine?.(line);
  }
  const result = await child;
  const code = result.exitCode ?? (result.signal ? 128 : 127);
  if (code === 127 && result.exitCode === undefined) output += `ansible-playbook could not be started: ${result.originalMessage ?? result.shortMessage}\n`;
  fs.writeFileSync(log, output, { mode: 0o600 });
  const recap = playRecap(output);
  const failures = playFailures(output);
  if (code === 127 && !recap.length) failures.push({ host: 'this machine', task: 'start ansible-playbook', message: 'ansible-playbook is not installed: apt-get install ansible (or pipx install ansible)' });
  return { ok: code === 0, seconds: (performance.now() - started) / 1000, recap, changed: recap.reduce((sum, r) => sum + r.changed, 0), failures, log };
}

/** The releases bucket of an environment: the local fleet's on its data host, or the AWS one (the SDK's credential chain). */
export function releaseStoreOf(outputs: Outputs, stateRoot: string): ReleaseStore {
  return targetOf({ name: outputs.environment, outputs }).releaseStore(outputs, stateRoot);
}


/**
 * Builds the release of the working tree, then runs the site playbook with it. A whole-fleet
 * deploy that succeeded then publishes the release and points `releases/current` at it, so a
 * host that boots by itself (scale-out) installs what the others run.
 */
export async function deploy(opts: DeployOptions): Promise<DeployReport> {
  const started = performance.now();
  const release = await releaseFor(opts);
  const result = await runPlaybook(opts, release, 'playbooks/site.yml');
  let pointer: string | null = null;
  const target = targetOf(opts.env);
  if (result.ok && (opts.publish ?? !opts.limit) && target.publishesAfterDeploy) {
    const store = target.releaseStore(opts.env.outputs, opts.stateRoot);
    try {
      const published = await store.publish(release);
      await store.writePointer(release.version);
      pointer = release.version;
      opts.log?.(`release ${release.version} ${published === 'uploaded' ? 'published to' : 'already in'} s3://${opts.env.outputs.buckets.releases}; releases/current names it`);
    } catch (err) {
      result.ok = false;
      result.failures.push({ host: 'this machine', task: 'publish the release to the releases bucket', message: (err as Error).message });
    } finally {
      store.close();
    }
  }
  return { ...result, pointer, release: { version: release.version, sha256: release.sha256, bytes: release.bytes, reused: release.reused }, seconds: (performance.now() - started) / 1000 };
}
