import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { Environment } from '../contract';
import type { Runner } from '../local/exec';
import { ensureCa, ensureServerCert, pkiPaths } from '../local/pki';
import { ansiblePlaybookArgv, inventoryFrom, playFailures, playRecap, type PlayFailure, type RecapLine } from './ansible';
import { ensureLocalSecrets, redact } from './local-secrets';
import { buildRelease, type Release } from '../release/bundle';
import { releaseStore, type ReleaseStore } from '../release/store';
import { S3RVER_KEYS, localServiceEnv } from './service-env';
import type { Outputs } from '../outputs';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { releaseBundleKey } from '../../../stacks/contract';

export interface DeployOptions {
  env: Environment;
  /** The local fleet's state folder (keys, PKI, secrets); deploy files go in `deploy/` there. */
  stateRoot: string;
  runner: Runner;
  limit?: string;
  /** Each line of ansible-playbook's output, secrets redacted. */
  onLine?: (line: string) => void;
  /** Progress of the steps before Ansible (building the release). */
  log?: (line: string) => void;
  /** A release version to build and install; by default the working tree's content hash names it. */
  version?: string;
  /** Where built releases are kept. @default /var/lib/cadfleet/releases as root, else ~/.cache/cadfleet/releases */
  releasesDir?: string;
  /**
   * Publish the release to the local fleet's releases bucket and point `releases/current` at it
   * once the deploy succeeded, for hosts that boot by themselves. @default true without `limit`
   */
  publish?: boolean;
  /** Configure every host in full, even those whose record says this deploy already configured them. */
  full?: boolean;
}

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

export function ansibleDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'ansible', 'playbooks', 'site.yml'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find ansible/playbooks/site.yml above the CLI');
    dir = parent;
  }
  return path.join(dir, 'ansible');
}

/** Everything the playbooks need for the local fleet: secrets, the CA and the data host's certificate. */
async function localVars(opts: DeployOptions, release: Release): Promise<Record<string, unknown>> {
  const secrets = ensureLocalSecrets(opts.stateRoot);
  const pki = pkiPaths(opts.stateRoot);
  await ensureCa(opts.runner, pki, opts.env.name);
  const data = opts.env.hosts.find((h) => h.role === 'data');
  const lb = opts.env.hosts.find((h) => h.role === 'lb');
  if (!data || !lb) throw new Error('the local environment has no data or lb host');
  const cert = await ensureServerCert(opts.runner, pki, data.name, { dns: [data.name, 'data'], ip: [data.address] });
  const lbCert = await ensureServerCert(opts.runner, pki, lb.name, { dns: [lb.name, 'localhost'], ip: [lb.address] });
  const read = (file: string): string => fs.readFileSync(file, 'utf8');
  const serviceEnv = localServiceEnv(opts.env.outputs, secrets);
  const subnet = `${data.address.split('.').slice(0, 3).join('.')}.0/24`;
  return {
    common_ca_certificate: read(pki.caCert),
    common_unattended_upgrades: false,
    // Every port of a host but SSH (and the LB's HTTP/HTTPS) answers the fleet's host range
    // only: <subnet>.0/25 holds the bridge's gateway (.1, this machine, where the operator and
    // the CLI run) and every host address the fleet hands out (.10 up, hosts added later
    // included). Anything else on the fleet's network (or routed to it) gets no answer from the
    // app's ports, PostgreSQL, Redis or the S3 stand-in.
    firewall_trusted_sources: localFirewallSources(data.address),
    postgresql_local_password: secrets.postgresPassword,
    postgresql_local_allowed_cidr: subnet,
    postgresql_local_tls_cert: read(cert.cert),
    postgresql_local_tls_key: read(cert.key),
    redis_local_password: secrets.redisPassword,
    redis_local_tls_cert: read(cert.cert),
    redis_local_tls_key: read(cert.key),
    redis_local_tls_ca: read(pki.caCert),
    s3_local_tls_cert: read(cert.cert),
    s3_local_tls_key: read(cert.key),
    nginx_lb_tls_cert: `${read(lbCert.cert)}${read(pki.caCert)}`,
    nginx_lb_tls_key: read(lbCert.key),
    release_version: release.version,
    release_tarball: release.tarball,
    release_sha256: release.sha256,
    cadfleet_service_env_common: serviceEnv,
  };
}

/** The local fleet's host range, <subnet>.0/25: the bridge's gateway and every host address it hands out. */
export function localFirewallSources(dataAddress: string): string[] {
  return [`${dataAddress.split('.').slice(0, 3).join('.')}.0/25`];
}

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
  const aws = opts.env.outputs.provider === 'aws';
  let inventory: string;
  /** What the digest takes of the inventory: the local one as written, the aws_ec2 configuration file. */
  let inventoryText: string;
  if (aws) {
    if (!opts.env.inventory) throw new Error(`no aws_ec2 inventory for ${opts.env.name}: load the environment with loadEnvironment`);
    inventory = opts.env.inventory;
    inventoryText = fs.existsSync(inventory) ? fs.readFileSync(inventory, 'utf8') : inventory;
  } else {
    inventory = path.join(dir, 'inventory.json');
    inventoryText = `${JSON.stringify(inventoryFrom(opts.env.outputs), null, 2)}\n`;
    fs.writeFileSync(inventory, inventoryText);
  }
  const varsFile = path.join(dir, 'vars.json');
  const vars = aws ? await awsReleaseVars(opts.env.outputs, release) : await localVars(opts, release);
  const digest = deployDigest(ansibleDir(), digestedVars(vars), inventoryText);
  fs.writeFileSync(varsFile, `${JSON.stringify({ ...vars, cadfleet_deploy_digest: digest, cadfleet_deploy_full: opts.full ?? false })}\n`, { mode: 0o600 });
  const secrets = aws ? null : ensureLocalSecrets(opts.stateRoot);
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

/**
 * What release-install.yml needs on AWS: the bundle as a presigned URL of the releases bucket
 * (the upgrade publishes it there first; hosts fetch it through their NAT or the S3 endpoint,
 * not through the Session Manager tunnel) and its sum, which the role checks.
 */
async function awsReleaseVars(outputs: Outputs, release: Release): Promise<Record<string, unknown>> {
  const s3 = new S3Client({ region: outputs.region ?? undefined });
  try {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: outputs.buckets.releases, Key: releaseBundleKey(release.version) }), { expiresIn: 3600 });
    return { release_version: release.version, release_url: url, release_sha256: release.sha256 };
  } finally {
    s3.destroy();
  }
}

/** The releases bucket of an environment: the local fleet's on its data host, or the AWS one (the SDK's credential chain). */
export function releaseStoreOf(outputs: Outputs, stateRoot: string): ReleaseStore {
  if (outputs.provider === 'local') return localReleaseStore(outputs, stateRoot);
  return releaseStore({ bucket: outputs.buckets.releases, region: outputs.region ?? undefined });
}

/**
 * The local fleet's releases bucket, on the data host's S3 server (s3rver's key pair, the fleet
 * CA): where a deploy publishes what it installed, for hosts that boot without a deploy.
 */
export function localReleaseStore(outputs: Outputs, stateRoot: string): ReleaseStore {
  const { buckets } = outputs;
  if (!buckets.endpoint) throw new Error('the local outputs name no S3 endpoint');
  return releaseStore({ bucket: buckets.releases, endpoint: buckets.endpoint, credentials: S3RVER_KEYS, caFile: pkiPaths(stateRoot).caCert });
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
  if (result.ok && (opts.publish ?? !opts.limit) && opts.env.outputs.provider === 'local') {
    const store = localReleaseStore(opts.env.outputs, opts.stateRoot);
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
