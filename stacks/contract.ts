// Names and numbers that other parts of cadfleet rely on (Ansible inventory, the CLI, the
// app, user-data). DESIGN.md's contracts, written down once for the stacks; what a host itself
// runs (units, ports, install paths) is the host contract, ansible/contract/hosts.json.
import { portOf } from '../app/src/shared/host-contract';

/** Every kind of host in a fleet. */
export const HOST_ROLES = ['lb', 'api', 'worker', 'streamer'] as const;
export type HostRole = (typeof HOST_ROLES)[number];

/** Roles that run the app bundle's services in private subnets. */
export const APP_ROLES = ['api', 'worker', 'streamer'] as const;
export type AppRole = (typeof APP_ROLES)[number];

/** Instance tags the Ansible `amazon.aws.aws_ec2` inventory and the CLI key on. */
export const TAG_ENVIRONMENT = 'cadfleet:environment';
export const TAG_ROLE = 'cadfleet:role';

/**
 * The Session Manager document that carries SSH (ssh's ProxyCommand in the CLI's AWS inventory):
 * the deploy role may start sessions with it on this environment's instances.
 */
export const SSH_SESSION_DOCUMENT = 'AWS-StartSSHSession';

/** Ports. `/metrics` is served on each role's app port, on the private network only. */
export const PORTS = {
  ssh: 22,
  http: 80,
  https: 443,
  /** api (HTTP) */
  api: portOf('api'),
  /** streamer (WebSocket) */
  streamer: portOf('streamer'),
  /** worker: /healthz and /metrics only (the Prometheus exporter port) */
  worker: portOf('worker'),
  postgres: 5432,
  redis: 6379,
} as const;

/** Where release bundles and the pointer to the current one live in the releases bucket. */
export const RELEASE_POINTER_KEY = 'releases/current';
export const releaseBundleKey = (version: string): string => `releases/cadfleet-${version}-linux-x64.tar.gz`;
/** `<sha256>  <bundle file name>`, beside the bundle (cli/src/release/bundle.ts writes it). */
/** The deploy lock of an AWS environment: one deploy, upgrade or rollback at a time, whoever runs it (created only if absent). */
export const DEPLOY_LOCK_KEY = 'releases/.deploy-lock.json';
export const releaseSumsKey = (version: string): string => `${releaseBundleKey(version)}.SHA256SUMS`;

/** Login user of Debian's AMIs (and of the image cadfleet builds from them). */
export const SSH_USER = 'admin';

/** SSM parameter with the app's non-secret settings, as env-file lines. */
export const configParameterName = (environment: string): string => `/cadfleet/${environment}/app.env`;
/** Where images/aws/cadfleet-host.pkr.hcl publishes the id of the host AMI it built for an environment. */
export const hostImageParameterName = (environment: string): string => `/cadfleet/${environment}/host-ami`;
/**
 * The AMI id the stack pinned when it first looked up Debian's newest image (no ami_id, no
 * host image): launch templates read it from here, so a later plan does not move the fleet to
 * a newer image by itself (docs/aws.md#the-image-hosts-run).
 */
export const pinnedImageParameterName = (environment: string): string => `/cadfleet/${environment}/pinned-ami`;

/**
 * Secrets Manager secret holding the HMAC key of stream tokens, which the api and every streamer
 * share. The stacks create it without a value (nothing of it enters the Terraform state); the
 * first api or streamer host that boots generates one (docs/aws.md#the-stream-token-secret).
 */
export const streamSecretName = (environment: string): string => `cadfleet/${environment}/stream-token`;
/** Roles that read the stream-token secret: the api signs tokens, streamers check them. */
export const STREAM_SECRET_ROLES: readonly HostRole[] = ['api', 'streamer'];
/**
 * ClientRequestToken of the secret's first version. Hosts that boot at once and each find no
 * value all put theirs under this token: Secrets Manager keeps the first and refuses the others
 * (one value wins, and every host reads it back).
 */
export const STREAM_SECRET_FIRST_VERSION = 'cadfleet-stream-token-first-version-0001';

/**
 * Seconds a terminating host may take to finish (the termination hook's timeout): on a worker, the
 * longest conversion (300 s default timeout) and 30 s more is what it waits for before it hands
 * jobs back (TimeoutStopSec 360 s, ansible group_vars), well within 900 s; a streamer tells its
 * viewers to resume elsewhere within 30 s. Each host completes the action itself once drained
 * (ansible/roles/asg_lifecycle); the timeout only ends a host that never reports back.
 */
export const DRAIN_SECONDS: Partial<Record<AppRole, number>> = { worker: 900, streamer: 600 };
/** The name of the termination lifecycle hook of the groups that drain (constructs/app-fleet.ts). */
export const DRAIN_HOOK = 'drain';

/**
 * Host variables of the lifecycle watcher (ansible/roles/asg_lifecycle) for a host of `role` in
 * the auto scaling group `group`: the group, and the termination hook it completes (none for a
 * role that does not drain). The LB runs no watcher.
 */
export function lifecycleHostVars(role: HostRole, group: string): Record<string, string> {
  if (role === 'lb') return {};
  return { asg_lifecycle_group: group, asg_lifecycle_hook: DRAIN_SECONDS[role] === undefined ? '' : DRAIN_HOOK };
}
