// The fleet booted the AWS way (issue: one boot path): every host but the data host replaced by
// one that cloud-init boots with the stacks' user-data and that configures itself with its
// release's host.yml, then the LB host replaced alone while a viewer streams. Runs on the
// suite's fleet, after the scenarios that deploy it with site.yml.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { expect, it } from 'vitest';
import { startLocalAws, type AwsWayBoot, type UpAwsWayReport } from '../../cli/src/local/cloud-boot';
import { defaultContext, openFleet } from '../../cli/src/local/local-fleet';
import type { ScaleInReport } from '../../cli/src/local/scale-out';
import { systemRunner } from '../../cli/src/local/exec';
import { ensureServerCert, pkiPaths } from '../../cli/src/local/pki';
import { tempDir } from '../helpers/convert';
import { startPebble } from '../helpers/pebble';
import { cax } from '../helpers/samples';
import { decoderReady, openStream } from '../streamer/client';
import { parseFleetSpec, planFleet } from '../../cli/src/local/fleet';
import { NAME, cli, e2e, fleet, id, lbAddress, root, ssh, state } from './context';
import { caPem, fullyRouted, psql, request, resumeThroughLb, settle, slowStream, until, upload } from './reliability';

/** The fleet's hosts but the data host, as they are now (the scale-out scenario before leaves one worker). */
const appAndLbNow = () => planFleet(parseFleetSpec(JSON.parse(fs.readFileSync(path.join(root, 'fleet.json'), 'utf8')))).hosts.filter((h) => h.role !== 'data');
/** When any playbook last ran from this machine (its log in the fleet's deploy folder). */
const ansibleRan = (): number => Math.max(...fs.readdirSync(path.join(root, 'deploy')).filter((f) => f.endsWith('.log')).map((f) => fs.statSync(path.join(root, 'deploy', f)).mtimeMs));

export function awsWayScenarios(): void {
  it('boots the AWS way: a host of each role replaced by a fresh one that configures itself at boot; it serves with no playbook run against it', async () => {
    const current = path.basename(ssh('worker-1', 'readlink', '-f', '/opt/cadfleet/current').out);
    // One host of each role (the fleet then runs both kinds side by side, as an AWS group does
    // while it replaces instances): each role's boot path is proven once, and a fresh host costs
    // this 2-core machine about 50 s of both cores (the boots below run side by side).
    const replaced = ['lb', 'api-1', 'worker-1', 'streamer-1'];
    const appAndLb = appAndLbNow().filter((h) => replaced.includes(h.name));
    const before = ansibleRan();
    const r = await cli('local', 'replace', ...replaced, '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as AwsWayBoot;
    console.log(`boot the AWS way: ${report.hosts.map((h) => `${h.name} ${h.seconds.toFixed(1)} s`).join(', ')}`);
    expect(report.release).toBe(current);
    expect(report.hosts.map((h) => h.name).sort()).toEqual(appAndLb.map((h) => h.name).sort());
    // What they asked of "AWS": their settings (each host once), the LB its certificate.
    expect(report.served['ssm GetParameter /cadfleet/local/app.env']).toBe(appAndLb.length);
    expect(report.served['ssm GetParameter /cadfleet/local/lb/tls.pem']).toBe(1);
    // The stream-token secret from "Secrets Manager", by api and streamer hosts only (current and
    // previous, each once), not in the settings parameter: the session opened below proves they agree.
    const readers = appAndLb.filter((h) => h.role === 'api' || h.role === 'streamer').length;
    expect(report.served['secretsmanager GetSecretValue cadfleet/local/stream-token']).toBe(2 * readers);
    expect(Object.keys(report.served).filter((k) => k.startsWith('secretsmanager') && !k.endsWith('GetSecretValue cadfleet/local/stream-token'))).toEqual([]);
    // How the test knows that no site playbook ran against them: no playbook of this machine ran
    // (its logs are untouched), cloud-init was on, and each host's own boot ran host.yml and marked it done.
    expect(ansibleRan()).toBe(before);
    for (const h of report.hosts) {
      const bootLog = h.bootLog.join('\n');
      expect(bootLog, h.name).toContain(`configuring this host with release ${current}'s host.yml`);
      expect(bootLog, h.name).toContain(`done: release ${current}, ${h.role} configured`);
      expect(bootLog, h.name).not.toContain('installing the AWS CLI and Ansible');
      expect(ssh(h.name, 'test', '-e', '/etc/cloud/cloud-init.disabled').code, h.name).not.toBe(0);
      expect(ssh(h.name, 'sudo', 'test', '-f', '/var/lib/cadfleet-boot/done').code, h.name).toBe(0);
    }
    for (const unit of ['nginx', 'cadfleet-lb-sync', 'nftables']) expect(ssh('lb', 'systemctl', 'is-active', unit).out, unit).toBe('active');
    await until('the LB routing to every api and streamer', fullyRouted, 60);

    // It serves: an upload through the LB (its certificate from "SSM", checked against the fleet
    // CA), converted on a worker host, streamed from the streamer the api named; /status lists every node.
    const up = await upload('aws-way.stp', fs.readFileSync(cax('as1-oc-214.stp')));
    expect(up.status, up.body.toString()).toBe(201);
    const model = (await settle([up.json.id!], 120)).get(up.json.id!)!;
    expect(model).toMatchObject({ state: 'ready', stats: { parts: 18 } });
    expect(appAndLb.filter((h) => h.role === 'worker').map((h) => id(h.name))).toContain(model.workerHost);
    const opened = await request('POST', `/api/v1/models/${model.id}/sessions`, { body: '{}', headers: { 'content-type': 'application/json' } });
    expect(opened.status, opened.body.toString()).toBe(201);
    const session = opened.json as unknown as { streamUrl: string; node: string };
    expect([id('streamer-1'), id('streamer-2')]).toContain(session.node);
    await decoderReady;
    const stream = openStream(`wss://${lbAddress()}${session.streamUrl}`, { ca: caPem() });
    expect(await stream.closed).toEqual({ code: 1000, reason: 'complete' });
    expect(stream.manifest?.node).toBe(session.node);
    const status = (await request('GET', '/status?format=json')).json as unknown as { nodes: Array<{ id: string; role: string; version: string }> };
    expect(status.nodes.map((n) => `${n.id}:${n.role}:${n.version}`).sort()).toEqual(
      appAndLbNow().filter((h) => h.role !== 'lb').map((h) => `${id(h.name)}:${h.role}:${current}`).sort(),
    );

    // One path: site.yml pushed over these hosts finds nothing to change, as the same roles with
    // the same values configured them (the deploy builds the working tree's release: the one they run).
    // --full runs every role on the fresh hosts and the data host (its record would leave it out):
    // the roles' own idempotence, a second run of each changing nothing, is checked here.
    expect(current).toBe(e2e.version);
    const deploy = await cli('deploy', '--env', 'local', '--full', '--limit', ['data', ...replaced].map(id).join(','), '--json');
    expect(deploy.code, deploy.stderr).toBe(0);
    const pushed = JSON.parse(deploy.stdout) as { changed: number; recap: Array<{ host: string; changed: number }> };
    const pushLog = fs.readFileSync(path.join(root, 'deploy/last-site.log'), 'utf8');
    expect(pushed.recap.filter((h) => h.changed > 0), pushLog.split('\n').filter((l) => l.startsWith('changed:') || l.startsWith('TASK')).join('\n').slice(-3000)).toEqual([]);
    // The data host's roles ran (not left out by its record), as did the others'.
    for (const task of ['postgresql_local : ', 'redis_local : ', 's3_local : ', 'nginx_lb : ', 'cadfleet_service : ']) expect(pushLog, task).toContain(`TASK [${task}`);
  }, 900_000);

  it('comes up the AWS way with `local up --boot cloud-init`: the data host deployed alone, a missing host booted through cloud-init, the others left alone', async () => {
    expect((await cli('local', 'down', 'streamer-2')).code).toBe(0);
    fs.rmSync(path.join(root, 'hosts', 'streamer-2'), { recursive: true, force: true });
    const r = await cli('local', 'up', '--boot', 'cloud-init', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as UpAwsWayReport;
    expect(report.boot!.hosts.map((h) => h.name)).toEqual(['streamer-2']);
    expect(report.alreadyThere.sort()).toEqual(appAndLbNow().map((h) => h.name).filter((n) => n !== 'streamer-2').sort());
    expect(report.data).toMatchObject({ version: e2e.version, changed: 0 });
    // The one playbook it ran from here is the data host's.
    const recap = fs.readFileSync(path.join(root, 'deploy/last-site.log'), 'utf8').split('PLAY RECAP')[1]!;
    expect([...recap.matchAll(/^(\S+)\s+: ok=/gm)].map((m) => m[1])).toEqual([id('data')]);
    await until('the LB routing to every api and streamer', fullyRouted, 60);
  }, 600_000);

  it('upgrades a fleet booted the AWS way, the LB host included: the gate sees each api and streamer back in the routing of the LB that configured itself', async () => {
    const version = `${e2e.version}-aws`;
    const r = await cli('upgrade', '--env', 'local', '--version', version, '--json');
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse((await cli('status', '--env', 'local', '--json')).stdout) as { hosts: Array<{ host: string; role: string; release: string; ok: boolean }> };
    for (const h of status.hosts.filter((x) => x.role !== 'data')) expect(h, h.host).toMatchObject({ release: version, ok: true });
    await until('the LB routing to every api and streamer', fullyRouted, 60);
  }, 600_000);

  it('replaces the LB host the AWS way while a viewer streams: the fresh one serves at the same address with its certificate, and the session resumes', async () => {
    const opened = await request('POST', `/api/v1/models/${e2e.modelId}/sessions`, { body: '{}', headers: { 'content-type': 'application/json' } });
    expect(opened.status, opened.body.toString()).toBe(201);
    const session = opened.json as unknown as { sessionId: string; streamUrl: string };
    const first = slowStream(session.streamUrl, [], 800);
    await first.waitFor('two frames', () => first.frames.length >= 2, 30_000);
    const r = await cli('local', 'replace', 'lb', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as AwsWayBoot;
    console.log(`LB replaced the AWS way: healthy in ${report.hosts[0]!.seconds.toFixed(1)} s`);
    await until('the new LB routing to every api and streamer', fullyRouted, 60);
    // The stopped LB closed the viewer's connection (an orderly stop, unlike a crash).
    await first.waitFor('the old connection closed', () => first.close !== undefined, 60_000);
    await resumeThroughLb(session.sessionId, first.completeParts());
  }, 600_000);

  it('drains on scale-in as on AWS: a worker held by its termination hook finishes the conversions it runs, then completes the lifecycle action; a streamer\'s viewer resumes elsewhere', async () => {
    const registry = async (): Promise<Array<{ id: string; extra: Record<string, string> }>> =>
      ((await request('GET', '/status?format=json')).json as unknown as { nodes?: Array<{ id: string; extra: Record<string, string> }> }).nodes ?? [];
    // A second worker, booted the AWS way as on a fresh account: its settings parameter appears
    // only 40 s after the boot began and after a whole boot run gave up on it (restarted by
    // systemd); the host keeps trying and becomes ready by itself.
    const settingsAfter = 40;
    const out = await cli('local', 'scale-out', 'worker', '--settings-after', String(settingsAfter), '--json');
    expect(out.code, out.stderr).toBe(0);
    const scaled = JSON.parse(out.stdout) as { host: { name: string; hostname: string }; seconds: number; served: Record<string, number>; bootLog: string[] };
    const added = scaled.host;
    console.log(`settings ${settingsAfter} s late: ${added.hostname} ready ${scaled.seconds.toFixed(1)} s after its boot began`);
    expect(scaled.seconds).toBeGreaterThan(settingsAfter);
    expect(scaled.served['ssm GetParameter /cadfleet/local/app.env (not there yet)']).toBeGreaterThan(3);
    expect(scaled.served['ssm GetParameter /cadfleet/local/app.env']).toBe(1);
    expect(scaled.bootLog.join('\n')).toContain('cannot read SSM parameter /cadfleet/local/app.env (not there yet, or not allowed); trying again in 5 s');
    expect(ssh('worker-1', 'sudo', 'systemctl', 'stop', 'cadfleet-worker').code).toBe(0);
    let ids: string[] = [];
    let drainedAt = 0;
    let drained: ScaleInReport;
    try {
      const files = Array.from({ length: 6 }, (_, i) => ({ name: `drain-${i}.stp`, content: fs.readFileSync(cax(i % 2 ? 'as1-oc-214.stp' : 'dm1-oc-214.stp')) }));
      const answers = await Promise.all(files.map((f) => upload(f.name, f.content)));
      expect(answers.map((a) => a.status)).toEqual(files.map(() => 201));
      ids = answers.map((a) => a.json.id!);
      await until(`${added.hostname} converting`, async () => Number((await registry()).find((n) => n.id === added.hostname)?.extra.activeJobs ?? 0) > 0, 60);
      ssh('worker-1', 'sudo', 'systemctl', 'start', 'cadfleet-worker');
      drainedAt = Date.now();
      const r = await cli('local', 'scale-in', 'worker', '--json');
      expect(r.code, r.stderr).toBe(0);
      drained = JSON.parse(r.stdout) as ScaleInReport;
    } finally {
      ssh('worker-1', 'sudo', 'systemctl', 'start', 'cadfleet-worker');
    }
    console.log(`drain on scale-in: ${added.hostname} completed its lifecycle action ${drained.lifecycle?.seconds.toFixed(1)} s after the hook held it`);
    expect(drained).toMatchObject({ host: added.name, lifecycle: { hook: 'drain', result: 'CONTINUE' } });
    // Nothing lost: every model ready, converted once; what the drained worker had started, it
    // finished itself (no attempt of it left behind for another worker to take over).
    const states = await settle(ids, 240);
    for (const m of ids) expect(states.get(m)?.state, m).toBe('ready');
    const list = ids.map((m) => `'${m}'`).join(',');
    const attempts = psql('cadfleet', ['-tAF', ' ', '-c', `SELECT worker_host, coalesce(outcome, 'none'), extract(epoch from finished_at) * 1000 FROM conversion_attempts WHERE model_id IN (${list})`]);
    expect(attempts.code, attempts.err).toBe(0);
    const rows = attempts.out.trim().split('\n').map((l) => l.split(' ')).map(([host, outcome, finished]) => ({ host: host!, outcome: outcome!, finished: Number(finished) }));
    expect(rows.filter((a) => a.outcome === 'ready')).toHaveLength(ids.length);
    const byDrained = rows.filter((a) => a.host === added.hostname);
    expect(byDrained.filter((a) => a.outcome !== 'ready'), 'attempts the drained worker left unfinished').toEqual([]);
    expect(byDrained.some((a) => a.finished > drainedAt), 'a conversion the drained worker finished after the hook held it').toBe(true);

    // A streamer with a viewer on it: the viewer is told to resume, and does, on the other one.
    const streamers = appAndLbNow().filter((h) => h.role === 'streamer');
    const last = streamers.at(-1)!;
    let opened: Awaited<ReturnType<typeof request>> | undefined;
    await until(`a session on ${last.hostname}`, async () => {
      opened = await request('POST', `/api/v1/models/${e2e.modelId}/sessions`, { body: '{}', headers: { 'content-type': 'application/json' } });
      return opened.status === 201 && (opened.json as unknown as { node: string }).node === last.hostname;
    }, 60);
    const session = opened!.json as unknown as { sessionId: string; streamUrl: string };
    const viewer = slowStream(session.streamUrl, [], 800);
    await viewer.waitFor('two frames', () => viewer.frames.length >= 2, 30_000);
    const s = await cli('local', 'scale-in', 'streamer', '--json');
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout) as ScaleInReport).toMatchObject({ host: last.name, lifecycle: { hook: 'drain', result: 'CONTINUE' } });
    await viewer.waitFor('the drained streamer closing the connection', () => viewer.close !== undefined, 60_000);
    const rest = await resumeThroughLb(session.sessionId, viewer.completeParts());
    expect(rest.manifest?.node).not.toBe(last.hostname);
  }, 900_000);

  it('reports a host whose service stopped answering unhealthy to its group, once, as the stand-in records', async () => {
    const ctx = { ...defaultContext(systemRunner, () => undefined), stateDir: state };
    const { fleet: now, paths } = openFleet(ctx, NAME);
    const standIn = await startLocalAws(ctx, now, paths);
    // A host that booted the AWS way: its lifecycle watcher reports to the group.
    const frozen = 'api-1';
    try {
      // Frozen, not stopped: systemd sees a running unit, its /healthz answers nothing.
      expect(ssh(frozen, 'sudo', 'systemctl', 'kill', '--signal=SIGSTOP', 'cadfleet-api').code).toBe(0);
      const started = Date.now();
      const call = await standIn.waitForCall((c) => c.action === 'SetInstanceHealth' && c.from === id(frozen), 120_000);
      console.log(`unhealthy report: ${id(frozen)} after ${((Date.now() - started) / 1000).toFixed(1)} s of a frozen api (threshold 20 s locally, 600 s on AWS)`);
      expect(call.params).toMatchObject({ InstanceId: id(frozen), HealthStatus: 'Unhealthy' });
      await new Promise((r) => setTimeout(r, 12_000));
      expect(standIn.autoscalingCalls.filter((c) => c.action === 'SetInstanceHealth').map((c) => c.from)).toEqual([id(frozen)]);
    } finally {
      ssh(frozen, 'sudo', 'systemctl', 'kill', '--signal=SIGCONT', 'cadfleet-api');
      await standIn.close();
    }
    expect(ssh(frozen, 'sudo', 'journalctl', '-u', 'cadfleet-lifecycle', '--no-pager', '-o', 'cat').out).toContain(`reporting ${id(frozen)} unhealthy`);
    // Thawed, it heartbeats again and the LB routes to it (the fleet has one streamer left by now).
    await until(`the LB routing to ${frozen} again`, () => ssh('lb', 'cat', '/etc/nginx/cadfleet/api-upstream.conf').out.includes(`${fleet.hosts.find((h) => h.name === frozen)!.ip}:8080`), 60);
  }, 300_000);
  it('gets the LB\'s certificate by ACME from a local pebble (HTTP-01 answered by its own nginx), serves it, and renews it', async () => {
    const pki = pkiPaths(root);
    const own = await ensureServerCert(systemRunner, pki, `${NAME}-pebble`, { dns: [], ip: [fleet.gateway] });
    const pebble = await startPebble({ address: fleet.gateway, resolveTo: lbAddress(), cert: own.cert, key: own.key, ca: fs.readFileSync(pki.caCert, 'utf8'), dir: tempDir('cadfleet-pebble-') });
    const domain = 'lb.cadfleet.test';
    /** The certificate the LB serves for the name, checked against pebble's root (chain and name). */
    const served = async (): Promise<{ serial: string; issuer: string }> => {
      const issuerRoot = await pebble.root();
      return new Promise((resolve, reject) => {
        const socket = tls.connect({ host: lbAddress(), port: 443, servername: domain, ca: issuerRoot, timeout: 10_000 }, () => {
          const cert = socket.getPeerCertificate();
          socket.end();
          resolve({ serial: cert.serialNumber, issuer: String(cert.issuer.CN ?? '') });
        });
        socket.once('error', reject);
      });
    };
    try {
      const r = await cli('local', 'replace', 'lb', '--acme-domain', domain, '--acme-server', pebble.directory, '--acme-server-ca', pki.caCert, '--json');
      expect(r.code, r.stderr).toBe(0);
      const first = await served();
      expect(first.issuer).toMatch(/^Pebble Intermediate CA/);
      expect(ssh('lb', 'test', '-e', '/etc/nginx/cadfleet/tls/self-signed').code).not.toBe(0);
      expect(ssh('lb', 'systemctl', 'is-active', 'cadfleet-acme.timer').out).toBe('active');
      const status = JSON.parse((await cli('status', '--env', 'local', '--json')).stdout) as { hosts: Array<{ role: string; warnings: string[] }> };
      expect(status.hosts.find((h) => h.role === 'lb')!.warnings).toEqual([]);

      // Renewal: what the timer's service runs, told to renew now.
      const renew = await cli('ssh', '--env', 'local', 'lb', '--', 'sudo', 'CADFLEET_ACME_RENEW_DAYS=100000', '/usr/local/lib/cadfleet/cadfleet-acme');
      expect(renew.code, `${renew.stdout}${renew.stderr}`).toBe(0);
      expect(ssh('lb', 'systemctl', 'show', '-p', 'ExecStart', 'cadfleet-acme.service').out).toContain('/usr/local/lib/cadfleet/cadfleet-acme');
      let second = await served();
      for (let i = 0; i < 20 && second.serial === first.serial; i++) {
        await new Promise((res) => setTimeout(res, 500));
        second = await served();
      }
      expect(second.serial).not.toBe(first.serial);
      expect(second.issuer).toMatch(/^Pebble Intermediate CA/);
      console.log(`ACME: ${domain} issued by pebble (serial ${first.serial}), renewed (serial ${second.serial}), served by the LB`);
    } finally {
      await pebble.close();
    }
  }, 600_000);

}
