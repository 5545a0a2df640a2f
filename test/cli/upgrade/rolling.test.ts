import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TargetHost } from '../../../cli/src/environment';
import { switchScript } from '../../../cli/src/upgrade/runner';
import { acquireLock, LockHeldError, parseDuration } from '../../../cli/src/upgrade/lock';
import { batchLength, parseBatchSize, planUpgrade } from '../../../cli/src/upgrade/plan';
import { rollingUpgrade, type UpgradeRunner } from '../../../cli/src/upgrade/rolling';
import { tempDir } from '../../helpers/convert';

const host = (role: TargetHost['role'], index: number): TargetHost => ({ name: `cf-${role}-${index}`, role, index, address: `10.0.0.${index}` });
const FLEET = [host('lb', 1), host('data', 1), host('api', 1), host('api', 2), host('worker', 1), host('worker', 2), host('worker', 3), host('streamer', 1), host('streamer', 2)];

/** A fleet in memory: records what the upgrade did, in order. */
function fakeRunner(options: { failOn?: string; hostsAfterFirstRole?: TargetHost[]; releases?: Record<string, string | null>; neverConfigures?: string } = {}) {
  const current = new Map<string, string | null>(FLEET.map((h) => [h.name, options.releases && h.name in options.releases ? options.releases[h.name]! : 'v1']));
  const events: string[] = [];
  let pointer: string | null = null;
  let calls = 0;
  const runner: UpgradeRunner = {
    async hosts() {
      calls++;
      return calls > 2 && options.hostsAfterFirstRole ? options.hostsAfterFirstRole : FLEET.filter((h) => h.role !== 'data');
    },
    async current(h) {
      return current.has(h.name) ? current.get(h.name)! : 'v1';
    },
    async publish(v) {
      events.push(`publish ${v}`);
    },
    async install(v, hosts) {
      events.push(`install ${v} on ${hosts.map((h) => h.name).join(',')}`);
    },
    async migrate(v, api) {
      events.push(`migrate ${v} on ${api.name}`);
    },
    // A booting host installs what the pointer names when it reads it, as the boot program does.
    async waitConfigured(h, v) {
      events.push(`wait ${h.name}`);
      if (h.name === options.neverConfigures) return { ok: false, reason: `did not configure itself with ${v} within 1200 s (it runs no release)` };
      current.set(h.name, pointer);
      return current.get(h.name) === v ? { ok: true } : { ok: false, reason: `it installed ${current.get(h.name)}` };
    },
    async switchTo(h, v) {
      events.push(`switch ${h.name} ${v}`);
      current.set(h.name, v);
    },
    async waitReady(h) {
      return current.get(h.name) !== 'v1' && h.name === options.failOn ? { ok: false, reason: 'readyz answered 503' } : { ok: true };
    },
    async setPointer(v) {
      pointer = v;
      events.push(`pointer ${v}`);
    },
    log: () => undefined,
  };
  return { runner, events, current };
}

describe('upgrade plan', () => {
  it('goes worker, streamer, api, lb in batches, never a whole multi-host role at once, never the data host', () => {
    const batches = planUpgrade(FLEET, parseBatchSize('100%'));
    expect(batches.map((b) => `${b.role}:${b.hosts.map((h) => h.index).join(',')}`)).toEqual(['worker:1,2', 'worker:3', 'streamer:1', 'streamer:2', 'api:1', 'api:2', 'lb:1']);
    expect(batchLength({ count: 1 }, 3)).toBe(1);
    expect(batchLength({ percent: 50 }, 4)).toBe(2);
    expect(batchLength({ count: 5 }, 1)).toBe(1);
  });

  it('refuses batch sizes and durations it cannot read', () => {
    expect(() => parseBatchSize('0')).toThrow(/--batch must be a number of hosts/);
    expect(() => parseBatchSize('150%')).toThrow(/got "150%"/);
    expect(parseDuration('10m')).toBe(600_000);
    expect(() => parseDuration('soon')).toThrow(/30s, 10m or 1h/);
  });
});

describe('rolling upgrade', () => {
  it('installs everywhere, migrates once, flips the pointer, then switches every host', async () => {
    const { runner, events, current } = fakeRunner();
    const report = await rollingUpgrade(runner, 'v2', { count: 1 });
    expect(report).toMatchObject({ ok: true, version: 'v2', previous: 'v1' });
    const everyHost = FLEET.filter((h) => h.role !== 'data').map((h) => h.name).join(',');
    expect(events.slice(0, 4)).toEqual(['publish v2', `install v2 on ${everyHost}`, 'migrate v2 on cf-api-1', 'pointer v2']);
    expect(events.filter((e) => e.startsWith('switch')).map((e) => e.split(' ')[1])).toEqual(['cf-worker-1', 'cf-worker-2', 'cf-worker-3', 'cf-streamer-1', 'cf-streamer-2', 'cf-api-1', 'cf-api-2', 'cf-lb-1']);
    expect([...current.entries()].filter(([n]) => n !== 'cf-data-1').every(([, v]) => v === 'v2')).toBe(true);
  });

  it('puts a failing batch back, stops, flips the pointer back, and names the host and the reason', async () => {
    const { runner, events, current } = fakeRunner({ failOn: 'cf-streamer-1' });
    const report = await rollingUpgrade(runner, 'v3', { count: 1 });
    expect(report).toMatchObject({ ok: false, failedHost: 'cf-streamer-1', reason: 'readyz answered 503', previous: 'v1' });
    expect(current.get('cf-streamer-1')).toBe('v1');
    expect(current.get('cf-streamer-2')).toBe('v1');
    expect(current.get('cf-api-1')).toBe('v1');
    expect(current.get('cf-worker-1')).toBe('v3');
    expect(events.at(-1)).toBe('pointer v1');
    expect(report.hosts.find((h) => h.host === 'cf-streamer-1')).toMatchObject({ result: 'rolled back', reason: 'readyz answered 503' });
  });

  it('covers hosts that appeared while it ran (the inventory is read again before each role)', async () => {
    const grown = [...FLEET.filter((h) => h.role !== 'data'), host('api', 3)];
    const { runner, current } = fakeRunner({ hostsAfterFirstRole: grown });
    const report = await rollingUpgrade(runner, 'v2', { count: 1 });
    expect(report.ok).toBe(true);
    expect(current.get('cf-api-3')).toBe('v2');
  });

  it('lands the first release on an environment where no host runs one: publishes it, points at it, and waits for every host to configure itself', async () => {
    const none = Object.fromEntries(FLEET.map((h) => [h.name, null]));
    const { runner, events, current } = fakeRunner({ releases: none });
    const report = await rollingUpgrade(runner, 'v1', { count: 1 });
    expect(report).toMatchObject({ ok: true, version: 'v1', previous: null });
    // Nothing to install on or migrate from: the hosts' own host.yml does both at boot.
    expect(events.filter((e) => !e.startsWith('wait'))).toEqual(['publish v1', 'pointer v1']);
    expect(events.filter((e) => e.startsWith('wait')).sort()).toEqual(FLEET.filter((h) => h.role !== 'data').map((h) => `wait ${h.name}`).sort());
    expect(report.hosts.map((h) => h.result)).toEqual(Array(8).fill('configured itself'));
    expect(current.get('cf-api-2')).toBe('v1');
  });

  it('names the host that did not configure itself with the first release (the pointer stays: the others run it)', async () => {
    const none = Object.fromEntries(FLEET.map((h) => [h.name, null]));
    const { runner, events } = fakeRunner({ releases: none, neverConfigures: 'cf-worker-2' });
    const report = await rollingUpgrade(runner, 'v1', { count: 1 });
    expect(report).toMatchObject({ ok: false, failedHost: 'cf-worker-2', reason: expect.stringMatching(/did not configure itself with v1/) });
    expect(events.filter((e) => e.startsWith('pointer'))).toEqual(['pointer v1']);
    expect(report.hosts.filter((h) => h.result !== 'configured itself').map((h) => h.host)).toEqual(['cf-worker-2']);
  });

  it('leaves a host that is still booting out of the install and the switch, and says so', async () => {
    const { runner, events, current } = fakeRunner({ releases: { 'cf-worker-3': null, 'cf-api-1': null } });
    const report = await rollingUpgrade(runner, 'v2', { count: 1 });
    expect(report.ok).toBe(true);
    // Installed on the hosts that run a release only; migrated on an api that runs one.
    expect(events[1]).toBe('install v2 on cf-lb-1,cf-api-2,cf-worker-1,cf-worker-2,cf-streamer-1,cf-streamer-2');
    expect(events[2]).toBe('migrate v2 on cf-api-2');
    expect(events.filter((e) => e.startsWith('switch')).map((e) => e.split(' ')[1])).not.toContain('cf-worker-3');
    expect(report.hosts.filter((h) => h.result === 'left booting').map((h) => h.host).sort()).toEqual(['cf-api-1', 'cf-worker-3']);
    expect(current.get('cf-worker-3')).toBeNull();
  });

  it('switches current atomically and only the units the host runs', () => {
    const script = switchScript('api', '1.2.0');
    expect(script).toContain("test -f '/opt/cadfleet/releases/1.2.0/VERSION'");
    expect(script).toContain('sudo mv -Tf /opt/cadfleet/current.next /opt/cadfleet/current');
    expect(script.indexOf('systemctl stop')).toBeLessThan(script.indexOf('mv -Tf'));
  });
});

describe('deploy lock', () => {
  it('lets one holder in, tells the next who holds it, waits when asked, and is released', async () => {
    const file = path.join(tempDir(), 'lock.json');
    const release = await acquireLock(file, 'upgrade', { version: 'v2' });
    await expect(acquireLock(file, 'deploy')).rejects.toThrow(LockHeldError);
    await expect(acquireLock(file, 'deploy')).rejects.toThrow(/locked by .* for upgrade v2 since .*cadfleet lock release/);
    const waiting = acquireLock(file, 'deploy', { waitMs: 5000, pollMs: 50 });
    setTimeout(release, 200);
    const second = await waiting;
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ action: 'deploy' });
    second();
    expect(fs.existsSync(file)).toBe(false);
  });
});
