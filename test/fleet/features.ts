// What users of a conversion service expect, on the fleet: an upload through the LB with target
// formats, webhooks delivered from the worker hosts to a receiver outside the fleet, the event
// stream through the LB, and the viewer kept current by it in Chromium (no polling); hostile
// webhook URLs and a target on a failed model refused.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { expect, it } from 'vitest';
import { verifySignature } from '../../app/src/shared/webhooks/sign';
import { assembly } from '../helpers/assembly';
import { convertSample, tempDir } from '../helpers/convert';
import { cax } from '../helpers/samples';
import { openStream } from '../streamer/client';
import { cli, e2e, fleet, ipOf, lbAddress, ssh } from './context';
import { caPem, request, settle, until, upload } from './reliability';
import { report } from './reliability-report';

const CHROMIUM = process.env.CADFLEET_CHROMIUM ?? '/usr/bin/chromium';
/** The page's document, as the functions run inside Chromium see it (this file is compiled without the DOM library). */
declare const document: { body: { dataset: Record<string, string | undefined> } };
const json = { 'content-type': 'application/json' };

interface Delivery {
  from: string;
  eventId: string;
  signed: boolean;
  type: string;
  modelId?: string;
  at: number;
}

/** A webhook receiver on the fleet's gateway (this machine, as the hosts see it). */
async function receiver(secret: () => string): Promise<{ url: string; got: Delivery[]; close(): void }> {
  const got: Delivery[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = JSON.parse(raw) as { type: string; data: { model?: { id: string } } };
      got.push({
        from: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
        eventId: String(req.headers['cadfleet-event-id']),
        signed: verifySignature(secret(), raw, req.headers['cadfleet-signature'] as string),
        type: body.type,
        modelId: body.data.model?.id,
        at: Date.now(),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, fleet.gateway, r));
  return { url: `http://${fleet.gateway}:${(server.address() as AddressInfo).port}/hooks`, got, close: () => server.close() };
}

/** Server-Sent Events through the LB until `done`; each event with the time it arrived. */
function followEvents(done: (events: Array<{ type: string; modelId?: string; at: number }>) => boolean, limitMs: number): Promise<Array<{ type: string; modelId?: string; at: number }>> {
  return new Promise((resolve, reject) => {
    const events: Array<{ type: string; modelId?: string; at: number }> = [];
    const req = https.request({ host: lbAddress(), port: 443, path: '/api/v1/events', ca: caPem(), agent: false, headers: { authorization: `Bearer ${e2e.key}`, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`events answered ${res.statusCode}`));
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        let cut: number;
        while ((cut = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, cut);
          text = text.slice(cut + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (!data) continue;
          const body = JSON.parse(data.slice(6)) as { type: string; data: { model?: { id: string } } };
          events.push({ type: body.type, modelId: body.data.model?.id, at: Date.now() });
        }
        if (done(events)) {
          req.destroy();
          resolve(events);
        }
      });
    });
    req.on('error', (err) => (events.length && done(events) ? resolve(events) : reject(err)));
    setTimeout(() => {
      req.destroy();
      resolve(events);
    }, limitMs);
    req.end();
  });
}

export function featureScenarios(): void {
  it('converts an upload through the LB with target formats, notifies a webhook from the worker hosts, and streams the events through the LB', async () => {
    let secret = '';
    const hooks = await receiver(() => secret);
    try {
      const created = await request('POST', '/api/v1/webhooks', { body: JSON.stringify({ url: hooks.url }), headers: json });
      expect(created.status, created.body.toString()).toBe(201);
      secret = String((created.json as Record<string, unknown>).secret);

      // The event stream opens first; the upload's whole life must come through it.
      let modelId = '';
      const streamed = followEvents((events) => events.some((e) => e.type === 'model.ready' && e.modelId === modelId && modelId !== ''), 120_000);
      await new Promise((r) => setTimeout(r, 500));
      const up = await upload('targets.stp', fs.readFileSync(cax('as1-oc-214.stp')), { query: '?targets=stl,step' });
      expect(up.status, up.body.toString()).toBe(201);
      modelId = up.json.id!;
      const events = (await streamed).filter((e) => e.modelId === modelId);
      expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['model.queued', 'model.converting', 'model.ready']));
      // Live: converting came before ready, not all at the end.
      const converting = events.find((e) => e.type === 'model.converting')!;
      const ready = events.find((e) => e.type === 'model.ready')!;
      expect(converting.at).toBeLessThanOrEqual(ready.at);

      // Webhooks: every state change, signed, sent by a worker host.
      await until('the webhook deliveries of the model', () => ['model.queued', 'model.converting', 'model.ready'].every((t) => hooks.got.some((g) => g.modelId === modelId && g.type === t)), 60);
      const mine = hooks.got.filter((g) => g.modelId === modelId);
      const workers = fleet.hosts.filter((h) => h.role === 'worker').map((h) => h.ip);
      expect(mine.every((g) => g.signed)).toBe(true);
      expect(mine.every((g) => workers.includes(g.from)), JSON.stringify(mine.map((g) => g.from))).toBe(true);

      // The targets, ready and downloadable by presigned URL.
      let exports: Array<{ format: string; state: string; triangles?: number; error?: string }> = [];
      await until('the exports ready', async () => {
        const r = await request('GET', `/api/v1/models/${modelId}/exports`);
        exports = ((r.json as unknown as { exports?: typeof exports }).exports ?? []);
        return exports.length === 2 && exports.every((e) => e.state === 'ready' || e.state === 'failed');
      }, 120);
      expect(exports.map((e) => `${e.format} ${e.state} ${e.error ?? ''}`.trim()).sort()).toEqual(['step ready', 'stl ready']);
      const model = (await request('GET', `/api/v1/models/${modelId}`)).json as unknown as { stats: { triangles: number } };
      expect(exports.find((e) => e.format === 'stl')!.triangles).toBe(model.stats.triangles);
      const stl = (await request('GET', `/api/v1/models/${modelId}/exports/stl`)).json as unknown as { url: string };
      const file = await new Promise<Buffer>((resolve, reject) =>
        https.get(stl.url, { ca: caPem() }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`download answered ${res.statusCode}`))));
        }).on('error', reject),
      );
      expect(file.readUInt32LE(80)).toBe(model.stats.triangles);
      console.log(`targets: ${JSON.stringify(exports)}; webhook deliveries ${mine.length} from ${[...new Set(mine.map((g) => g.from))].join(', ')}; events through the LB ${events.length}`);
      report.access.push({
        check: 'an upload through the LB with targets=stl,step, a webhook receiver outside the fleet, the event stream through the LB',
        refused: `exports ready (STL with the model's ${model.stats.triangles} triangles, downloaded by presigned URL; STEP); ${mine.length} signed deliveries, all from worker hosts; ${events.length} events streamed live`,
      });
    } finally {
      hooks.close();
    }
  }, 300_000);

  it('keeps the viewer current through the event stream, in Chromium through the LB, without polling', async () => {
    const browser = await chromium.launchPersistentContext(path.join(tempDir('cadfleet-fleet-chromium-'), 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      ignoreHTTPSErrors: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      await page.goto(`https://${lbAddress()}/`);
      await page.fill('#key', e2e.key);
      await page.click('#key-form button[type=submit]');
      await page.waitForFunction(() => document.body.dataset.eventStream === 'open', undefined, { timeout: 30_000 });
      const listings: string[] = [];
      page.on('request', (r) => {
        if (new URL(r.url()).pathname === '/api/v1/models' && r.method() === 'GET') listings.push(r.url());
      });
      const sample = path.join(tempDir('cadfleet-fleet-viewer-'), 'viewer-live.stp');
      fs.copyFileSync(cax('dm1-oc-214.stp'), sample);
      await page.setInputFiles('#file', sample);
      await page.click('#upload-form button[type=submit]');
      await page.locator('#models li[data-state=ready]', { hasText: 'viewer-live.stp' }).waitFor({ timeout: 120_000 });
      expect(listings.length, listings.join('\n')).toBeLessThanOrEqual(1);
      expect(Number(await page.evaluate(() => document.body.dataset.events))).toBeGreaterThanOrEqual(3);
    } finally {
      await browser.close();
    }
  }, 240_000);

  it('refuses hostile webhook URLs and a target on a failed model', async () => {
    const hostile = [
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      `http://${ipOf('data')}:6379/`,
      `https://${ipOf('api-1')}:8080/`,
      'http://127.0.0.1:22/',
      'http://[::1]/',
      'http://[::ffff:169.254.169.254]/',
      'gopher://example.com/',
    ];
    for (const url of hostile) {
      const r = await request('POST', '/api/v1/webhooks', { body: JSON.stringify({ url }), headers: json });
      expect(r.status, url).toBe(400);
      expect(r.json.code, url).toBe('invalid_webhook_url');
    }
    const bad = await upload('broken.stp', Buffer.from('ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\n#1=GARBAGE;\nENDSEC;\nEND-ISO-10303-21;\n'), { query: '?targets=stl' });
    expect(bad.status).toBe(201);
    await until('the broken model failing', async () => (await request('GET', `/api/v1/models/${bad.json.id}`)).json.state === 'failed', 60);
    const asked = await request('POST', `/api/v1/models/${bad.json.id}/exports`, { body: JSON.stringify({ targets: ['stl'] }), headers: json });
    expect(asked.status).toBe(409);
    expect(asked.json.code).toBe('model_failed');
    const waited = (await request('GET', `/api/v1/models/${bad.json.id}/exports/stl`)).json;
    expect(waited).toMatchObject({ state: 'failed', errorCode: 'model-failed' });
    report.access.push({ check: `webhook URLs at the metadata service, the fleet's Redis and api, loopback, IPv6 loopback, a mapped link-local address, a gopher URL (${hostile.length})`, refused: '400 invalid_webhook_url each' });
    report.access.push({ check: 'an export asked of a failed model', refused: '409 model_failed; the target asked with the upload failed with it (model-failed)' });
  }, 180_000);

  it('lists the models through the LB with cadfleet models list, page after page, with the API\'s filters; a bad flag or key says what to do', async () => {
    type Listed = { models: Array<{ id: string }> };
    const all = (await request('GET', '/api/v1/models?limit=1000')).json as unknown as Listed;
    expect(all.models.length).toBeGreaterThan(3);
    const lines = (out: string): string[] => out.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);
    // Two models a request: the CLI follows `next` to the end.
    const paged = await cli('models', 'list', '--env', 'local', '--key', e2e.key, '--all', '--page-size', '2', '--json');
    expect(paged.code, paged.stderr).toBe(0);
    expect(lines(paged.stdout)).toEqual(all.models.map((m) => m.id));
    const ready = (await request('GET', '/api/v1/models?state=ready&limit=1000')).json as unknown as Listed;
    const filtered = await cli('models', 'list', '--env', 'local', '--key', e2e.key, '--state', 'ready', '--limit', '3', '--page-size', '2', '--json');
    expect(filtered.code, filtered.stderr).toBe(0);
    expect(lines(filtered.stdout)).toEqual(ready.models.slice(0, 3).map((m) => m.id));
    const table = await cli('models', 'list', '--env', 'local', '--key', e2e.key, '--limit', '2');
    expect(table.stdout.split('\n')[0]).toMatch(/^id\s+state\s+created\s+name$/);
    expect(table.stderr).toContain('2 models (the newest 2; --all for every one)');
    const badFlag = await cli('models', 'list', '--env', 'local', '--key', e2e.key, '--sha256', 'XYZ');
    expect(badFlag.code).not.toBe(0);
    expect(badFlag.stderr).toMatch(/--sha256.*64 lowercase hex digits/);
    const wrongKey = await cli('models', 'list', '--env', 'local', '--key', 'cfk_not_a_key');
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/answered 401 .*check the key/);
  }, 120_000);

  it('converts a real-size assembly through the LB on a worker host within the default limits (1,024 parts, 33 MB of STEP), as the native engine does here, and streams every part', async () => {
    const file = assembly(1024, false);
    // What the same engine gives on this machine: the host must give the same parts and triangles.
    const here = await convertSample(file);
    expect(here.result.ok, here.result.error).toBe(true);
    const started = Date.now();
    const up = await upload('assembly-1024.stp', fs.readFileSync(file));
    expect(up.status, up.body.toString()).toBe(201);
    const modelId = up.json.id!;
    const model = (await settle([modelId], 600)).get(modelId) as unknown as { state: string; error?: string; workerHost?: string; stats: { triangles: number; parts: number; seconds: number } };
    expect(model.state, model.error).toBe('ready');
    const readyAfter = (Date.now() - started) / 1000;
    expect(model.stats.triangles).toBe(here.result.stats.triangles);
    expect(model.stats.parts).toBe(here.result.stats.parts);
    // The worker's log names the engine and where its time went. One command line for the host's
    // shell: ssh joins its arguments with spaces.
    const workers = fleet.hosts.filter((h) => h.role === 'worker').map((h) => h.name);
    const logged = workers.map((w) => ssh(w, "sudo journalctl -u cadfleet-worker --no-pager -o cat | grep -F 'cadfleet-occt: 2048 parts'").out).join('\n');
    expect(logged).toMatch(/read [\d.]+ s, mesh [\d.]+ s/);

    const opened = await request('POST', `/api/v1/models/${modelId}/sessions`, { body: '{}', headers: json });
    expect(opened.status, opened.body.toString()).toBe(201);
    const streamUrl = (opened.json as unknown as { streamUrl: string }).streamUrl;
    const t0 = Date.now();
    let firstFrame = 0;
    const stream = openStream(`wss://${lbAddress()}${streamUrl}`, { ca: caPem(), onFrame: () => (firstFrame ||= Date.now() - t0) });
    expect(await stream.closed).toEqual({ code: 1000, reason: 'complete' });
    const streamed = (Date.now() - t0) / 1000;
    const drawnParts = new Set(stream.frames.map((f) => f.header.part));
    expect(drawnParts.size).toBe(model.stats.parts);
    expect(stream.frames.reduce((sum, f) => sum + f.triangles, 0)).toBe(model.stats.triangles);
    // One command line for the host's shell (ssh joins its arguments with spaces).
    const memory = fleet.hosts
      .filter((h) => h.role === 'streamer')
      .map((h) => `${h.name} ${ssh(h.name, "grep -E '^Vm(HWM|RSS)' /proc/$(systemctl show -p MainPID --value cadfleet-streamer)/status").out.replace(/\s+/g, ' ')}`)
      .join('; ');
    report.load.push({
      measure: 'a 1,024-part, 33 MB STEP assembly through the LB (native engine, default limits)',
      value: `ready ${readyAfter.toFixed(1)} s after the upload (conversion ${model.stats.seconds} s on ${model.workerHost}, ${model.stats.triangles} triangles); first geometry ${firstFrame} ms after the stream opened, every part in ${streamed.toFixed(1)} s`,
      note: `streamers afterwards (the session on ${streamUrl.split('/')[2]}): ${memory}`,
    });
    console.log(`real-size assembly: ${JSON.stringify(report.load.at(-1))}`);
  }, 900_000);
}
