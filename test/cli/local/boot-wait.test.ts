// The boot wait of `cadfleet local up`, with real processes in real cgroups and a stand-in for
// systemd-nspawn (first on PATH): a host whose nspawn runs is never reported stopped, even while
// it is inside `execve` (when the kernel reports its command line empty: on a freshly booted
// machine that window was long enough that every host's first start was declared dead), and a
// host whose nspawn exits is reported with its exit status or signal and its own output.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemRunner } from '../../../cli/src/local/exec';
import { parseFleetSpec, planFleet, type HostSpec } from '../../../cli/src/local/fleet';
import { BootStopped, bootHost, fleetPaths, killLeftovers, processStat, removeHostCgroups, runningPid, startHost, stopHost, waitForSsh } from '../../../cli/src/local/hosts';
import { tempDir } from '../../helpers/convert';

const dir = tempDir('cadfleet-boot-wait-');
const bin = path.join(dir, 'bin');
const fleet = planFleet(parseFleetSpec({ name: 'cfbw', subnet: '10.213.251.0/24' }));
// Nothing listens there and the address answers at once (connection refused): the wait checks
// the process right after the start, as it did on the fresh machine.
const host: HostSpec = { ...fleet.hosts[0]!, ip: '127.0.0.2' };
const paths = fleetPaths(dir, fleet);
const savedPath = process.env.PATH;

/** Writes the stand-in `systemd-nspawn` that the next start runs. */
function standIn(body: string): void {
  fs.writeFileSync(path.join(bin, 'systemd-nspawn'), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

beforeAll(() => {
  expect(process.getuid?.(), 'the boot wait tests make cgroups: run them as root (sudo npm run test:toolkit)').toBe(0);
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(paths.hostDir(host), { recursive: true });
  process.env.PATH = `${bin}:${savedPath}`;
});

afterEach(async () => {
  await killLeftovers(host);
  removeHostCgroups(host);
});

afterAll(() => {
  process.env.PATH = savedPath;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the boot wait', () => {
  it('never reports a running nspawn stopped, not even inside its exec', async () => {
    // As nspawn does: one process for the container's whole life, exec'd from the cgroup shell.
    standIn("trap 'exit 0' TERM; while :; do sleep 0.2 & wait $!; done");
    const misses: string[] = [];
    for (let round = 0; round < 10; round++) {
      const pid = await startHost(fleet, paths, host, '/nonexistent');
      const t0 = performance.now();
      while (performance.now() - t0 < 150) {
        if (runningPid(fleet, paths, host) !== pid) misses.push(`round ${round}: not running after ${(performance.now() - t0).toFixed(2)} ms`);
      }
      expect(await stopHost(fleet, paths, host, 5000)).toBe('stopped');
      expect(runningPid(fleet, paths, host)).toBeUndefined();
      await killLeftovers(host);
    }
    expect(misses).toEqual([]);
    // The wait itself: the host never answers, so it times out; it never says the host stopped.
    await startHost(fleet, paths, host, '/nonexistent');
    await expect(waitForSsh(systemRunner, fleet, paths, host, 1500)).rejects.toThrow(/did not answer SSH within 1\.5 s/);
    expect(await stopHost(fleet, paths, host, 5000)).toBe('stopped');
  }, 60_000);

  it('reports how a stopped nspawn ended and what it wrote', async () => {
    standIn('echo "Failed to mount overlay: the stand-in says no" >&2; exit 3');
    await startHost(fleet, paths, host, '/nonexistent');
    const stopped = await waitForSsh(systemRunner, fleet, paths, host, 10_000).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(BootStopped);
    expect((stopped as Error).message).toMatch(/stopped while booting: it exited with status 3; console log .*console\.log, its output ends:\n {4}Failed to mount overlay: the stand-in says no/);

    fs.rmSync(path.join(paths.hostDir(host), 'console.log'));
    standIn('kill -KILL $$');
    await startHost(fleet, paths, host, '/nonexistent');
    await expect(waitForSsh(systemRunner, fleet, paths, host, 10_000)).rejects.toThrow(/stopped while booting: it was killed by SIGKILL; console log .*, it wrote nothing/);
  }, 30_000);

  it('starts a host that stopped once more, and reports both ends when the second start stops too', async () => {
    standIn('echo "nspawn stand-in: no luck" >&2; exit 1');
    const lines: string[] = [];
    await startHost(fleet, paths, host, '/nonexistent');
    await expect(bootHost(systemRunner, fleet, paths, host, '/nonexistent', 10_000, (l) => lines.push(l))).rejects.toThrow(/stopped while booting: it exited with status 1; .*\n {4}nspawn stand-in: no luck/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/stopped while booting \(it exited with status 1\); starting it once more \(first console log: .*console\.log\.1; its output ends:\n {4}nspawn stand-in: no luck/);
  }, 30_000);

  it('tells a reused pid from the host: the pid file holds the start time', async () => {
    standIn("trap 'exit 0' TERM; while :; do sleep 0.2 & wait $!; done");
    const pid = await startHost(fleet, paths, host, '/nonexistent');
    const pidFile = path.join(paths.hostDir(host), 'nspawn.pid');
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${pid} ${processStat(pid)!.startTime}\n`);
    // The same pid with another start time is another process.
    fs.writeFileSync(pidFile, `${pid} 1\n`);
    expect(runningPid(fleet, paths, host)).toBeUndefined();
    // A pid file of an older cadfleet (the pid alone) is checked by the command line. Such a
    // file names an nspawn that started long ago: wait until the stand-in runs (inside its
    // `execve` the kernel reports the command line empty, and the official CI met that window).
    const t0 = performance.now();
    while (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join(bin, 'systemd-nspawn'))) {
      expect(performance.now() - t0, 'the stand-in nspawn never started').toBeLessThan(5000);
      await new Promise((r) => setTimeout(r, 10));
    }
    fs.writeFileSync(pidFile, `${pid}\n`);
    expect(runningPid(fleet, paths, host)).toBe(pid);
    expect(await stopHost(fleet, paths, host, 5000)).toBe('stopped');
  }, 30_000);
});
