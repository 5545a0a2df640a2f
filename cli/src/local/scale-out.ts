import fs from 'node:fs';
import path from 'node:path';
import { configParameterName } from '../../../stacks/contract';
import { renderUserData } from '../../../stacks/user-data';
import { localReleaseStore } from '../deploy/deploy';
import { S3RVER_KEYS, localServiceEnv } from '../deploy/service-env';
import { localSecretsSchema } from '../deploy/local-secrets';
import { localOutputs } from '../outputs';
import { startStandIn } from './cloud-stand-in';
import { hostNetworkTeardown, sshCommand } from './commands';
import type { Runner } from './exec';
import { parseFleetSpec, planFleet, type HostSpec } from './fleet';
import { bootHost, prepareHost, sshTarget, startHost, stopHost, writeKnownHosts } from './hosts';
import { openFleet, type LocalContext } from './local-fleet';
import { ensureNetwork } from './network';
import { ensureServerCert, pkiPaths } from './pki';
import { READY } from '../upgrade/runner';

/** The roles an auto scaling group runs on AWS (and so the roles a local host can be added to). */
export const SCALABLE_ROLES = ['api', 'worker', 'streamer'] as const;
export type ScalableRole = (typeof SCALABLE_ROLES)[number];

/** EC2's instance metadata address: during a scale-out the fleet's bridge holds it too. */
export const METADATA_ADDRESS = '169.254.169.254';
/** The environment name the scale-out host's settings parameter is named after, as on AWS. */
const ENVIRONMENT = 'local';
const REGION = 'us-east-1';

export interface ScaleOutReport {
  host: { name: string; hostname: string; role: ScalableRole; ip: string };
  release: string;
  /** cloud-init's own verdict (`cloud-init status`). */
  cloudInit: string;
  /** Seconds from the start of the boot to the role's health check answering. */
  seconds: number;
  /** What the metadata and SSM stand-ins answered, by kind. */
  served: Record<string, number>;
  /** The end of the host's boot script log. */
  bootLog: string[];
}

async function ssh(runner: Runner, target: ReturnType<typeof sshTarget>, command: string, timeoutMs = 30_000): Promise<{ code: number; out: string }> {
  const r = await runner.run(sshCommand(target, [command]), { timeoutMs });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * Adds one host of a role to a deployed local fleet the way an auto scaling group adds one on
 * AWS: a fresh host from the base image, booted with the user-data that the stacks render,
 * which cloud-init runs. It reads its settings from (a stand-in of) SSM and the release named
 * by the releases bucket's pointer from the data host's S3, installs it and starts the role.
 * No Ansible runs; the host then registers and takes work like any other.
 */
export async function scaleOut(ctx: LocalContext, name: string, role: ScalableRole, options: { timeoutMs?: number } = {}): Promise<ScaleOutReport> {
  const timeoutMs = options.timeoutMs ?? 240_000;
  const { fleet: before, paths } = openFleet(ctx, name);
  if (!fs.existsSync(path.join(paths.root, 'fleet.json'))) throw new Error(`there is no local fleet ${name}: run cadfleet local up, then cadfleet deploy --env local`);
  const secretsFile = path.join(paths.root, 'secrets.json');
  if (!fs.existsSync(secretsFile)) throw new Error(`fleet ${name} was never deployed: run cadfleet deploy --env local first (a new host installs the release that the deploy published)`);
  const secrets = localSecretsSchema.parse(JSON.parse(fs.readFileSync(secretsFile, 'utf8')));
  const count = before.spec.counts[role];
  if (count >= 9) throw new Error(`role ${role} already has ${count} hosts, the most a local fleet holds`);
  const baseFile = path.join(paths.root, 'base-image');
  const base = fs.readFileSync(baseFile, 'utf8').trim();
  if (!fs.existsSync(path.join(base, 'usr/bin/cloud-init'))) {
    throw new Error(`fleet ${name} runs on a base image without cloud-init (${base}), made before the image recipe had it: destroy and bring up the fleet again to use the current image`);
  }

  const pki = pkiPaths(paths.root);
  const outputs = localOutputs(ENVIRONMENT, before, paths);
  const store = localReleaseStore(outputs, paths.root);
  let version: string | null;
  try {
    version = await store.readPointer();
  } finally {
    store.close();
  }
  if (!version) throw new Error(`no release pointer in s3://${outputs.buckets.releases} on the data host: run cadfleet deploy --env local first`);

  const spec = parseFleetSpec({ ...before.spec, counts: { ...before.spec.counts, [role]: count + 1 } });
  const fleet = planFleet(spec);
  const host = fleet.hosts.find((h) => h.role === role && h.index === count + 1)!;
  ctx.log(`adding ${host.hostname} (${role}, ${host.ip}) through cloud-init with release ${version}`);

  const standInCert = await ensureServerCert(ctx.runner, pki, `${name}-aws-stand-in`, { dns: [], ip: [fleet.gateway] });
  const service = localServiceEnv(outputs, secrets);
  const instances = new Map(fleet.hosts.map((h) => [h.ip, { instanceId: h.hostname, role: h.role }]));
  const standIn = await withMetadataAddress(ctx.runner, fleet.bridge, () =>
    startStandIn({
      instances,
      // The instance role's credentials: what the data host's S3 server accepts.
      credentials: S3RVER_KEYS,
      parameters: new Map([[configParameterName(ENVIRONMENT), `${Object.entries(service).map(([k, v]) => `${k}=${v}`).join('\n')}\n`]]),
      region: REGION,
      metadataAddress: METADATA_ADDRESS,
      ssmAddress: fleet.gateway,
      ssmTls: { cert: fs.readFileSync(standInCert.cert, 'utf8'), key: fs.readFileSync(standInCert.key, 'utf8') },
    }),
  );
  const started = performance.now();
  try {
    const userData = renderUserData({
      role,
      environment: ENVIRONMENT,
      region: REGION,
      releasesBucket: outputs.buckets.releases,
      configParameter: configParameterName(ENVIRONMENT),
      databaseCa: false,
      s3Endpoint: outputs.buckets.endpoint!,
      ssmEndpoint: standIn.ssmUrl,
      retryDelaySeconds: 2,
    });
    // The new host exists from here on: `up`, `down`, `status`, `deploy` and `destroy` know it.
    fs.writeFileSync(path.join(paths.root, 'fleet.json'), `${JSON.stringify(spec, null, 2)}\n`);
    await prepareHost(ctx.runner, fleet, paths, host, base, { userData, caCertificate: fs.readFileSync(pki.caCert, 'utf8') });
    writeKnownHosts(fleet, paths);
    await ensureNetwork(ctx.runner, fleet, [host]);
    await startHost(fleet, paths, host, base);
    await bootHost(ctx.runner, fleet, paths, host, base, ctx.bootTimeoutMs, ctx.log);
    const target = sshTarget(fleet, paths, host);
    ctx.log(`${host.hostname} answers SSH; waiting for cloud-init to run the boot script`);
    const wait = await ssh(ctx.runner, target, 'sudo cloud-init status --wait --long', timeoutMs);
    const cloudInit = /^status:\s*(\S+)/m.exec(wait.out)?.[1] ?? 'unknown';
    const bootLog = (await ssh(ctx.runner, target, 'sudo tail -n 30 /var/log/cadfleet-bootstrap.log')).out.split('\n');
    if (cloudInit !== 'done') {
      throw new Error(`cloud-init on ${host.hostname} ended "${cloudInit}":\n${wait.out.split('\n').slice(-8).map((l) => `    ${l}`).join('\n')}\n  the boot script's log ends:\n${bootLog.slice(-10).map((l) => `    ${l}`).join('\n')}\n  more: cadfleet ssh --env local ${host.name} -- sudo cat /var/log/cloud-init-output.log`);
    }
    await waitHealthy(ctx.runner, target, role, host, Math.max(10_000, timeoutMs - (performance.now() - started)));
    return {
      host: { name: host.name, hostname: host.hostname, role, ip: host.ip },
      release: version,
      cloudInit,
      seconds: (performance.now() - started) / 1000,
      served: Object.fromEntries(standIn.served),
      bootLog,
    };
  } finally {
    await standIn.close();
    await ctx.runner.run(['ip', 'addr', 'del', `${METADATA_ADDRESS}/32`, 'dev', fleet.bridge]);
  }
}

/** Puts the metadata address on the fleet's bridge while `start` runs (a leftover of a crashed run is reused). */
async function withMetadataAddress<T>(runner: Runner, bridge: string, start: () => Promise<T>): Promise<T> {
  const add = await runner.run(['ip', 'addr', 'add', `${METADATA_ADDRESS}/32`, 'dev', bridge]);
  if (add.code !== 0 && !/File exists|already assigned/i.test(add.stderr)) throw new Error(`cannot give bridge ${bridge} the metadata address ${METADATA_ADDRESS}: ${add.stderr.trim()}`);
  try {
    return await start();
  } catch (err) {
    await runner.run(['ip', 'addr', 'del', `${METADATA_ADDRESS}/32`, 'dev', bridge]);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Error(`port 80 of ${METADATA_ADDRESS} is taken on this machine (another scale-out running?): try again when it is done`);
    throw err;
  }
}

async function waitHealthy(runner: Runner, target: ReturnType<typeof sshTarget>, role: ScalableRole, host: HostSpec, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = await ssh(runner, target, `curl -s -o /dev/null -w '%{http_code}' --max-time 3 ${READY[role]}`);
    if (probe.out.endsWith('200')) return;
    if (Date.now() > deadline) {
      const journal = await ssh(runner, target, `sudo journalctl --no-pager -o cat -n 8 -u cadfleet-${role}`);
      throw new Error(`${host.hostname} ran its boot script but cadfleet-${role} is not healthy (${READY[role]} answered ${probe.out.slice(-3) || 'nothing'}); its log ends:\n${journal.out.split('\n').map((l) => `    ${l}`).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}


/**
 * Removes the last host of a role, as an auto scaling group scales in: an orderly shutdown (the
 * role drains on SIGTERM), then its disk and network are deleted. A role keeps one host at least.
 */
export async function scaleIn(ctx: LocalContext, name: string, role: ScalableRole): Promise<{ host: string; stop: string }> {
  const { fleet, paths } = openFleet(ctx, name);
  if (!fs.existsSync(path.join(paths.root, 'fleet.json'))) throw new Error(`there is no local fleet ${name}`);
  const count = fleet.spec.counts[role];
  if (count <= 1) throw new Error(`role ${role} has one host left; a fleet keeps at least one of each role (cadfleet local destroy removes everything)`);
  const host = fleet.hosts.find((h) => h.role === role && h.index === count)!;
  const stop = await stopHost(fleet, paths, host);
  await ctx.runner.run(hostNetworkTeardown(host)[0]!);
  await ctx.runner.run(['ip', 'link', 'delete', host.veth]);
  fs.rmSync(paths.hostDir(host), { recursive: true, force: true });
  const spec = parseFleetSpec({ ...fleet.spec, counts: { ...fleet.spec.counts, [role]: count - 1 } });
  fs.writeFileSync(path.join(paths.root, 'fleet.json'), `${JSON.stringify(spec, null, 2)}\n`);
  writeKnownHosts(planFleet(spec), paths);
  return { host: host.name, stop };
}
