import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { systemRunner } from '../local/exec';
import { selectHosts } from '../local/fleet';
import { defaultContext, destroy, down, openFleet, startHosts, status, up, type LocalContext } from '../local/local-fleet';
import { localFleetName } from '../environment';
import path from 'node:path';
import { SCALABLE_ROLES, scaleIn, scaleOut, type ScalableRole } from '../local/scale-out';
import { replaceHosts, upAwsWay } from '../local/cloud-boot';
import { acquireLock, appendAudit } from '../upgrade/lock';
import { targetNamed } from '../target';

const log = (line: string): void => void process.stderr.write(`${line}\n`);

async function guarded(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    process.stderr.write(`cadfleet local: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

export function localCommand(makeContext: () => LocalContext = () => defaultContext(systemRunner, log)): Command {
  const local = new Command('local').description('The local fleet: Debian hosts booted with systemd-nspawn on this machine (needs root).');

  local
    .command('up')
    .description(
      'Boot the fleet (building the base image once); repairs a half-made or crashed fleet; changes nothing on a running one. ' +
        'With --boot cloud-init, every host but the data host boots as on AWS and configures itself (no deploy needed).',
    )
    .addOption(new Option('--subnet <cidr>', 'the /24 the fleet owns (first up only)'))
    .addOption(
      new Option('--boot <how>', 'ansible: hosts wait for cadfleet deploy; cloud-init: the data host is deployed, the others boot with the stacks\' user-data and configure themselves')
        .choices(['ansible', 'cloud-init'])
        .default('ansible'),
    )
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet local up\n  $ sudo cadfleet local up --subnet 10.214.0.0/24\n  $ sudo cadfleet local up --boot cloud-init      # the AWS boot path, rehearsed here')
    .action((opts: { subnet?: string; json?: boolean; boot: 'ansible' | 'cloud-init' }) =>
      guarded(async () => {
        const ctx = makeContext();
        if (opts.boot === 'cloud-init') {
          const { paths } = openFleet(ctx, localFleetName());
          const unlock = await acquireLock(path.join(paths.root, 'lock.json'), 'up --boot cloud-init');
          try {
            const report = await upAwsWay(ctx, localFleetName(), opts.subnet ? { subnet: opts.subnet } : {}, { log });
            if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
            const booted = report.boot ? `${report.boot.hosts.length} host(s) booted the AWS way with release ${report.boot.release}` : 'no host to boot';
            log(`local fleet ${localFleetName()} is up the AWS way in ${report.seconds.toFixed(1)} s: ${booted}${report.alreadyThere.length ? `; left alone: ${report.alreadyThere.join(', ')}` : ''}`);
          } finally {
            unlock();
          }
          return;
        }
        const report = await up(ctx, localFleetName(), opts.subnet ? { subnet: opts.subnet } : {});
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ started: report.started, alreadyRunning: report.alreadyRunning, seconds: report.seconds, baseImage: report.baseImage })}\n`);
          return;
        }
        const what = report.started.length ? `started ${report.started.length} host(s)` : 'nothing to do: every host was running';
        log(`local fleet ${report.fleet.spec.name} is up (${what}) in ${report.seconds.toFixed(1)} s. Next: cadfleet deploy --env local`);
      }),
    );

  local
    .command('down')
    .description('Stop hosts cleanly; their disks are kept. With a host or role, stop only those.')
    .argument('[hosts...]', 'host names or roles (api, api/2, streamer-1)')
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet local down\n  $ sudo cadfleet local down worker/2')
    .action((selectors: string[]) =>
      guarded(async () => {
        const ctx = makeContext();
        const { fleet } = openFleet(ctx, localFleetName());
        const hosts = selectors.length ? selectors.flatMap((s) => selectHosts(fleet, s)) : undefined;
        const outcome = await down(ctx, localFleetName(), hosts);
        for (const [host, result] of Object.entries(outcome)) log(`${host}: ${result}`);
      }),
    );

  local
    .command('start')
    .description('Start stopped hosts of a running fleet.')
    .argument('<hosts...>', 'host names or roles')
    .addHelpText('after', '\nExample:\n  $ sudo cadfleet local start worker/2')
    .action((selectors: string[]) =>
      guarded(async () => {
        const ctx = makeContext();
        const { fleet } = openFleet(ctx, localFleetName());
        await startHosts(ctx, localFleetName(), selectors.flatMap((s) => selectHosts(fleet, s)));
      }),
    );

  local
    .command('status')
    .description('Every host with its role, address and state.')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet local status\n  $ sudo cadfleet local status --json | jq -r \'.hosts[] | select(.state != "running") | .hostname\'')
    .action((opts: { json?: boolean }) =>
      guarded(async () => {
        const report = status(makeContext(), localFleetName());
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ fleet: report.fleet.spec.name, exists: report.exists, hosts: report.hosts })}\n`);
          return;
        }
        if (!report.exists) {
          log(`no local fleet ${report.fleet.spec.name}; create it with: sudo cadfleet local up`);
          return;
        }
        const rows = report.hosts.map((h) => `${h.hostname.padEnd(16)} ${h.role.padEnd(9)} ${h.ip.padEnd(15)} ${h.state}`);
        process.stdout.write(`${'HOST'.padEnd(16)} ${'ROLE'.padEnd(9)} ${'ADDRESS'.padEnd(15)} STATE\n${rows.join('\n')}\n`);
      }),
    );

  const roleArgument = (value: string): ScalableRole => {
    if (!(SCALABLE_ROLES as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${SCALABLE_ROLES.join(', ')} (the roles an auto scaling group runs)`);
    return value as ScalableRole;
  };

  local
    .command('scale-out')
    .description('Add a host to a role as an auto scaling group does on AWS: it boots from the base image with the stacks\' user-data, which cloud-init runs; it installs the current release from the releases bucket\'s pointer and configures itself with that release\'s host.yml (Ansible on the host itself; no deploy from this machine), then serves.')
    .argument('<role>', `${SCALABLE_ROLES.join(', ')}`, roleArgument)
    .option('--json', 'print the report as JSON')
    .addOption(
      new Option('--settings-after <seconds>', 'rehearse a fresh account: the settings parameter exists only this long after the boot starts, and not before one boot run gave up on it (the host keeps trying)')
        .argParser((v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > 1800) throw new InvalidArgumentError('must be a whole number of seconds from 0 to 1800');
          return n;
        }),
    )
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet local scale-out worker\n  $ sudo cadfleet local scale-out streamer --json | jq .seconds\n  $ sudo cadfleet local scale-out worker --settings-after 180')
    .action((role: ScalableRole, opts: { json?: boolean; settingsAfter?: number }) =>
      guarded(async () => {
        const ctx = makeContext();
        const { paths } = openFleet(ctx, localFleetName());
        const unlock = await acquireLock(path.join(paths.root, 'lock.json'), `scale-out ${role}`);
        try {
          const report = await scaleOut(ctx, localFleetName(), role, opts.settingsAfter === undefined ? {} : { settingsAfterMs: opts.settingsAfter * 1000, timeoutMs: opts.settingsAfter * 1000 + 300_000 });
          appendAudit(path.join(paths.root, 'audit.log'), { action: 'scale-out', version: report.release, previous: null, ok: true, seconds: report.seconds, detail: report.host.name });
          if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
          log(`${report.host.hostname} (${role}, ${report.host.ip}) serves release ${report.release}: booted through cloud-init and healthy in ${report.seconds.toFixed(1)} s, with no deploy`);
        } finally {
          unlock();
        }
      }),
    );

  local
    .command('scale-in')
    .description('Remove the last host of a role (it drains first), as an auto scaling group scales in.')
    .argument('<role>', `${SCALABLE_ROLES.join(', ')}`, roleArgument)
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExample:\n  $ sudo cadfleet local scale-in worker')
    .action((role: ScalableRole, opts: { json?: boolean }) =>
      guarded(async () => {
        const ctx = makeContext();
        const { paths } = openFleet(ctx, localFleetName());
        const unlock = await acquireLock(path.join(paths.root, 'lock.json'), `scale-in ${role}`);
        try {
          const r = await scaleIn(ctx, localFleetName(), role);
          if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
          else log(`${r.host} removed (${r.lifecycle ? `drained, lifecycle action ${r.lifecycle.result} after ${r.lifecycle.seconds.toFixed(1)} s; ` : ''}${r.stop})`);
        } finally {
          unlock();
        }
      }),
    );

  local
    .command('replace')
    .description('Replace hosts as an auto scaling group replaces an instance: each is stopped and deleted, and a fresh one boots the AWS way (cloud-init, the stacks\' user-data) at the same address and configures itself.')
    .argument('<hosts...>', 'host names or roles (lb, api, worker/2); not the data host')
    .option('--acme-domain <name>', 'the LB gets its certificate for this name by ACME instead of the fleet CA\'s (as domain_name on AWS)')
    .option('--acme-server <url>', 'the ACME directory (a test server such as pebble)')
    .option('--acme-server-ca <file>', 'PEM of the CA of the ACME server\'s own certificate')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet local replace lb\n  $ sudo cadfleet local replace api worker streamer lb\n  $ sudo cadfleet local replace lb --acme-domain lb.fleet.test --acme-server https://10.214.0.1:14000/dir --acme-server-ca pebble-ca.pem')
    .action((selectors: string[], opts: { json?: boolean; acmeDomain?: string; acmeServer?: string; acmeServerCa?: string }) =>
      guarded(async () => {
        const ctx = makeContext();
        const { fleet, paths } = openFleet(ctx, localFleetName());
        const hosts = [...new Set(selectors.flatMap((s) => selectHosts(fleet, s)))];
        if (!opts.acmeDomain !== !opts.acmeServer) throw new Error('--acme-domain and --acme-server go together');
        if (opts.acmeDomain && !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(opts.acmeDomain)) throw new Error(`--acme-domain must be a DNS name, got ${JSON.stringify(opts.acmeDomain)}`);
        const acme = opts.acmeDomain ? { domain: opts.acmeDomain, server: opts.acmeServer!, serverCa: opts.acmeServerCa ? fs.readFileSync(opts.acmeServerCa, 'utf8') : undefined } : undefined;
        const unlock = await acquireLock(path.join(paths.root, 'lock.json'), `replace ${selectors.join(' ')}`);
        try {
          const report = await replaceHosts(ctx, localFleetName(), hosts, { acme });
          appendAudit(path.join(paths.root, 'audit.log'), { action: 'replace', version: report.release, previous: null, ok: true, seconds: Math.max(...report.hosts.map((h) => h.seconds)), detail: hosts.map((h) => h.name).join(' ') });
          if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
          for (const h of report.hosts) log(`${h.hostname} (${h.role}, ${h.ip}) replaced: booted the AWS way and healthy in ${h.seconds.toFixed(1)} s`);
        } finally {
          unlock();
        }
      }),
    );

  local
    .command('destroy')
    .description('Stop the fleet and delete its hosts, keys and network.')
    .option('--image', 'delete the cached base image too')
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet local destroy\n  $ sudo cadfleet local destroy --image     # the next up builds the base image again')
    .action((opts: { image?: boolean }) =>
      guarded(async () => {
        await destroy(makeContext(), localFleetName(), opts);
        log(`local fleet ${localFleetName()} destroyed`);
      }),
    );

  return local;
}

export function outputsCommand(): Command {
  return new Command('outputs')
    .description('The deployment outputs of an environment: LB address, hosts by role, endpoints, SSH access. No secrets.')
    .requiredOption('--env <name>', 'environment: local, or an AWS environment')
    .option('--json', 'print JSON (the default)')
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet outputs --env local | jq .lb\n  $ cadfleet outputs --env staging | jq .buckets     # from the applied stack\'s state (after cadfleet plan/apply)')
    .action((opts: { env: string }) =>
      guarded(async () => {
        process.stdout.write(`${JSON.stringify(await targetNamed(opts.env).outputs(), null, 2)}\n`);
      }),
    );
}
