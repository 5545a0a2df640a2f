import path from 'node:path';
import { Command } from 'commander';
import { releaseFor, type DeployOptions } from '../deploy/deploy';
import { loadEnvironment, sshTo, type Environment } from '../environment';
import { systemRunner } from '../local/exec';
import { releasesLine } from '../remote';
import { upgradeRunner } from '../upgrade/runner';
import { appendAudit, parseDuration, readAudit } from '../upgrade/lock';
import { parseBatchSize, type BatchSize } from '../upgrade/plan';
import { rollingUpgrade, type UpgradeReport } from '../upgrade/rolling';
import { targetOf, workspaceOf } from '../target';

const log = (line: string): void => void process.stderr.write(`${line}\n`);

export const auditFile = (root: string): string => path.join(root, 'audit.log');

/** Runs an upgrade or rollback to `version` under the environment's lock, with an audit entry. */
async function rollTo(action: 'upgrade' | 'rollback', envName: string, version: string | undefined, size: BatchSize, lockWaitMs: number, json: boolean): Promise<number> {
  const { root, lock } = await workspaceOf(envName);
  const unlock = await lock.acquire(action, { version, waitMs: lockWaitMs });
  const onSignal = (): void => {
    void unlock().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let report: UpgradeReport | undefined;
  const started = performance.now();
  try {
    const env = await loadEnvironment(envName);
    const deployOpts: DeployOptions = { env, stateRoot: root, runner: systemRunner, version, log };
    const built = await releaseFor(deployOpts);
    const runner = upgradeRunner({
      deploy: deployOpts,
      release: built,
      readyTimeoutMs: Number(process.env.CADFLEET_READY_TIMEOUT_MS ?? 90_000),
      bootTimeoutMs: Number(process.env.CADFLEET_BOOT_TIMEOUT_MS ?? 20 * 60_000),
      pointerFile: targetOf(env).pointerFile(root),
      log,
    });
    report = await rollingUpgrade(runner, built.version, size);
    return report.ok ? 0 : 1;
  } catch (err) {
    log(`cadfleet ${action}: ${(err as Error).message}`);
    return 1;
  } finally {
    appendAudit(auditFile(root), {
      action,
      version: report?.version ?? version ?? 'unknown',
      previous: report?.previous ?? null,
      ok: !!report?.ok,
      seconds: (performance.now() - started) / 1000,
      ...(report?.ok === false ? { detail: `${report.failedHost}: ${report.reason}` } : {}),
    });
    await unlock().catch((err: unknown) => log(`could not release the deploy lock (${lock.where}): ${(err as Error).message}; cadfleet lock release --env ${envName} removes it`));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (report) {
      if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
      for (const h of report.hosts) log(`  ${h.host.padEnd(16)} ${h.role.padEnd(9)} ${h.result.padEnd(17)} ${h.from ?? '-'} -> ${h.to}${h.reason ? `  (${h.reason})` : ''}`);
      const booting = report.hosts.filter((h) => h.result === 'left booting').map((h) => h.host);
      if (booting.length) log(`still booting, left out: ${booting.join(', ')}; each installs the release releases/current names (${report.ok ? report.version : (report.previous ?? report.version)}) itself; cadfleet releases --env ${envName} shows when`);
      log(
        report.ok
          ? `${action} to ${report.version} done in ${report.seconds.toFixed(1)} s`
          : report.previous === null
            ? `${action} to ${report.version} (the first release) INCOMPLETE: ${report.failedHost}: ${report.reason}\nreleases/current names ${report.version}; the hosts marked "configured itself" run it. Next: cadfleet logs --env ${envName} ${report.failedHost} --unit cadfleet-boot`
            : `${action} to ${report.version} STOPPED: ${report.failedHost} failed its readiness check and went back to ${report.previous}: ${report.reason}\nNext: cadfleet logs --env ${envName} ${report.failedHost} ; the rest of the fleet runs what the table above says.`,
      );
    }
  }
}

const common = (cmd: Command): Command =>
  cmd
    .requiredOption('--env <name>', 'environment')
    .option('--batch <n|p%>', 'hosts per batch within a role', '1')
    .option('--lock-wait <duration>', 'wait this long for another deploy, upgrade or rollback to finish (30s, 10m)', '0')
    .option('--json', 'print the report as JSON');

export function upgradeCommands(): Command[] {
  const upgrade = common(
    new Command('upgrade')
      .description('Rolling upgrade: install the release on every host that runs one, migrate once, then role by role in batches drain, switch, restart and wait for readiness; a failing batch goes back by itself. The first release of an environment (no host runs one) is published and pointed at, and every host configures itself with it: the command waits for them.')
      .option('--version <version>', 'the release (built from the working tree when it does not exist yet)'),
  )
    .addHelpText('after', '\nExamples:\n  $ cadfleet upgrade --env local --version 1.4.0\n  $ cadfleet upgrade --env local --batch 50% --lock-wait 10m')
    .action(async (opts: { env: string; version?: string; batch: string; lockWait: string; json?: boolean }) => {
      try {
        process.exitCode = await rollTo('upgrade', opts.env, opts.version, parseBatchSize(opts.batch), parseDuration(opts.lockWait), !!opts.json);
      } catch (err) {
        log(`cadfleet upgrade: ${(err as Error).message}`);
        process.exitCode = 2;
      }
    });

  const rollback = common(
    new Command('rollback')
      .description('Roll the fleet back, with the same rolling, health-checked steps: to --to, or to the release before the last upgrade.')
      .option('--to <version>', 'the release to go back to'),
  )
    .addHelpText('after', '\nExamples:\n  $ cadfleet rollback --env local               # to the release before the last upgrade\n  $ cadfleet rollback --env local --to 1.3.2')
    .action(async (opts: { env: string; to?: string; batch: string; lockWait: string; json?: boolean }) => {
    try {
      const { root } = await workspaceOf(opts.env);
      const target = opts.to ?? [...readAudit(auditFile(root))].reverse().find((e) => e.action === 'upgrade' && e.ok && e.previous)?.previous;
      if (!target) throw new Error('no earlier release to go back to in the audit log; name one with --to (cadfleet releases lists them)');
      process.exitCode = await rollTo('rollback', opts.env, target, parseBatchSize(opts.batch), parseDuration(opts.lockWait), !!opts.json);
    } catch (err) {
      log(`cadfleet rollback: ${(err as Error).message}`);
      process.exitCode = 2;
    }
  });

  const releases = new Command('releases')
    .description('What is installed and current on every host.')
    .requiredOption('--env <name>', 'environment')
    .option('--json', 'JSON')
    .addHelpText('after', '\nExamples:\n  $ cadfleet releases --env local\n  $ cadfleet releases --env local --json | jq -r \'.[] | "\\(.host) \\(.current)"\'')
    .action(async (opts: { env: string; json?: boolean }) => {
      let env: Environment;
      try {
        env = await loadEnvironment(opts.env);
      } catch (err) {
        log(`cadfleet releases: ${(err as Error).message}`);
        process.exitCode = 2;
        return;
      }
      const rows = await Promise.all(
        env.hosts.map(async (host) => {
          const r = await systemRunner.run(sshTo(env, host, [releasesLine()]));
          const [current, ...installed] = r.code === 0 ? r.stdout.trim().split('\n').filter(Boolean) : [];
          return { host: host.name, role: host.role, reachable: r.code !== 255, current: current ?? null, installed };
        }),
      );
      if (opts.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
      else for (const r of rows) process.stdout.write(`${r.host.padEnd(16)} ${r.role.padEnd(9)} current ${r.current ?? '-'}  installed ${r.installed.join(', ') || '-'}\n`);
    });

  const lock = new Command('lock').description("An environment's deploy lock.");
  lock
    .command('status')
    .description('Who holds the deploy lock, since when and for what; exit 1 while it is held.')
    .requiredOption('--env <name>', 'environment')
    .addHelpText('after', '\nExample:\n  $ cadfleet lock status --env local')
    .action(async (opts: { env: string }) => {
      try {
        const holder = await (await workspaceOf(opts.env)).lock.read();
        if (!holder) return void process.stdout.write(`${opts.env} is not locked\n`);
        process.stdout.write(`${opts.env} is locked by ${holder.who}@${holder.host} (pid ${holder.pid}) for ${holder.action}${holder.version ? ` ${holder.version}` : ''} since ${holder.since}\n`);
        process.exitCode = 1;
      } catch (err) {
        log(`cadfleet lock status: ${(err as Error).message}`);
        process.exitCode = 2;
      }
    });
  lock
    .command('release')
    .description('Remove a lock left by a run that died (check with lock status first).')
    .requiredOption('--env <name>', 'environment')
    .addHelpText('after', '\nExample:\n  $ cadfleet lock release --env local')
    .action(async (opts: { env: string }) => {
      try {
        const holder = await (await workspaceOf(opts.env)).lock.remove();
        process.stdout.write(holder ? `released the lock of ${holder.who}@${holder.host} (pid ${holder.pid}, ${holder.action})\n` : `${opts.env} was not locked\n`);
      } catch (err) {
        log(`cadfleet lock release: ${(err as Error).message}`);
        process.exitCode = 2;
      }
    });
  return [upgrade, rollback, releases, lock];
}
