import fs from 'node:fs';
import path from 'node:path';
import { READY, apiRoutedLine, currentReleaseLine, journalTailLine, migrateLine, readyProbeLine, streamerRoutedLine, switchScript, unitsPresentLine } from '../remote';
import { releaseStoreOf, runPlaybook, type DeployOptions } from '../deploy/deploy';
import { loadEnvironment, sshTo, type Environment, type TargetHost } from '../environment';
import { systemRunner } from '../local/exec';
import type { Release } from '../release/bundle';
import type { UpgradeRunner } from './rolling';

// Kept importable from here (tests and the upgrade take them from this module).
export { READY, switchScript };

export interface UpgradeRunnerOptions {
  deploy: DeployOptions;
  release: Release;
  /** How long a host may take to be ready again (api and streamer: until the LB routes to it). */
  readyTimeoutMs: number;
  /** How long a host that was booting may take to install the first release and configure itself. @default 20 minutes */
  bootTimeoutMs?: number;
  /** A file that also records the pointer (the local fleet's state folder). */
  pointerFile?: string;
  log: (line: string) => void;
}

async function ssh(env: Environment, host: TargetHost, script: string): Promise<{ code: number; out: string }> {
  const r = await systemRunner.run(sshTo(env, host, [script]));
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * The rolling upgrade's steps over SSH and Ansible, for the local fleet and AWS alike: what
 * differs (the route to hosts, their inventory, the releases bucket) comes with the environment.
 */
export function upgradeRunner(opts: UpgradeRunnerOptions): UpgradeRunner {
  let env = opts.deploy.env;
  const mine = (version: string): void => {
    if (version !== opts.release.version) throw new Error(`the runner was made for ${opts.release.version}, not ${version}`);
  };
  // -e: every part of the path must exist (-f prints the link's own path for a host that has
  // the folder and no release yet). A host that does not answer has no release either, for now.
  const current = async (host: TargetHost): Promise<string | null> => {
    const r = await ssh(env, host, currentReleaseLine());
    return r.code === 0 && r.out ? path.basename(r.out) : null;
  };
  const runner: UpgradeRunner = {
    async hosts() {
      // Re-read: on AWS the auto scaling groups may have added or replaced hosts since.
      env = await loadEnvironment(env.name);
      return env.hosts.filter((h) => h.role !== 'data');
    },
    current,
    async publish(version) {
      mine(version);
      // In the bucket before any host switches: the pointer may name it only once it is there.
      const store = releaseStoreOf(env.outputs, opts.deploy.stateRoot);
      try {
        await store.publish(opts.release);
      } finally {
        store.close();
      }
    },
    async install(version, hosts) {
      mine(version);
      // Only the hosts that run a release: one still booting (its agent not up, dpkg locked at
      // first boot) would fail the whole play, and installs the pointer's release by itself.
      const result = await runPlaybook({ ...opts.deploy, env, limit: hosts.map((h) => h.name).join(',') }, opts.release, 'playbooks/release-install.yml');
      if (!result.ok) {
        const f = result.failures[0];
        throw new Error(`installing ${version} failed${f ? ` on ${f.host}, task "${f.task}": ${f.message}` : ''}; see ${result.log}`);
      }
    },
    async migrate(version, api) {
      const r = await ssh(env, api, migrateLine(version));
      if (r.code !== 0) {
        throw new Error(`the migrations of ${version} failed on ${api.name} (exit ${r.code}): ${r.out.split('\n').slice(-3).join(' / ') || 'it printed nothing'}; nothing was switched`);
      }
    },
    async waitConfigured(host, version) {
      const timeoutMs = opts.bootTimeoutMs ?? 20 * 60_000;
      const deadline = Date.now() + timeoutMs;
      let runs: string | null = null;
      while ((runs = await current(host)) !== version) {
        if (Date.now() > deadline) {
          return { ok: false, reason: `did not configure itself with ${version} within ${Math.round(timeoutMs / 1000)} s (it runs ${runs ?? 'no release'}); its boot log: cadfleet logs --env ${env.name} ${host.name} --unit cadfleet-boot` };
        }
        await new Promise((r) => setTimeout(r, 5000));
      }
      return runner.waitReady(host);
    },
    async switchTo(host, version) {
      const r = await ssh(env, host, switchScript(host.role, version));
      if (r.code !== 0) throw new Error(`switching ${host.name} to ${version} failed: ${r.out.split('\n').slice(-2).join(' / ')}`);
    },
    async waitReady(host) {
      const deadline = Date.now() + opts.readyTimeoutMs;
      const lb = env.hosts.find((h) => h.role === 'lb');
      const deployed = await ssh(env, host, unitsPresentLine(host.role));
      if (deployed.code !== 0) return { ok: true };
      for (;;) {
        const probe = await ssh(env, host, readyProbeLine(host.role));
        let ready = probe.out.endsWith('200');
        if (ready && host.role === 'api' && lb) {
          // Back in service means back in the LB's upstream (the sync service follows the registry).
          ready = (await ssh(env, lb, apiRoutedLine(host.address))).code === 0;
        } else if (ready && host.role === 'streamer' && lb) {
          // The api hands out sessions on it as soon as it is live: the LB must route to it by then.
          ready = (await ssh(env, lb, streamerRoutedLine(host.address))).code === 0;
        }
        if (ready) return { ok: true };
        if (Date.now() > deadline) {
          const journal = await ssh(env, host, journalTailLine(host.role, 5));
          return { ok: false, reason: `not ready within ${opts.readyTimeoutMs / 1000} s (${READY[host.role]} answered ${probe.out.slice(-3) || 'nothing'}); last log lines: ${journal.out.split('\n').slice(-5).join(' | ').slice(0, 600)}` };
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    },
    async setPointer(version) {
      const store = releaseStoreOf(env.outputs, opts.deploy.stateRoot);
      try {
        await store.writePointer(version);
      } finally {
        store.close();
      }
      if (opts.pointerFile) fs.writeFileSync(opts.pointerFile, `${version}\n`);
    },
    log: opts.log,
  };
  return runner;
}
