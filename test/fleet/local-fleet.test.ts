import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { VIEWER_CSP } from '../../app/src/api/viewer-static';
import { authorizeKeyScript, ensureRunKey } from '../../cli/src/aws/run-key';
import { shellQuote } from '../../cli/src/commands/keys';
import { sshCommand } from '../../cli/src/local/commands';
import { systemRunner } from '../../cli/src/local/exec';
import { switchScript } from '../../cli/src/upgrade/runner';
import { FIRST_DEPLOY_ENDED } from '../../scripts/test-tiers';
import { runCli } from '../helpers/cli';
import { tempDir, validateGlb } from '../helpers/convert';
import { cax, stlSample } from '../helpers/samples';
import { decoderReady, openStream } from '../streamer/client';
import { NAME, SERVICE_ENV, SUBNET, cli, e2e, env, fleet, id, ipOf, lb, lbAddress, links, nspawnPid, patch, root, ssh, state, statusJson, variantTree } from './context';
import { awsWayScenarios } from './aws-way';
import { reliabilityScenarios } from './reliability';
import { featureScenarios } from './features';

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the local fleet tests need root (namespaces, bridges, systemd-nspawn); run them as root, as CI does');
  // Leftovers of an earlier run that died (kernel state survives processes): destroy repairs nothing, it removes.
  await cli('local', 'destroy');
}, 120_000);

afterAll(async () => {
  await cli('local', 'destroy');
  fs.rmSync(state, { recursive: true, force: true });
}, 120_000);

// Each scenario's duration in the run's output: where the tier's time goes.
let scenarioStarted = 0;
beforeEach(() => {
  scenarioStarted = performance.now();
});
afterEach((ctx) => {
  console.log(`fleet scenario: ${((performance.now() - scenarioStarted) / 1000).toFixed(1)} s, ${ctx.task.name}`);
});

/** `role : task name` of every task that installs Debian packages (ansible.builtin.apt) in the roles. */
function aptTaskNames(): string[] {
  const rolesDir = path.resolve('ansible/roles');
  const names: string[] = [];
  for (const role of fs.readdirSync(rolesDir)) {
    const tasksDir = path.join(rolesDir, role, 'tasks');
    if (!fs.existsSync(tasksDir)) continue;
    // acme.yml runs only where the LB gets its certificate by ACME (the suite's ACME scenario);
    // time.yml only on AWS (the local fleet's hosts keep this machine's clock).
    for (const file of fs.readdirSync(tasksDir).filter((f) => f !== 'acme.yml' && f !== 'time.yml')) {
      const text = fs.readFileSync(path.join(tasksDir, file), 'utf8');
      for (const m of text.matchAll(/^- name: (.+)\n(?: {2}.*\n)*? {2}ansible\.builtin\.apt:/gm)) names.push(`${role} : ${m[1]!.trim()}`);
    }
  }
  return names;
}

describe('the local fleet', () => {
  it('comes up from nothing: every host boots, answers SSH as itself', async () => {
    const r = await cli('local', 'up', '--subnet', SUBNET, '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { started: string[]; alreadyRunning: string[] };
    expect(report.started.sort()).toEqual(fleet.hosts.map((h) => h.name).sort());
    for (const host of fleet.hosts) expect(ssh(host.name, 'hostname')).toEqual({ code: 0, out: host.hostname });
    // Every host has its own identity.
    const ids = fleet.hosts.map((h) => ssh(h.name, 'cat', '/etc/machine-id').out);
    expect(new Set(ids).size).toBe(fleet.hosts.length);
    expect(ssh('api-1', 'systemctl', 'is-system-running').out).toBe('running');
  }, 600_000);

  it('changes nothing when brought up again', async () => {
    const r = await cli('local', 'up', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ started: [], alreadyRunning: expect.arrayContaining(['lb', 'api-1', 'streamer-2']) });
  });

  it('deploys the data services with TLS, and a second deploy changes nothing', async () => {
    const first = await cli('deploy', '--env', 'local', '--json');
    expect(first.code, first.stderr).toBe(0);
    // `npm test` starts its background tiers on this line (scripts/test.ts).
    console.log(FIRST_DEPLOY_ENDED);
    e2e.version = (JSON.parse(first.stdout) as { release: { version: string } }).release.version;
    // Hosts booted from the base image need no package installation: every apt task of the
    // first deploy finds its packages there already.
    const firstLog = fs.readFileSync(path.join(root, 'deploy/last-site.log'), 'utf8');
    // Roles site.yml applies on the local fleet (not the image's own role, not the AWS-only agent).
    const aptTasks = aptTaskNames().filter((t) => !t.startsWith('cloudwatch_agent') && !t.startsWith('host_image'));
    expect(aptTasks.length).toBeGreaterThanOrEqual(3);
    for (const task of aptTasks) {
      // site.yml's first play runs hosts at their own pace (strategy free): a task's banner comes
      // again before each result that follows another task's, so its results are in every section.
      // A section ends at the next banner of any kind: a task's, a handler's or a play's.
      const sections = firstLog.split(`TASK [${task}]`).slice(1);
      expect(sections.length, `the deploy ran no "${task}"`).toBeGreaterThan(0);
      const section = sections.map((s) => s.split(/\n(?:TASK \[|RUNNING HANDLER \[|PLAY \[|PLAY RECAP )/)[0]).join('\n');
      expect(section, task).toMatch(/^ok: /m);
      expect(section, task).not.toMatch(/^changed: /m);
    }
    // Every role on every host again (--full) changing nothing is checked where it proves more: after
    // the AWS-way boot (test/fleet/aws-way.ts), over hosts that configured themselves with host.yml.
    // A plain redeploy with nothing changed reads each host's record and leaves every host out.
    const third = await cli('deploy', '--env', 'local', '--json');
    expect(third.code, third.stderr).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ ok: true, changed: 0 });
    expect(JSON.parse(third.stdout).recap).toHaveLength(fleet.hosts.length);
    const thirdLog = fs.readFileSync(path.join(root, 'deploy/last-site.log'), 'utf8');
    expect(thirdLog).toContain('TASK [Read the host\'s deploy record');
    expect(thirdLog).not.toContain('TASK [release : ');
    console.log(`deploys: first ${(JSON.parse(first.stdout) as { seconds: number }).seconds.toFixed(1)} s, no-change redeploy ${(JSON.parse(third.stdout) as { seconds: number }).seconds.toFixed(1)} s`);
    // PostgreSQL as the app reaches it: TLS with the certificate checked against the fleet CA and the host's address.
    const secrets = JSON.parse(fs.readFileSync(path.join(root, 'secrets.json'), 'utf8')) as { postgresPassword: string; redisPassword: string };
    const data = fleet.hosts.find((h) => h.role === 'data')!;
    const psql = spawnSync('psql', [`host=${data.ip} dbname=cadfleet user=cadfleet sslmode=verify-full sslrootcert=${path.join(root, 'pki/ca.crt')}`, '-tAc', 'show ssl'], {
      encoding: 'utf8',
      env: { ...process.env, PGPASSWORD: secrets.postgresPassword },
    });
    expect(psql.stdout.trim(), psql.stderr).toBe('on');
    const redis = spawnSync('redis-cli', ['-h', data.ip, '--tls', '--cacert', path.join(root, 'pki/ca.crt'), 'config', 'get', 'maxmemory-policy'], {
      encoding: 'utf8',
      env: { ...process.env, REDISCLI_AUTH: secrets.redisPassword },
    });
    expect(redis.stdout.trim().split('\n')).toEqual(['maxmemory-policy', 'noeviction']);
    const plain = spawnSync('redis-cli', ['-h', data.ip, 'ping'], { encoding: 'utf8', timeout: 10_000 });
    expect(plain.stdout).not.toContain('PONG');
  }, 900_000);

  it('applies a changed setting: a worker concurrency reaches the worker hosts and restarts their service only, then a redeploy changes nothing', async () => {
    const mainPid = (host: string, unit: string): string => ssh(host, 'systemctl', 'show', '-p', 'MainPID', '--value', unit).out;
    const untouched = [['lb', 'nginx'], ['lb', 'cadfleet-lb-sync'], ['data', 'redis-server'], ['data', 'cadfleet-s3'], ['api-1', 'cadfleet-api'], ['api-2', 'cadfleet-api'], ['streamer-1', 'cadfleet-streamer'], ['streamer-2', 'cadfleet-streamer']] as const;
    const before = Object.fromEntries([...untouched, ['worker-1', 'cadfleet-worker'], ['worker-2', 'cadfleet-worker']].map(([h, u]) => [`${h} ${u}`, mainPid(h, u)]));
    for (const [key, pid] of Object.entries(before)) expect(Number(pid), key).toBeGreaterThan(0);
    const withConcurrency = { ...env, CADFLEET_SERVICE_ENV: JSON.stringify({ ...(JSON.parse(SERVICE_ENV) as Record<string, string>), CADFLEET_WORKER_CONCURRENCY: '3' }) };
    const workerEnv = (host: string): string[] => ssh(host, 'sudo', 'grep', '-h', '^CADFLEET_WORKER_CONCURRENCY=', '/etc/cadfleet/worker.env').out.split('\n').filter(Boolean);

    const changed = await runCli(['deploy', '--env', 'local', '--json'], withConcurrency);
    expect(changed.code, changed.stderr).toBe(0);
    const report = JSON.parse(changed.stdout) as { changed: number; recap: Array<{ host: string; changed: number }> };
    // `CADFLEET_WORKER_*` settings are the workers' only: every other host changes nothing, and
    // is left out of every play after the record check (its digest did not move).
    const workers = fleet.hosts.filter((h) => h.role === 'worker');
    expect(report.recap.filter((h) => h.changed > 0).map((h) => h.host).sort()).toEqual(workers.map((h) => id(h.name)).sort());
    const afterCheck = fs.readFileSync(path.join(root, 'deploy/last-site.log'), 'utf8').split('PLAY [Base every host')[1] ?? '';
    for (const host of workers) expect(afterCheck).toContain(`[${id(host.name)}]`);
    for (const host of fleet.hosts.filter((h) => h.role !== 'worker')) expect(afterCheck, host.name).not.toContain(`[${id(host.name)}]`);
    expect(ssh('api-1', 'sudo', 'grep', '-c', '^CADFLEET_WORKER_', '/etc/cadfleet/api.env').out).toBe('0');
    for (const host of ['worker-1', 'worker-2']) {
      expect(workerEnv(host), host).toEqual(['CADFLEET_WORKER_CONCURRENCY=3']);
      expect(mainPid(host, 'cadfleet-worker'), `${host}: the worker restarted with the setting`).not.toBe(before[`${host} cadfleet-worker`]);
      expect(ssh(host, 'systemctl', 'is-active', 'cadfleet-worker').out).toBe('active');
    }
    for (const [host, unit] of untouched) expect(mainPid(host, unit), `${host} ${unit} was not restarted`).toBe(before[`${host} ${unit}`]);

    const again = await runCli(['deploy', '--env', 'local', '--json'], withConcurrency);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, changed: 0 });

    // Back to the suite's settings: the setting leaves the hosts.
    const back = await cli('deploy', '--env', 'local', '--json');
    expect(back.code, back.stderr).toBe(0);
    for (const host of ['worker-1', 'worker-2']) expect(workerEnv(host), host).toEqual([]);
    console.log(`setting changed: deploy ${(JSON.parse(changed.stdout) as { seconds: number }).seconds.toFixed(1)} s (${report.changed} changes), then ${(JSON.parse(again.stdout) as { seconds: number }).seconds.toFixed(1)} s with nothing to change`);
  }, 900_000);

  it('serves through the LB: a STEP upload is converted on a worker host, every node reports its role and version', async () => {
    const key = await cli('keys', 'create', '--env', 'local', '--project', 'e2e', '--admin');
    expect(key.code, key.stderr).toBe(0);
    e2e.key = key.stdout.trim().split('\n').pop()!;
    expect(e2e.key).toMatch(/^cfk_/);

    const upload = lb('POST', '/api/v1/models', e2e.key, ['-F', `file=@${cax('as1-oc-214.stp')}`]);
    expect(upload.status, upload.body).toBe(201);
    e2e.modelId = (JSON.parse(upload.body) as { id: string }).id;
    let model: { state: string; workerHost?: string; stats?: { parts: number } } = { state: 'queued' };
    for (let i = 0; i < 120 && !['ready', 'failed'].includes(model.state); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      model = JSON.parse(lb('GET', `/api/v1/models/${e2e.modelId}`, e2e.key).body) as typeof model;
    }
    expect(model).toMatchObject({ state: 'ready', stats: { parts: 18 } });
    expect([id('worker-1'), id('worker-2')]).toContain(model.workerHost);

    const glb = path.join(tempDir(), 'model.glb');
    expect(lb('GET', `/api/v1/models/${e2e.modelId}/files/model.glb`, e2e.key, ['-o', glb]).status).toBe(200);
    expect((await validateGlb(glb)).numErrors).toBe(0);

    // A streaming session through the LB (wss, the fleet CA), served by the streamer the api named.
    const opened = lb('POST', `/api/v1/models/${e2e.modelId}/sessions`, e2e.key, ['-H', 'content-type: application/json', '-d', '{}']);
    expect(opened.status, opened.body).toBe(201);
    const session = JSON.parse(opened.body) as { streamUrl: string; node: string };
    expect([id('streamer-1'), id('streamer-2')]).toContain(session.node);
    await decoderReady;
    const stream = openStream(`wss://${lbAddress()}${session.streamUrl}`, { ca: fs.readFileSync(path.join(root, 'pki/ca.crt')) });
    expect(await stream.closed).toEqual({ code: 1000, reason: 'complete' });
    expect(stream.manifest?.node).toBe(session.node);
    expect(stream.completeParts().sort()).toEqual([...stream.manifest!.order].sort());
    expect(stream.frames[0]!.at).toBeLessThan(stream.close!.at);

    // The viewer from the LB, under its Content-Security-Policy, over HTTP/2 (curl offers h2;
    // HTTP/2 header names are lower case).
    const page = spawnSync('curl', ['-sS', '-D', '-', '--cacert', path.join(root, 'pki/ca.crt'), `https://${lbAddress()}/`], { encoding: 'utf8' });
    expect(page.stdout).toMatch(/^HTTP\/2 200/);
    expect(page.stdout).toContain(`content-security-policy: ${VIEWER_CSP}\r\n`);
    expect(page.stdout).toContain('<title>cadfleet viewer</title>');

    const status = JSON.parse(lb('GET', '/status?format=json', e2e.key).body) as { nodes: Array<{ id: string; role: string; version: string }> };
    const nodes = status.nodes.map((n) => `${n.id}:${n.role}:${n.version}`).sort();
    expect(nodes).toEqual(
      ['api-1', 'api-2', 'worker-1', 'worker-2', 'streamer-1', 'streamer-2'].map((h) => `${id(h)}:${h.replace(/-\d$/, '')}:${e2e.version}`).sort(),
    );
    // /metrics stays on the private network.
    expect(lb('GET', '/metrics', e2e.key).status).toBe(404);
    expect(lb('GET', '/api/v1/models', 'cfk_wrong_key').status).toBe(401);
  }, 300_000);

  it('upgrades under load (API, uploads, 10 streaming sessions) with no failed request, returns a bad release by itself, holds one upgrade at a time, and rolls back', async () => {
    const work = tempDir('cadfleet-upgrade-');
    const ca = path.join(root, 'pki/ca.crt');
    const stopFile = path.join(work, 'stop');
    const loadEnv = { ...process.env, NODE_EXTRA_CA_CERTS: ca, LB_URL: `https://${lbAddress()}`, API_KEY: e2e.key, STOP_FILE: stopFile, MAX_SECONDS: '600' };
    const api = spawn(process.execPath, [path.resolve('test/helpers/load.mjs')], { env: { ...loadEnv, OUT_FILE: path.join(work, 'load.json'), UPLOAD_FILE: stlSample('box_2x3x4.stl') }, stdio: 'ignore' });
    const streams = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/helpers/stream-load.ts')], {
      env: { ...loadEnv, OUT_FILE: path.join(work, 'streams.json'), MODEL_ID: e2e.modelId, SESSIONS: '10', ACK_DELAY_MS: '800' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const loadsDone = Promise.all([api, streams].map((p) => new Promise((resolve) => p.once('exit', resolve))));
    const timings: Record<string, number> = {};
    const timed = async <T,>(name: string, run: () => Promise<T>): Promise<T> => {
      const t0 = Date.now();
      try {
        return await run();
      } finally {
        timings[name] = (Date.now() - t0) / 1000;
      }
    };
    const hostsOn = async (): Promise<Array<{ host: string; role: string; release: string; ok: boolean }>> =>
      (JSON.parse((await cli('status', '--env', 'local', '--json')).stdout) as { hosts: Array<{ host: string; role: string; release: string; ok: boolean }> }).hosts.filter((h) => h.role !== 'data');

    // v2: another build of this tree with a database migration and a new job field. v1 api and
    // workers run on the migrated schema while the upgrade goes; during the rollback v1 workers
    // take jobs that v2 apis enqueued with the new field.
    const v2 = `${e2e.version}-v2`;
    const v2Tree = variantTree(path.join(work, 'v2'), (tree) => {
      // After every migration the tree has: node-pg-migrate refuses one that sorts before an applied one.
      const next = Math.max(...fs.readdirSync(path.join(tree, 'app/migrations')).map((f) => Number(f.split('_')[0]))) + 1;
      fs.writeFileSync(
        path.join(tree, `app/migrations/${next}_upgrade-test-column.sql`),
        '-- Up Migration\nALTER TABLE models ADD COLUMN upgrade_test_note text;\n\n-- Down Migration\nALTER TABLE models DROP COLUMN upgrade_test_note;\n',
      );
      patch(path.join(tree, 'app/src/shared/queue.ts'), '  inputKey: string;\n}', "  inputKey: string;\n  submittedBy?: string;\n}");
      patch(path.join(tree, 'app/src/shared/queue.ts'), '        inputKey: model.inputKey,\n', "        inputKey: model.inputKey,\n        submittedBy: 'v2',\n");
    });
    const upgrading = timed('upgrade v1 -> v2', () => runCli(['upgrade', '--env', 'local', '--version', v2, '--json'], env, [], path.join(v2Tree, 'bin/cadfleet.js')));
    // A second upgrade while the first runs is refused by the lock, naming the holder.
    await new Promise((r) => setTimeout(r, 3000));
    const second = await cli('upgrade', '--env', 'local', '--version', `${e2e.version}-other`);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/locked by .* for upgrade .*-v2/);
    const upgrade = await upgrading;
    expect(upgrade.code, upgrade.stderr).toBe(0);
    for (const h of await hostsOn()) expect(h, h.host).toMatchObject({ release: v2, ok: true });
    const secrets = JSON.parse(fs.readFileSync(path.join(root, 'secrets.json'), 'utf8')) as { postgresPassword: string; redisPassword: string };
    const data = fleet.hosts.find((h) => h.role === 'data')!;
    const column = spawnSync('psql', [`host=${data.ip} dbname=cadfleet user=cadfleet sslmode=verify-full sslrootcert=${ca}`, '-tAc', "select column_name from information_schema.columns where table_name = 'models' and column_name = 'upgrade_test_note'"], {
      encoding: 'utf8',
      env: { ...process.env, PGPASSWORD: secrets.postgresPassword },
    });
    expect(column.stdout.trim(), column.stderr).toBe('upgrade_test_note');
    const v2Upload = lb('POST', '/api/v1/models?reuse=false', e2e.key, ['-F', `file=@${stlSample('box_2x3x4.stl')}`]);
    expect(v2Upload.status, v2Upload.body).toBe(201);
    const v2Job = spawnSync('redis-cli', ['-h', data.ip, '--tls', '--cacert', ca, 'hget', `cadfleet:bull:conversions:${(JSON.parse(v2Upload.body) as { id: string }).id}`, 'data'], {
      encoding: 'utf8',
      env: { ...process.env, REDISCLI_AUTH: secrets.redisPassword },
    });
    expect(JSON.parse(v2Job.stdout.trim() || '{}'), v2Job.stderr).toMatchObject({ submittedBy: 'v2' });

    // v3: a release whose services cannot start; their migrations and commands still work, so
    // only the readiness gate can catch it. The first batch goes back to v2 by itself.
    const v3Tree = variantTree(path.join(work, 'v3'), (tree) => {
      fs.cpSync(path.join(v2Tree, 'app'), path.join(tree, 'app'), { recursive: true });
      fs.appendFileSync(path.join(tree, 'app/src/main.ts'), "\nif (['api', 'worker', 'streamer'].includes(process.argv[2] ?? '')) process.exit(78);\n");
    });
    const v3 = await timed('failed upgrade v2 -> v3', () => runCli(['upgrade', '--env', 'local', '--version', `${e2e.version}-v3`], { ...env, CADFLEET_READY_TIMEOUT_MS: '15000' }, [], path.join(v3Tree, 'bin/cadfleet.js')));
    expect(v3.code).toBe(1);
    expect(v3.stderr).toMatch(new RegExp(`STOPPED: ${id('worker-1')} failed its readiness check and went back to .*-v2`));
    for (const h of await hostsOn()) expect(h, h.host).toMatchObject({ release: v2, ok: true });

    const back = await timed('rollback v2 -> v1', () => cli('rollback', '--env', 'local'));
    expect(back.code, back.stderr).toBe(0);
    for (const h of await hostsOn()) expect(h, h.host).toMatchObject({ release: e2e.version, ok: true });
    expect((await cli('lock', 'status', '--env', 'local')).stdout).toMatch(/is not locked/);

    fs.writeFileSync(stopFile, '');
    await loadsDone;
    const traffic = JSON.parse(fs.readFileSync(path.join(work, 'load.json'), 'utf8')) as { requests: number; failures: number; byStatus: Record<string, number>; errors: string[]; uploads: string[] };
    const sessions = JSON.parse(fs.readFileSync(path.join(work, 'streams.json'), 'utf8')) as { sessions: number; resumes: number; failures: number; mismatches: number; closes: Record<string, number>; errors: string[] };
    console.log(`upgrade under load: ${JSON.stringify(timings)}; API ${traffic.requests} requests, ${traffic.failures} failed ${JSON.stringify(traffic.byStatus)}; streaming ${sessions.sessions} sessions complete, ${sessions.resumes} resumes, ${sessions.failures} failed ${JSON.stringify(sessions.closes)}`);
    expect(traffic.requests).toBeGreaterThan(100);
    expect(traffic.failures, JSON.stringify(traffic)).toBe(0);
    expect(sessions.failures, JSON.stringify(sessions)).toBe(0);
    expect(sessions.mismatches).toBe(0);
    expect(sessions.sessions).toBeGreaterThan(30);
    // Sessions (about 15 s each at this reading pace) outlast the streamers' 3 s drain: some were cut and resumed.
    expect(sessions.resumes).toBeGreaterThan(0);
    // Every upload made during the three operations, on any release, converts.
    for (const id of [...traffic.uploads, (JSON.parse(v2Upload.body) as { id: string }).id]) {
      let state = '';
      for (let i = 0; i < 90 && state !== 'ready'; i++) {
        state = (JSON.parse(lb('GET', `/api/v1/models/${id}`, e2e.key).body) as { state: string }).state;
        if (state !== 'ready') await new Promise((r) => setTimeout(r, 1000));
      }
      expect(state, id).toBe('ready');
    }
  }, 1_500_000);

  featureScenarios();
  reliabilityScenarios();

  it('stops and starts a single host; a stopped streamer leaves the LB and comes back without a deploy', async () => {
    const routed = (): string => ssh('lb', 'cat', '/etc/nginx/cadfleet/streamers.map').out;
    const until = async (what: string, check: () => boolean, seconds = 40): Promise<void> => {
      for (let i = 0; i < seconds * 2 && !check(); i++) await new Promise((r) => setTimeout(r, 500));
      expect(check(), what).toBe(true);
    };
    expect(routed()).toContain(`${id('streamer-1')} ${ipOf('streamer-1')}:8090;`);
    expect((await cli('local', 'down', 'streamer/1')).code).toBe(0);
    expect(await statusJson()).toMatchObject({ 'streamer-1': 'stopped', 'streamer-2': 'running' });
    expect(ssh('streamer-1', 'true').code).not.toBe(0);
    await until('the LB drops the stopped streamer', () => !routed().includes(`${id('streamer-1')} `));
    // Every new session goes to the streamer that is left; a URL naming the stopped one is gone (410), not a 502.
    for (let i = 0; i < 4; i++) {
      const r = lb('POST', `/api/v1/models/${e2e.modelId}/sessions`, e2e.key, ['-H', 'content-type: application/json', '-d', '{}']);
      expect(r.status, r.body).toBe(201);
      expect((JSON.parse(r.body) as { node: string }).node).toBe(id('streamer-2'));
    }
    expect(lb('GET', `/stream/${id('streamer-1')}/00000000-0000-0000-0000-000000000000?token=x`, e2e.key).status).toBe(410);

    expect((await cli('local', 'start', 'streamer-1')).code).toBe(0);
    expect(ssh('streamer-1', 'hostname').out).toBe(id('streamer-1'));
    await until('the LB routes to the streamer again', () => routed().includes(`${id('streamer-1')} ${ipOf('streamer-1')}:8090;`));
  }, 180_000);

  it('keeps host data across down and up', async () => {
    expect(ssh('data', 'echo', 'kept', '|', 'sudo', 'tee', '/var/lib/marker').code).toBe(0);
    const d = await cli('local', 'down');
    expect(d.code, d.stderr).toBe(0);
    expect(Object.values(await statusJson()).every((s) => s === 'stopped')).toBe(true);
    expect(links()).not.toContain(fleet.bridge);
    const u = await cli('local', 'up');
    expect(u.code, u.stderr).toBe(0);
    expect(ssh('data', 'cat', '/var/lib/marker').out).toBe('kept');
    // The converted model survives the fleet's restart, through the LB.
    let model = { state: '' };
    for (let i = 0; i < 60 && model.state !== 'ready'; i++) {
      const r = lb('GET', `/api/v1/models/${e2e.modelId}`, e2e.key);
      if (r.status === 200) model = JSON.parse(r.body) as typeof model;
      else await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    expect(model.state).toBe('ready');
  }, 300_000);

  it('repairs a fleet whose processes died and whose network is half gone', async () => {
    for (const host of fleet.hosts) process.kill(nspawnPid(host.name), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    execFileSync('ip', ['netns', 'delete', id('api-1')]);
    execFileSync('ip', ['link', 'delete', fleet.hosts.find((h) => h.name === 'worker-2')!.veth]);
    const r = await cli('local', 'up');
    expect(r.code, r.stderr).toBe(0);
    for (const host of fleet.hosts) expect(ssh(host.name, 'hostname').out).toBe(host.hostname);
    // Remade network, same MAC: the others reach the repaired hosts at once, with no stale ARP entry.
    const mac = `02:cf:${ipOf('api-1').split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`;
    expect(ssh('api-1', 'ip', '-br', 'link', 'show', 'eth0').out).toContain(mac);
  }, 300_000);

  it('says which interface holds the range it was asked to use', async () => {
    // A /24 near the suite's own that nothing on this machine uses (another fleet may hold the
    // next one), squatted by a bridge of our making.
    const [a, b, c] = SUBNET.split('.').map(Number);
    const used = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
    const range = [...Array(40).keys()].map((i) => `${a}.${b}.${(c! + 7 + i) % 256}`).find((r) => !used.includes(` ${r}.`));
    if (!range) throw new Error('no free /24 near the suite\'s own range for the squatter');
    const squatter = `${NAME}xsquat`;
    execFileSync('ip', ['link', 'add', squatter, 'type', 'bridge']);
    try {
      execFileSync('ip', ['addr', 'add', `${range}.5/24`, 'dev', squatter]);
      const r = await runCli(['local', 'up', '--subnet', `${range}.0/24`], { ...env, CADFLEET_LOCAL_FLEET: `${NAME}x` });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`range ${range}.0/24 is taken by interface ${squatter} (${range}.5); choose another with --subnet`);
    } finally {
      execFileSync('ip', ['link', 'delete', squatter]);
      fs.rmSync(path.join(state, `${NAME}x`), { recursive: true, force: true });
    }
  });

  it('tells a user who is not root to use sudo', async () => {
    const r = await runCli(['local', 'up'], env, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needs root .* run it with sudo/);
  });

  it('runs ssh, exec and logs against its hosts, and reports a host that is down as down', async () => {
    const one = await cli('ssh', '--env', 'local', 'worker/2', '--', 'hostname');
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.trim()).toBe(id('worker-2'));

    // The login AWS hosts give a run (cli/src/aws/run-key.ts), on this image's real sshd: the
    // script that SSM's AWS-RunShellScript runs authorizes this machine's key until a time,
    // replaces its own earlier line, drops run keys past their time, and keeps other keys.
    const runKey = await ensureRunKey(systemRunner, path.join(state, 'run-key'));
    const authorize = (expires: Date) => cli('ssh', '--env', 'local', 'worker/2', '--', 'sudo', 'sh', '-c', shellQuote(authorizeKeyScript('admin', runKey.publicKey, expires)));
    const withRunKey = (): { code: number; out: string } => {
      const argv = sshCommand({ user: 'admin', ip: ipOf('worker-2'), keyFile: runKey.keyFile, knownHosts: path.join(root, 'ssh/known_hosts') }, ['hostname']);
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
      return { code: r.status ?? 255, out: (r.stdout ?? '').trim() };
    };
    const runLines = (): string[] => ssh('worker-2', 'grep', 'cadfleet-run', '.ssh/authorized_keys').out.split('\n').filter(Boolean);
    expect(withRunKey().code, 'the run key before it is authorized').toBe(255);
    expect((await authorize(new Date(Date.now() + 3_600_000))).code).toBe(0);
    expect((await authorize(new Date(Date.now() + 7_200_000))).code).toBe(0);
    expect(runLines()).toHaveLength(1);
    expect(withRunKey()).toEqual({ code: 0, out: id('worker-2') });
    expect((await authorize(new Date(Date.now() - 120_000))).code).toBe(0);
    expect(withRunKey().code, 'the run key past its expiry-time').toBe(255);
    expect(ssh('worker-2', 'hostname'), 'the fleet key, untouched').toEqual({ code: 0, out: id('worker-2') });
    expect(ssh('worker-2', 'sed', '-i', '/cadfleet-run/d', '.ssh/authorized_keys').code).toBe(0);

    // An AWS host that booted before the first release existed has its settings but no unit:
    // the upgrade's switch installs the unit the release ships and starts it.
    expect(ssh('worker-2', 'sudo systemctl disable -q --now cadfleet-worker && sudo rm /etc/systemd/system/cadfleet-worker.service && sudo systemctl daemon-reload').code).toBe(0);
    expect(ssh('worker-2', 'systemctl', 'is-active', 'cadfleet-worker').out).not.toBe('active');
    const switched = ssh('worker-2', switchScript('worker', e2e.version));
    expect(switched.code, switched.out).toBe(0);
    expect(ssh('worker-2', 'systemctl is-enabled cadfleet-worker; systemctl is-active cadfleet-worker').out.split('\n')).toEqual(['enabled', 'active']);
    expect(ssh('worker-2', 'cmp', '/etc/systemd/system/cadfleet-worker.service', `/opt/cadfleet/releases/${e2e.version}/systemd/cadfleet-worker.service`).code).toBe(0);

    const all = await cli('exec', '--env', 'local', 'api', '--', 'hostname');
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.trim().split('\n').sort()).toEqual([`${id('api-1')} | ${id('api-1')}`, `${id('api-2')} | ${id('api-2')}`]);

    // Something in both workers' journals: the SSH logins this test just made.
    expect((await cli('exec', '--env', 'local', 'worker', '--', 'true')).code).toBe(0);
    const logs = await cli('logs', '--env', 'local', 'worker', '--unit', 'ssh.service', '--since', '10 min ago');
    expect(logs.code, logs.stderr).toBe(0);
    const prefixes = new Set(logs.stdout.trim().split('\n').map((l) => l.split(' | ')[0]!.trim()));
    expect([...prefixes].sort()).toEqual([id('worker-1'), id('worker-2')]);

    const healthy = await cli('status', '--env', 'local', '--json');
    const report = JSON.parse(healthy.stdout) as { hosts: Array<{ host: string; role: string; ok: boolean; reachable: boolean; release: string }> };
    expect(report.hosts).toHaveLength(fleet.hosts.length);
    for (const h of report.hosts) expect(h, h.host).toMatchObject({ ok: true, release: e2e.version });

    expect((await cli('local', 'down', 'streamer-1')).code).toBe(0);
    const withDown = await cli('status', '--env', 'local', '--json');
    expect(withDown.code).toBe(1);
    expect((JSON.parse(withDown.stdout) as typeof report).hosts.find((h) => h.host === id('streamer-1'))).toMatchObject({ ok: false, reachable: false });
    const partly = await cli('exec', '--env', 'local', 'streamer', '--', 'hostname');
    expect(partly.code).toBe(1);
    expect(partly.stdout.trim()).toBe(`${id('streamer-2')} | ${id('streamer-2')}`);
    expect(partly.stderr).toMatch(new RegExp(`${id('streamer-1')} \\(${ipOf('streamer-1').replaceAll('.', '\\.')}\\) did not answer: .*is it running\\?`));
    const down = await cli('ssh', '--env', 'local', 'streamer/1', '--', 'true');
    expect(down.code).toBe(255);
    expect(down.stderr).toMatch(new RegExp(`${id('streamer-1')} \\(${ipOf('streamer-1').replaceAll('.', '\\.')}\\) did not answer SSH`));
    // An AWS environment that was never planned here: the CLI says what to run first.
    expect((await cli('ssh', '--env', 'staging', 'api', '--', 'true')).stderr).toMatch(/staging .*run cadfleet (plan|apply) --env staging/);

    const deploy = await cli('deploy', '--env', 'local');
    expect(deploy.code).toBe(1);
    expect(deploy.stderr).toMatch(new RegExp(`FAILED on ${id('streamer-1')}, task ".*\\(host unreachable\\)": .*Connection refused`));
    expect(deploy.stderr).toMatch(/the whole Ansible output is in .*last-site\.log/);
  }, 600_000);

  it('scales out through cloud-init: a new worker boots from the base image with the stacks\' user-data, installs the release the pointer names and takes jobs, with no deploy', async () => {
    const current = path.basename(ssh('worker-1', 'readlink', '-f', '/opt/cadfleet/current').out);
    expect(current).toMatch(/^\d+\.\d+\.\d+-/);
    const siteLog = path.join(root, 'deploy/last-site.log');
    const ansibleRan = (): number => Math.max(...fs.readdirSync(path.join(root, 'deploy')).filter((f) => f.endsWith('.log')).map((f) => fs.statSync(path.join(root, 'deploy', f)).mtimeMs));
    const before = ansibleRan();
    expect(fs.existsSync(siteLog)).toBe(true);

    const r = await cli('local', 'scale-out', 'worker', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { host: { name: string; hostname: string; ip: string }; release: string; seconds: number; served: Record<string, number>; bootLog: string[] };
    console.log(`scale-out: ${report.host.hostname} healthy through cloud-init in ${report.seconds.toFixed(1)} s (the command: see the test's time)`);
    expect(report).toMatchObject({ host: { name: 'worker-3', hostname: id('worker-3') }, release: current });
    // The boot script asked the metadata service (IMDSv2: a token first) for its address, its
    // instance id and its role's credentials, and SSM for the settings: nothing came from Ansible.
    expect(report.served['imds token']).toBeGreaterThan(0);
    expect(report.served['imds local-ipv4']).toBeGreaterThan(0);
    expect(report.served['imds instance-id']).toBeGreaterThan(0);
    expect(report.served['imds iam/security-credentials/']).toBeGreaterThan(0);
    expect(report.served['ssm GetParameter /cadfleet/local/app.env']).toBe(1);
    const bootLog = report.bootLog.join('\n');
    expect(bootLog).toContain(`configuring this host with release ${current}'s host.yml`);
    expect(bootLog).toContain(`done: release ${current}, worker configured`);
    // The AWS CLI and Ansible came with the image: the boot installed no package.
    expect(bootLog).not.toContain('installing the AWS CLI');
    expect(ansibleRan()).toBe(before);

    const on3 = async (...command: string[]) => cli('ssh', '--env', 'local', 'worker/3', '--', ...command);
    expect((await on3('hostname')).stdout.trim()).toBe(id('worker-3'));
    expect((await on3('readlink', '-f', '/opt/cadfleet/current')).stdout.trim()).toBe(`/opt/cadfleet/releases/${current}`);
    expect((await on3('test', '-e', '/var/log/apt/history.log', '&&', 'grep', '-c', 'Start-Date', '/var/log/apt/history.log', '||', 'echo', '0')).stdout.trim()).toBe(
      ssh('worker-1', 'sh', '-c', '"grep -c Start-Date /var/log/apt/history.log 2>/dev/null || echo 0"').out,
    );

    // It takes work: with the two deployed workers stopped, a new upload is converted on worker-3.
    for (const w of ['worker-1', 'worker-2']) expect(ssh(w, 'sudo', 'systemctl', 'stop', 'cadfleet-worker').code).toBe(0);
    try {
      const upload = lb('POST', '/api/v1/models?reuse=false', e2e.key, ['-F', `file=@${cax('as1-oc-214.stp')}`]);
      expect(upload.status, upload.body).toBe(201);
      const modelId = (JSON.parse(upload.body) as { id: string }).id;
      let model: { state: string; workerHost?: string } = { state: 'queued' };
      for (let i = 0; i < 120 && !['ready', 'failed'].includes(model.state); i++) {
        await new Promise((res) => setTimeout(res, 1000));
        model = JSON.parse(lb('GET', `/api/v1/models/${modelId}`, e2e.key).body) as typeof model;
      }
      expect(model).toMatchObject({ state: 'ready', workerHost: id('worker-3') });
    } finally {
      for (const w of ['worker-1', 'worker-2']) ssh(w, 'sudo', 'systemctl', 'start', 'cadfleet-worker');
    }
    const status = JSON.parse((await cli('status', '--env', 'local', '--json')).stdout) as { hosts: Array<{ host: string; ok: boolean; release: string }> };
    expect(status.hosts.find((h) => h.host === id('worker-3'))).toMatchObject({ ok: true, release: current });

    // And scales in again: held by its group's termination hook, the host drains and completes the
    // lifecycle action (its watcher, from host.yml), then its disk and network go.
    const scaleIn = await cli('local', 'scale-in', 'worker', '--json');
    expect(scaleIn.code, scaleIn.stderr).toBe(0);
    expect(JSON.parse(scaleIn.stdout)).toMatchObject({ host: 'worker-3', lifecycle: { hook: 'drain', result: 'CONTINUE' } });
    expect(links()).not.toContain(`${NAME}vwk-3`);
    expect(fs.existsSync(path.join(root, 'hosts', 'worker-3'))).toBe(false);
    // A host deployed with site.yml has no group: it is stopped without a lifecycle action.
    const pushed = await cli('local', 'scale-in', 'worker', '--json');
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(JSON.parse(pushed.stdout)).toMatchObject({ host: 'worker-2', lifecycle: null });
    const last = await cli('local', 'scale-in', 'worker');
    expect(last.code).toBe(1);
    expect(last.stderr).toMatch(/role worker has one host left/);
  }, 600_000);

  awsWayScenarios();

  it('is destroyed without a trace', async () => {
    const r = await cli('local', 'destroy');
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(root)).toBe(false);
    expect(links()).not.toMatch(new RegExp(`\\b${NAME}`));
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toMatch(new RegExp(`\\b${NAME}-`));
  }, 120_000);
});
