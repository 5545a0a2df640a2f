import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { STREAM_SECRET_ROLES, configParameterName, lifecycleHostVars, streamSecretName, type HostRole } from '../../../stacks/contract';
import { BOOT_LOG, BOOT_STATE_DIR, BOOT_UNIT, RETRY_TRIES, renderUserData } from '../../../stacks/user-data';
import { deploy, localFirewallSources, localReleaseStore, type DeployOptions } from '../deploy/deploy';
import { loadEnvironment } from '../environment';
import { localSecretsSchema } from '../deploy/local-secrets';
import { S3RVER_KEYS, localServiceEnv } from '../deploy/service-env';
import { localOutputs, type Outputs } from '../outputs';
import { READY } from '../upgrade/runner';
import { startStandIn, type StandIn } from './cloud-stand-in';
import { hostNetworkTeardown, sshCommand } from './commands';
import type { Runner } from './exec';
import { LOCAL_ENVIRONMENT, type Fleet, type FleetSpec, type HostSpec } from './fleet';
import { bootHost, type FleetPaths, prepareHost, sshTarget, startHost, stopHost, writeKnownHosts } from './hosts';
import { openFleet, up, type LocalContext } from './local-fleet';
import { ensureNetwork } from './network';
import { ensureServerCert, pkiPaths } from './pki';

/** EC2's instance metadata address: while hosts boot the AWS way, the fleet's bridge holds it too. */
export const METADATA_ADDRESS = '169.254.169.254';
const REGION = 'us-east-1';
/** Where the stand-in serves the LB's certificate chain and key, as `tls_certificate_parameter` names one on AWS. */
export const LOCAL_TLS_PARAMETER = `/cadfleet/${LOCAL_ENVIRONMENT}/lb/tls.pem`;

/**
 * The port of the stand-in's AWS APIs (SSM, Secrets Manager, Auto Scaling) on the fleet's gateway:
 * fixed, because hosts keep it (the lifecycle watcher calls Auto Scaling there long after boot).
 */
export const LOCAL_AWS_API_PORT = 4566;
/** The name of a local role's "auto scaling group" (the stacks name theirs cadfleet-<env>-<role>). */
export const localGroupName = (role: HostRole): string => `${LOCAL_ENVIRONMENT}-${role}`;
/** Seconds a local host's /healthz may fail before it reports itself unhealthy (600 on AWS). */
export const LOCAL_UNHEALTHY_AFTER = 20;

/** A test ACME server for the LB (pebble): the rehearsal of `domain_name` without a certificate parameter. */
export interface LocalAcme {
  domain: string;
  /** The ACME directory URL. */
  server: string;
  /** PEM of the CA of the server's own HTTPS certificate. */
  serverCa?: string;
}

export interface BootedHost {
  name: string;
  hostname: string;
  role: HostRole;
  ip: string;
  /** Seconds from the start of the boot to the role's health check answering. */
  seconds: number;
  /** The boot program's log lines (its last 30). */
  bootLog: string[];
}

export interface AwsWayBoot {
  release: string;
  hosts: BootedHost[];
  /** What the metadata and SSM stand-ins answered, by kind. */
  served: Record<string, number>;
}

/**
 * The user-data the stacks render for a host of the role (stacks/user-data.ts), with the local
 * fleet's values where AWS has its own: the data host's S3, the stand-in's SSM, the fleet's
 * range for the firewall, the fleet CA's certificate for the LB, no RDS CA, no package egress.
 */
export function localUserData(role: HostRole, outputs: Outputs, ssmEndpoint: string, acme?: LocalAcme): string {
  const data = outputs.hosts.data?.[0];
  if (!data || !outputs.buckets.endpoint) throw new Error('the local outputs name no data host');
  return renderUserData({
    role,
    environment: LOCAL_ENVIRONMENT,
    region: REGION,
    releasesBucket: outputs.buckets.releases,
    configParameter: configParameterName(LOCAL_ENVIRONMENT),
    // With ACME, no certificate is given: the LB gets its own, as with domain_name on AWS.
    tlsCertificateParameter: role === 'lb' && !acme ? LOCAL_TLS_PARAMETER : undefined,
    databaseCa: false,
    // As on AWS, api and streamer hosts read the stream-token secret from Secrets Manager (the stand-in).
    streamTokenSecret: streamSecretName(LOCAL_ENVIRONMENT),
    s3Endpoint: outputs.buckets.endpoint,
    ssmEndpoint,
    secretsManagerEndpoint: ssmEndpoint,
    hostVars: {
      cadfleet_provider: 'local',
      firewall_trusted_sources: localFirewallSources(data.address),
      common_unattended_upgrades: false,
      nginx_lb_server_name: acme?.domain ?? outputs.lb.address,
      // The lifecycle watcher (ansible/roles/asg_lifecycle), as the stacks set it, calling the stand-in.
      ...lifecycleHostVars(role, localGroupName(role)),
      ...(role === 'lb' ? {} : { asg_lifecycle_autoscaling_endpoint: ssmEndpoint, asg_lifecycle_unhealthy_after: LOCAL_UNHEALTHY_AFTER }),
      ...(acme ? { nginx_lb_acme_domain: acme.domain, nginx_lb_acme_server: acme.server, nginx_lb_acme_server_ca: acme.serverCa ?? '' } : {}),
    },
    retryDelaySeconds: 2,
    restartSeconds: 5,
    // No auto scaling group to report to: a host whose boot keeps failing says so in its log.
    unhealthyAfterSeconds: 0,
  });
}

async function ssh(runner: Runner, target: ReturnType<typeof sshTarget>, command: string, timeoutMs = 30_000): Promise<{ code: number; out: string }> {
  const r = await runner.run(sshCommand(target, [command]), { timeoutMs });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * Boots hosts of a deployed local fleet the way an auto scaling group boots them on AWS: each a
 * fresh host from the base image with the user-data the stacks render, which cloud-init runs.
 * The boot program reads its settings and certificate from (a stand-in of) SSM and the release
 * that the releases bucket's pointer names from the data host's S3, and configures the host with
 * that release's host.yml. No playbook runs from this machine. `fleet` is the fleet as it will
 * be (the hosts included); their layers must not exist yet.
 */
/**
 * How long hosts booting the AWS way at once may take: 300 s while each has a core of this
 * machine, 90 s more for each host beyond. They share its CPUs, and a host configures itself
 * with about 45 CPU s of its own (the boot program's AWS CLI calls and host.yml): six at once on
 * two cores took 290 s on a slow day.
 */
export const awsWayTimeoutMs = (hosts: number, cores = os.availableParallelism()): number => 300_000 + Math.max(0, hosts - cores) * 90_000;

export async function bootAwsWay(
  ctx: LocalContext,
  fleet: Fleet,
  paths: FleetPaths,
  hosts: HostSpec[],
  options: { timeoutMs?: number; acme?: LocalAcme; /** The settings parameter exists only this long after the start, and not before one boot run gave up on it (a fresh account). */ settingsAfterMs?: number } = {},
): Promise<AwsWayBoot> {
  const timeoutMs = options.timeoutMs ?? awsWayTimeoutMs(hosts.length);
  const name = fleet.spec.name;
  if (!fs.existsSync(path.join(paths.root, 'secrets.json'))) throw new Error(`fleet ${name} was never deployed: run cadfleet deploy --env local first (hosts booted the AWS way install the release that a deploy published)`);
  const base = fs.readFileSync(path.join(paths.root, 'base-image'), 'utf8').trim();
  if (!fs.existsSync(path.join(base, 'usr/bin/cloud-init')) || !fs.existsSync(path.join(base, 'usr/bin/ansible-playbook'))) {
    throw new Error(`fleet ${name} runs on a base image without cloud-init or Ansible (${base}), made before the image recipe had them: destroy and bring up the fleet again to use the current image`);
  }
  const outputs = localOutputs(LOCAL_ENVIRONMENT, fleet, paths);
  const store = localReleaseStore(outputs, paths.root);
  let version: string | null;
  try {
    version = await store.readPointer();
  } finally {
    store.close();
  }
  if (!version) throw new Error(`no release pointer in s3://${outputs.buckets.releases} on the data host: run cadfleet deploy --env local first`);

  const pki = pkiPaths(paths.root);
  const lb = fleet.hosts.find((h) => h.role === 'lb')!;
  // The certificate cadfleet deploy gives the LB (the same name and subject), so both paths serve one.
  const lbCert = await ensureServerCert(ctx.runner, pki, lb.hostname, { dns: [lb.hostname, 'localhost'], ip: [lb.ip] });
  const read = (file: string): string => fs.readFileSync(file, 'utf8');
  const standIn = await startLocalAws(ctx, fleet, paths, { [LOCAL_TLS_PARAMETER]: `${read(lbCert.cert)}${read(pki.caCert)}${read(lbCert.key)}` }, options.settingsAfterMs);
  try {
    const caCertificate = read(pki.caCert);
    for (const host of hosts) {
      await prepareHost(ctx.runner, fleet, paths, host, base, { userData: localUserData(host.role as HostRole, outputs, standIn.ssmUrl, options.acme), caCertificate });
    }
    writeKnownHosts(fleet, paths);
    await ensureNetwork(ctx.runner, fleet, hosts);
    const booted = await Promise.all(
      hosts.map(async (host): Promise<BootedHost> => {
        const started = performance.now();
        await startHost(fleet, paths, host, base);
        await bootHost(ctx.runner, fleet, paths, host, base, ctx.bootTimeoutMs, ctx.log);
        ctx.log(`${host.hostname} (${host.role}, ${host.ip}) answers SSH; its boot program configures it with release ${version}`);
        const bootLog = await waitConfigured(ctx.runner, sshTarget(fleet, paths, host), host, Math.max(10_000, timeoutMs - (performance.now() - started)));
        const seconds = (performance.now() - started) / 1000;
        ctx.log(`${host.hostname} is configured and healthy after ${seconds.toFixed(1)} s`);
        return { name: host.name, hostname: host.hostname, role: host.role as HostRole, ip: host.ip, seconds, bootLog };
      }),
    );
    return { release: version, hosts: booted, served: Object.fromEntries(standIn.served) };
  } finally {
    await standIn.close();
  }
}

/**
 * Starts what AWS answers a host of the fleet (cloud-stand-in.ts) on the fleet's network: the
 * metadata service at 169.254.169.254 (the bridge holds the address meanwhile) and SSM, Secrets
 * Manager and Auto Scaling on the gateway's LOCAL_AWS_API_PORT. Its parameters: the settings
 * every host shares, as the stacks' parameter holds them (no stream-token secret), and `extra`
 * ones. `close()` also takes the metadata address off the bridge.
 */
export async function startLocalAws(ctx: LocalContext, fleet: Fleet, paths: FleetPaths, extra: Record<string, string> = {}, settingsAfterMs = 0): Promise<StandIn> {
  const secretsFile = path.join(paths.root, 'secrets.json');
  if (!fs.existsSync(secretsFile)) throw new Error(`fleet ${fleet.spec.name} was never deployed: run cadfleet deploy --env local first`);
  const secrets = localSecretsSchema.parse(JSON.parse(fs.readFileSync(secretsFile, 'utf8')));
  const outputs = localOutputs(LOCAL_ENVIRONMENT, fleet, paths);
  const pki = pkiPaths(paths.root);
  const standInCert = await ensureServerCert(ctx.runner, pki, `${fleet.spec.name}-aws-stand-in`, { dns: [], ip: [fleet.gateway] });
  const read = (file: string): string => fs.readFileSync(file, 'utf8');
  // The settings parameter holds what the stacks' one holds: no stream-token secret, which api and
  // streamer hosts read from "Secrets Manager". Its value is the fleet's own, so that hosts deployed
  // by cadfleet deploy and hosts booted this way check each other's tokens.
  const { CADFLEET_STREAM_TOKEN_SECRET: _streamSecret, ...sharedSettings } = localServiceEnv(outputs, secrets);
  const settings = Object.entries(sharedSettings).map(([k, v]) => `${k}=${v}`).join('\n');
  const standIn = await withMetadataAddress(ctx.runner, fleet.bridge, () =>
    startStandIn({
      instances: new Map(fleet.hosts.map((h) => [h.ip, { instanceId: h.hostname, role: h.role }])),
      // The instance role's credentials: what the data host's S3 server accepts.
      credentials: S3RVER_KEYS,
      parameters: new Map([[configParameterName(LOCAL_ENVIRONMENT), `${settings}\n`], ...Object.entries(extra)]),
      // Late settings are refused until the time has come and a whole boot run has given up on
      // them (its RETRY_TRIES tries), so that the rehearsal always goes through systemd's restart.
      parametersAppear: settingsAfterMs > 0 ? new Map([[configParameterName(LOCAL_ENVIRONMENT), { at: Date.now() + settingsAfterMs, afterRefusals: RETRY_TRIES }]]) : undefined,
      secrets: new Map([[streamSecretName(LOCAL_ENVIRONMENT), { roles: STREAM_SECRET_ROLES, current: secrets.streamTokenSecret }]]),
      region: REGION,
      metadataAddress: METADATA_ADDRESS,
      ssmAddress: fleet.gateway,
      ssmPort: LOCAL_AWS_API_PORT,
      ssmTls: { cert: read(standInCert.cert), key: read(standInCert.key) },
    }),
  );
  return {
    ...standIn,
    close: async () => {
      await standIn.close();
      await ctx.runner.run(['ip', 'addr', 'del', `${METADATA_ADDRESS}/32`, 'dev', fleet.bridge]);
    },
  };
}

/** Puts the metadata address on the fleet's bridge while `start` runs (a leftover of a crashed run is reused). */
async function withMetadataAddress<T>(runner: Runner, bridge: string, start: () => Promise<T>): Promise<T> {
  const add = await runner.run(['ip', 'addr', 'add', `${METADATA_ADDRESS}/32`, 'dev', bridge]);
  if (add.code !== 0 && !/File exists|already assigned/i.test(add.stderr)) throw new Error(`cannot give bridge ${bridge} the metadata address ${METADATA_ADDRESS}: ${add.stderr.trim()}`);
  try {
    return await start();
  } catch (err) {
    await runner.run(['ip', 'addr', 'del', `${METADATA_ADDRESS}/32`, 'dev', bridge]);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(`port 80 of ${METADATA_ADDRESS} or ${LOCAL_AWS_API_PORT} of ${bridge}'s gateway is taken on this machine (another boot the AWS way or scale-in running?): try again when it is done`);
    }
    throw err;
  }
}

/** Waits until the boot program marked the host done and its role answers its health check; returns the boot log's end. */
async function waitConfigured(runner: Runner, target: ReturnType<typeof sshTarget>, host: HostSpec, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const ready = READY[host.role];
  for (;;) {
    // The log reaches its file through tee, after the marker may exist: wait for both.
    const probe = await ssh(runner, target, `sudo test -f ${BOOT_STATE_DIR}/done && sudo grep -q -F ' cadfleet-bootstrap: done: ' ${BOOT_LOG} && curl -s -o /dev/null -w '%{http_code}' --max-time 3 ${ready}`);
    // The boot program's own lines (Ansible's output, between them, is in the same log).
    if (probe.code === 0 && probe.out.endsWith('200')) return (await ssh(runner, target, `sudo grep -F ' cadfleet-bootstrap: ' ${BOOT_LOG} | tail -n 30`)).out.split('\n');
    if (Date.now() > deadline) {
      const bootLog = await ssh(runner, target, `sudo tail -n 12 ${BOOT_LOG}; sudo systemctl --no-pager status ${BOOT_UNIT} | tail -n 3`);
      throw new Error(
        `${host.hostname} is not configured and healthy within ${Math.round(timeoutMs / 1000)} s (${ready} answered ${probe.out.slice(-3) || 'nothing'}); its boot log ends:\n` +
          `${bootLog.out.split('\n').map((l) => `    ${l}`).join('\n')}\n  more: cadfleet ssh --env local ${host.name} -- sudo journalctl -u ${BOOT_UNIT}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export interface UpAwsWayReport {
  /** The data host's deploy (the local stand-in of RDS, ElastiCache and S3), pushed with site.yml. */
  data: { version: string; changed: number; seconds: number };
  boot: AwsWayBoot | null;
  /** Hosts that were there already and were left alone. */
  alreadyThere: string[];
  seconds: number;
}

/**
 * `cadfleet local up --boot cloud-init`: the fleet as AWS runs it. The data host, which plays RDS,
 * ElastiCache and S3, is deployed with site.yml (limited to it) and receives the release in its
 * S3; every other host that does not exist yet boots the AWS way (bootAwsWay). Hosts already
 * there are left alone, so running it again changes nothing.
 */
export async function upAwsWay(ctx: LocalContext, name: string, overrides: Partial<FleetSpec>, deployOptions: Omit<DeployOptions, 'env' | 'stateRoot' | 'runner' | 'limit' | 'publish'>): Promise<UpAwsWayReport> {
  const started = performance.now();
  const { fleet: planned, paths } = openFleet(ctx, name, overrides);
  const made = (h: HostSpec): boolean => fs.existsSync(path.join(paths.hostDir(h), 'identity'));
  const missing = planned.hosts.filter((h) => h.role !== 'data' && !made(h));
  const alreadyThere = planned.hosts.filter((h) => h.role !== 'data' && made(h)).map((h) => h.name);
  const { fleet } = await up(ctx, name, overrides, (h) => h.role === 'data' || made(h));
  const env = await loadEnvironment(LOCAL_ENVIRONMENT);
  ctx.log('deploying the data host (the local stand-in of RDS, ElastiCache and S3) and publishing the release');
  const data = await deploy({ ...deployOptions, env, stateRoot: paths.root, runner: ctx.runner, limit: 'data', publish: true });
  if (!data.ok) {
    const f = data.failures[0];
    throw new Error(`the data host's deploy failed${f ? ` on ${f.host}, task "${f.task}": ${f.message}` : ''}; the whole Ansible output is in ${data.log}`);
  }
  const boot = missing.length ? await bootAwsWay(ctx, fleet, paths, missing) : null;
  return { data: { version: data.release.version, changed: data.changed, seconds: data.seconds }, boot, alreadyThere, seconds: (performance.now() - started) / 1000 };
}

/**
 * `cadfleet local replace`: hosts replaced as an auto scaling group replaces an instance: the
 * old one is stopped (its services drain on SIGTERM) and deleted with its disk, and a fresh one
 * with the same name and address boots the AWS way. Not the data host: it holds the state.
 */
export async function replaceHosts(ctx: LocalContext, name: string, hosts: HostSpec[], options: { timeoutMs?: number; acme?: LocalAcme } = {}): Promise<AwsWayBoot> {
  const { fleet, paths } = openFleet(ctx, name);
  if (!fs.existsSync(path.join(paths.root, 'fleet.json'))) throw new Error(`there is no local fleet ${name}: run cadfleet local up --boot cloud-init`);
  const data = hosts.find((h) => h.role === 'data');
  if (data) throw new Error(`${data.name} is the data host (the local RDS, ElastiCache and S3): it is not replaced; cadfleet local down/up restarts it with its disk`);
  await Promise.all(
    hosts.map(async (host) => {
      await stopHost(fleet, paths, host);
      await ctx.runner.run(hostNetworkTeardown(host)[0]!);
      await ctx.runner.run(['ip', 'link', 'delete', host.veth]);
      fs.rmSync(paths.hostDir(host), { recursive: true, force: true });
      ctx.log(`${host.hostname} stopped and deleted`);
    }),
  );
  return bootAwsWay(ctx, fleet, paths, hosts, options);
}
