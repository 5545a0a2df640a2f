import path from 'node:path';
import { Command } from 'commander';
import { deploy } from '../deploy/deploy';
import { loadEnvironment } from '../environment';
import { systemRunner } from '../local/exec';
import { targetNamed, workspaceOf } from '../target';
import { appendAudit, parseDuration } from '../upgrade/lock';

export function deployCommand(): Command {
  return new Command('deploy')
    .description('Install the release and configure every host of the local fleet with the Ansible playbooks (AWS hosts configure themselves at boot; there, cadfleet upgrade ships a release).')
    .requiredOption('--env <name>', 'environment')
    .option('--limit <hosts>', 'only these hosts or groups (Ansible --limit)')
    .option('--version <version>', 'name the release built from the working tree (default: its content hash)')
    .option('--json', 'print the report as JSON')
    .option('--lock-wait <duration>', 'wait this long for another deploy, upgrade or rollback to finish (30s, 10m)', '0')
    .option('--full', 'configure every host in full: by default a host this same deploy (same release, settings and playbooks) already configured, running its services, is left out')
    .option('-v, --verbose', 'print every line of Ansible output')
    .addHelpText('after', '\nExamples:\n  $ sudo cadfleet deploy --env local\n  $ sudo cadfleet deploy --env local --limit data')
    .action(async (opts: { env: string; limit?: string; version?: string; json?: boolean; verbose?: boolean; full?: boolean; lockWait: string }) => {
      try {
        const refusal = targetNamed(opts.env).deployRefusal;
        if (refusal) {
          process.stderr.write(`cadfleet deploy: ${refusal}\n`);
          process.exitCode = 2;
          return;
        }
        const env = await loadEnvironment(opts.env);
        // The environment's lock, as an upgrade or a rollback takes it (and gives it back on a signal).
        const { root, lock } = await workspaceOf(opts.env);
        const unlock = await lock.acquire('deploy', { version: opts.version, waitMs: parseDuration(opts.lockWait) });
        const onSignal = (): void => {
          void unlock().finally(() => process.exit(130));
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        let tasks = 0;
        const report = await deploy({
          env,
          stateRoot: root,
          runner: systemRunner,
          limit: opts.limit,
          version: opts.version,
          full: opts.full,
          log: (line) => process.stderr.write(`${line}\n`),
          onLine: (line) => {
            if (opts.verbose) return void process.stderr.write(`${line}\n`);
            const task = /^TASK \[(.+?)\]/.exec(line);
            if (task) process.stderr.write(`  [${++tasks}] ${task[1]}\n`);
          },
        });
        await unlock();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        appendAudit(path.join(root, 'audit.log'), { action: 'deploy', version: report.release.version, previous: null, ok: report.ok, seconds: report.seconds, ...(report.ok ? {} : { detail: report.failures.map((f) => `${f.host}: ${f.task}`).join('; ') }) });
        if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
        if (report.ok) {
          process.stderr.write(`deployed ${report.release.version} to ${env.name} in ${report.seconds.toFixed(1)} s: ${report.changed ? `${report.changed} change(s)` : 'no changes'} on ${report.recap.length} host(s)\n`);
          return;
        }
        for (const f of report.failures) process.stderr.write(`FAILED on ${f.host}, task "${f.task}": ${f.message}\n`);
        process.stderr.write(`deploy of ${env.name} failed; the whole Ansible output is in ${report.log}. Fix the cause and run the deploy again: it only changes what differs.\n`);
        process.exitCode = 1;
      } catch (err) {
        process.stderr.write(`cadfleet deploy: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
