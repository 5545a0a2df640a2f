// User-data of every cadfleet host booted the AWS way: an instance an auto scaling group
// launches, and every host of `cadfleet local up --boot cloud-init` (the same text, other values).
//
// One configuration path: the boot program reads the environment's settings (one SSM
// parameter), downloads the release the releases bucket's pointer names, and runs that release's
// own playbook, ansible/playbooks/host.yml, on the host itself: the roles and variables that
// `cadfleet deploy` pushes to the local fleet with site.yml. What differs between environments
// are values (`hostVars`, endpoints), never a second copy of the configuration.
//
// cloud-init runs the user-data once; the user-data only installs the boot program and its
// systemd unit, which runs until it succeeds once: a host that booted before its policies, its
// settings, its route out or the first release existed keeps trying (a line in the log each
// time) and serves as soon as they do.
//
// It holds no secrets: hosts read the database password from Secrets Manager and sign in to
// Redis with IAM, at run time, with their instance role; the LB's certificate is a SecureString.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RELEASE_POINTER_KEY, STREAM_SECRET_FIRST_VERSION, STREAM_SECRET_ROLES, releaseBundleKey, releaseSumsKey, type HostRole } from './contract';
import { must } from './validate';

export interface UserDataOptions {
  /** The host's role: the inventory group host.yml configures it as. */
  readonly role: HostRole;
  readonly environment: string;
  readonly region: string;
  /** Bucket holding `releases/current` and the bundles. */
  readonly releasesBucket: string;
  /** SSM parameter whose value (env-file lines) is the settings every app host shares. @default no parameter */
  readonly configParameter?: string;
  /** Elastic IP allocation the host claims at boot (the load balancer). @default none */
  readonly elasticIpAllocationId?: string;
  /**
   * SSM SecureString with the LB's certificate chain and private key (PEM, one after the
   * other). A name or a Terraform token; empty at run time: host.yml makes a self-signed one.
   * @default none
   */
  readonly tlsCertificateParameter?: string;
  /**
   * Install and start the SSM agent when the image lacks it (Debian's AMIs do). A boolean or a
   * Terraform token that renders as `true`/`false`. @default false
   */
  readonly installSsmAgent?: boolean | string;
  /** Download the regional RDS CA bundle for `verify-full` TLS to PostgreSQL. @default true for api, worker and streamer */
  readonly databaseCa?: boolean;
  /**
   * Variables of host.yml that differ between environments: `cadfleet_provider`,
   * `firewall_trusted_sources`, `common_unattended_upgrades`, `nginx_lb_server_name`, ...
   * JSON values; strings may hold Terraform tokens. @default {}
   */
  readonly hostVars?: Readonly<Record<string, unknown>>;
  /**
   * Secrets Manager secret (name, ARN or Terraform token) with the stream tokens' HMAC key; read
   * by api and streamer hosts only, and given a value by the first of them that finds none.
   * @default none
   */
  readonly streamTokenSecret?: string;
  /** Endpoint of the Secrets Manager API (the local fleet's stand-in). @default AWS Secrets Manager */
  readonly secretsManagerEndpoint?: string;
  /** Endpoint of an S3-compatible server (the local fleet); path-style URLs. @default AWS S3 */
  readonly s3Endpoint?: string;
  /** Endpoint of the SSM API (the local fleet's stand-in). @default AWS SSM */
  readonly ssmEndpoint?: string;
  /** Directory prefix for every path the scripts write; only tests set it. @default "" (the real root) */
  readonly root?: string;
  /** Seconds between retries of a network step within one run (RETRY_TRIES tries, growing delay). @default 5 */
  readonly retryDelaySeconds?: number;
  /** Seconds systemd waits before it runs a failed boot again. @default 20 */
  readonly restartSeconds?: number;
  /**
   * After this many seconds of failed boots (waiting for the first release excepted), the host
   * reports itself unhealthy to its auto scaling group, which replaces it. 0: never (the local
   * fleet, which has no group). @default 1800
   */
  readonly unhealthyAfterSeconds?: number;
}

/** Single-quotes a value for the shell. Terraform tokens contain no quote and pass unchanged. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Where the boot program keeps its state; `done` in it means the host is configured. */
export const BOOT_STATE_DIR = '/var/lib/cadfleet-boot';
export const BOOT_PROGRAM = '/usr/local/sbin/cadfleet-boot';
export const BOOT_UNIT = 'cadfleet-boot.service';
export const BOOT_LOG = '/var/log/cadfleet-bootstrap.log';
/** How many times the boot program tries a network step within one run before it gives up until systemd runs it again. */
export const RETRY_TRIES = 6;

function validateOptions(o: UserDataOptions): void {
  must(!/[\n\r]/.test(o.environment), 'environment', 'be one line', o.environment);
  for (const [name, value] of [['retryDelaySeconds', o.retryDelaySeconds], ['restartSeconds', o.restartSeconds], ['unhealthyAfterSeconds', o.unhealthyAfterSeconds]] as const) {
    if (value !== undefined) must(Number.isInteger(value) && value >= 0, name, 'be a whole number of seconds', value);
  }
  if (o.root !== undefined) must(o.root === '' || (o.root.startsWith('/') && !o.root.endsWith('/')), 'root', 'be empty or an absolute path without a trailing slash', o.root);
}

/**
 * A file of the boot program without its comment lines and runs of blank lines: the comments are
 * for the reader of stacks/boot/, and EC2 takes 16 KB of user-data (the longest rendering is
 * measured in test/stacks/user-data.test.ts).
 */
export function withoutComments(text: string): string {
  return text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n');
}

/**
 * The files of the boot program (stacks/boot/, see its README.md), read where this module is:
 * beside it in the repository, or from the CLI's bundle in dist/.
 */
const bootFiles = new Map<string, string>();
function bootFile(name: string): string {
  const known = bootFiles.get(name);
  if (known !== undefined) return known;
  for (const base of ['./boot/', '../stacks/boot/']) {
    const file = fileURLToPath(new URL(base + name, import.meta.url));
    if (fs.existsSync(file)) {
      const text = withoutComments(fs.readFileSync(file, 'utf8'));
      bootFiles.set(name, text);
      return text;
    }
  }
  throw new Error(`stacks/boot/${name} is missing: the boot program is rendered from the files of stacks/boot/`);
}

/**
 * The boot program, /usr/local/sbin/cadfleet-boot: the values as single-quoted `readonly` lines,
 * then the files of stacks/boot/. Neither the values' names nor the files use `${` or `%{`, so
 * Terraform's template syntax cannot mistake any of it for an interpolation (values may be
 * Terraform tokens, resolved at apply). Exit 75 means "not yet" (no release, no settings):
 * systemd runs it again.
 */
export function renderBootScript(o: UserDataOptions): string {
  validateOptions(o);
  // Only api and streamer hosts carry the secret's calls (as only the LB carries the Elastic IP's),
  // so the program's AWS calls are exactly what its role's policy must grant (test/stacks/plan.test.ts).
  const readsStreamSecret = o.streamTokenSecret !== undefined && o.streamTokenSecret !== '' && STREAM_SECRET_ROLES.includes(o.role);
  const claimsElasticIp = o.elasticIpAllocationId !== undefined;
  // The release's keys around its version (cli/src/release/bundle.ts names them).
  const [bundleHead, bundleTail] = releaseBundleKey('\0').split('\0') as [string, string];
  const sumsTail = releaseSumsKey('\0').slice(releaseBundleKey('\0').length);
  const values: Array<[string, string]> = [
    ['ROLE', o.role],
    ['ENVIRONMENT', o.environment],
    ['REGION', o.region],
    ['RELEASES_BUCKET', o.releasesBucket],
    ['POINTER_KEY', RELEASE_POINTER_KEY],
    ['BUNDLE_KEY_HEAD', bundleHead],
    ['BUNDLE_KEY_TAIL', bundleTail],
    ['SUMS_KEY_TAIL', sumsTail],
    ['CONFIG_PARAMETER', o.configParameter ?? ''],
    ...(claimsElasticIp ? ([['ELASTIC_IP_ALLOCATION', o.elasticIpAllocationId!]] as Array<[string, string]>) : []),
    ['TLS_PARAMETER', o.role === 'lb' ? (o.tlsCertificateParameter ?? '') : ''],
    ...(readsStreamSecret
      ? ([['STREAM_SECRET', o.streamTokenSecret!], ['STREAM_SECRET_FIRST_VERSION', STREAM_SECRET_FIRST_VERSION], ['SECRETS_ENDPOINT', o.secretsManagerEndpoint ?? '']] as Array<[string, string]>)
      : []),
    ['INSTALL_SSM_AGENT', String(o.installSsmAgent ?? false)],
    ['DATABASE_CA', String(o.databaseCa ?? o.role !== 'lb')],
    ['S3_ENDPOINT', o.s3Endpoint ?? ''],
    ['SSM_ENDPOINT', o.ssmEndpoint ?? ''],
    ['ROOT', o.root ?? ''],
    ['RETRY_TRIES', String(RETRY_TRIES)],
    ['RETRY_DELAY', String(o.retryDelaySeconds ?? 5)],
    ['RESTART_SECONDS', String(o.restartSeconds ?? 20)],
    ['UNHEALTHY_AFTER', String(o.unhealthyAfterSeconds ?? 1800)],
    ['HOST_VARS', JSON.stringify(o.hostVars ?? {})],
  ];
  const hostVarsPy = bootFile('host-vars.py');
  return [
    `#!/bin/bash
# cadfleet boot of a ${o.role} host (rendered by stacks/user-data.ts from stacks/boot/; no secrets
# here): reads the settings, installs the release s3://<releases bucket>/${RELEASE_POINTER_KEY} names
# and configures the host with that release's ansible/playbooks/host.yml. Run by ${BOOT_UNIT}
# until it succeeds.
set -euo pipefail
umask 022

${values.map(([k, v]) => `readonly ${k}=${shellQuote(v)}`).join('\n')}
readonly STATE="$ROOT${BOOT_STATE_DIR}"
readonly LOG_FILE="$ROOT${BOOT_LOG}"

`,
    bootFile('lib.sh'),
    claimsElasticIp ? `\n${bootFile('elastic-ip.sh')}` : '',
    readsStreamSecret ? `\n${bootFile('stream-secret.sh')}` : '',
    `\n${bootFile('release.sh')}`,
    `\nwrite_inventory_and_vars() {
  python3 - "$STATE" "$ROLE" "$INSTANCE" "$ADDRESS" "$VERSION" "$SHA256" "$BUNDLE" "$HOST_VARS" <<'PY'
${hostVarsPy}PY
}

`,
    bootFile('main.sh'),
  ].join('');
}

/** The unit that runs the boot program until it succeeds once; `done` keeps it from running again. */
export function renderBootUnit(o: Pick<UserDataOptions, 'restartSeconds'> = {}): string {
  return `# Written by the cadfleet user-data (stacks/user-data.ts).
[Unit]
Description=cadfleet boot: install the current release and configure this host
Wants=network-online.target
After=network-online.target
ConditionPathExists=!${BOOT_STATE_DIR}/done
# Keep trying for as long as it takes (a fresh account's IAM, the first release).
StartLimitIntervalSec=0

[Service]
Type=oneshot
ExecStart=${BOOT_PROGRAM}
Restart=on-failure
RestartSec=${o.restartSeconds ?? 20}
TimeoutStartSec=30min

[Install]
WantedBy=multi-user.target
`;
}

/**
 * The user-data cloud-init runs once: it installs the boot program and its unit, and starts the
 * unit without waiting for it (cloud-init's own boot stage is over before the host is configured).
 */
export function renderUserData(o: UserDataOptions): string {
  const program = renderBootScript(o);
  const root = o.root ?? '';
  return `#!/bin/bash
# cadfleet user-data of a ${o.role} host (stacks/user-data.ts): installs ${BOOT_PROGRAM} and
# ${BOOT_UNIT}, which configures the host until it succeeds once. No secrets here.
set -euo pipefail
readonly ROOT=${shellQuote(root)}
mkdir -p "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system"
cat >"$ROOT${BOOT_PROGRAM}" <<'CADFLEET_BOOT_PROGRAM'
${program}CADFLEET_BOOT_PROGRAM
chmod 0755 "$ROOT${BOOT_PROGRAM}"
cat >"$ROOT/etc/systemd/system/${BOOT_UNIT}" <<'CADFLEET_BOOT_UNIT'
${renderBootUnit(o)}CADFLEET_BOOT_UNIT
systemctl daemon-reload
systemctl enable ${BOOT_UNIT}
systemctl start --no-block ${BOOT_UNIT}
`;
}
