// The LB's own refusals in the api's error shape (issue 22, item 4), on the real thing: the
// nginx_lb role's nginx.conf rendered by ansible-playbook and run as a private nginx on 127.0.0.1
// (test/helpers/private-nginx.ts), a small HTTP server in the api's place. nginx's refusals (rate
// limit, body size, no api, a silent api) answer JSON {statusCode, error, code, message}; what
// the api answers itself (its 503 with Retry-After) passes through untouched.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/local-services';
import { type PrivateNginx, ansibleRender, startPrivateNginx } from '../helpers/private-nginx';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Header name (lower case) -> how often it came. */
  counts: Record<string, number>;
  body: string;
  json: Record<string, unknown>;
}

/** The api's stand-in: `x-answer-status` picks an error it answers with, `x-answer-delay-ms` holds the answer. */
async function startApi(): Promise<{ address: string; requests: number; close(): Promise<void> }> {
  const api = { requests: 0 } as { address: string; requests: number; close(): Promise<void> };
  const server = http.createServer((req, res) => {
    api.requests++;
    req.resume();
    req.on('end', () =>
      setTimeout(() => {
        const status = Number(req.headers['x-answer-status'] ?? (req.method === 'POST' ? 201 : 200));
        if (status === 503) {
          res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '7' });
          return res.end(JSON.stringify({ statusCode: 503, error: 'Service Unavailable', code: 'dependency_unavailable', message: 'redis unreachable; try again in 7 s' }));
        }
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ id: 'm1', state: 'queued' }));
      }, Number(req.headers['x-answer-delay-ms'] ?? 0)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return api;
}

let lb: PrivateNginx;
let api: Awaited<ReturnType<typeof startApi>>;

/**
 * One request through the LB. `announce`: a Content-Length to send with only the first bytes of
 * a body, as a client that starts an upload nginx refuses before reading it.
 */
function send(method: string, urlPath: string, options: { headers?: Record<string, string>; body?: string; announce?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: 'Bearer k', ...options.headers };
    if (options.announce !== undefined) headers['content-length'] = String(options.announce);
    else if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = https.request(`${lb.origin}${urlPath}`, { method, headers, ca: lb.ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const counts: Record<string, number> = {};
        for (let i = 0; i < res.rawHeaders.length; i += 2) counts[res.rawHeaders[i]!.toLowerCase()] = (counts[res.rawHeaders[i]!.toLowerCase()] ?? 0) + 1;
        const body = Buffer.concat(chunks).toString();
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(body) as Record<string, unknown>;
        } catch {
          // not JSON: the assertions say so
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, counts, body, json });
        if (options.announce !== undefined) req.destroy();
      });
    });
    req.on('error', reject);
    if (options.announce !== undefined) req.write('--BB\r\nContent-Disposition: form-data; name="file"; filename="huge.stl"\r\n\r\nsolid x\n');
    else req.end(options.body);
  });
}

/** What every refusal of the LB looks like: the api's error shape, JSON, the security headers. */
function expectRefusal(a: Answer, status: number, code: string): void {
  expect(a.status, a.body).toBe(status);
  expect(a.headers['content-type']).toBe('application/json');
  expect(a.counts['content-type']).toBe(1);
  expect(a.json).toEqual({ statusCode: status, error: http.STATUS_CODES[status], code, message: expect.any(String) });
  expect(a.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'strict-transport-security': 'max-age=31536000' });
}

beforeAll(async () => {
  api = await startApi();
  // The role's defaults except the /api read timeout (120 s), shortened as tests shorten every timeout.
  lb = await startPrivateNginx({ name: 'nginx-lb-errors', apiServers: [api.address], vars: { nginx_lb_api_read_timeout: '1s' } });
}, 60_000);

afterAll(async () => {
  await lb?.stop();
  await api?.close();
});

describe("the LB's own refusals, in the api's error shape", () => {
  it('leaves proxy_intercept_errors off: only what nginx makes is rewritten', () => {
    expect(lb.rendered).not.toMatch(/^\s*proxy_intercept_errors/m);
    expect(lb.rendered).toMatch(/^\s*error_page 429 = @rate_limited;$/m);
  });

  it('answers a burst of uploads over the rate limit with JSON 429 and Retry-After', async () => {
    const answers: Answer[] = [];
    // Waves of 6, under the 8 uploads in progress per address: the request rate is what is limited
    // (5/s, burst 20, the role's defaults).
    for (let i = 0; i < 36; i += 6) answers.push(...(await Promise.all(Array.from({ length: 6 }, () => send('POST', '/api/v1/models', { body: 'x' })))));
    const limited = answers.filter((a) => a.status === 429);
    expect(answers.filter((a) => a.status === 201).length).toBeGreaterThanOrEqual(20);
    expect(limited.length).toBeGreaterThanOrEqual(5);
    for (const a of limited) {
      expectRefusal(a, 429, 'rate_limited');
      // 5r/s admits one more request within a second: the smallest whole Retry-After.
      expect(a.headers['retry-after']).toBe('1');
      expect(a.json.message).toMatch(/try again in 1 s/);
    }
  });

  it('answers an upload announced over the size limit with JSON 413 before reading it, and the api sees nothing', async () => {
    const before = api.requests;
    const a = await send('POST', '/api/v1/models', { announce: 300 * 1024 * 1024, headers: { 'content-type': 'multipart/form-data; boundary=BB' } });
    expectRefusal(a, 413, 'file_too_large');
    expect(a.json.message).toMatch(/200m.*POST \/api\/v1\/uploads/);
    expect(api.requests).toBe(before);
  });

  it("passes the api's own 503 through untouched, with the api's Retry-After", async () => {
    const a = await send('GET', '/api/v1/models', { headers: { 'x-answer-status': '503' } });
    expect(a.status).toBe(503);
    expect(a.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(a.headers['retry-after']).toBe('7');
    expect(a.counts['retry-after']).toBe(1);
    expect(a.json).toEqual({ statusCode: 503, error: 'Service Unavailable', code: 'dependency_unavailable', message: 'redis unreachable; try again in 7 s' });
  });

  it('answers an api that does not answer in time with JSON 504', async () => {
    const a = await send('GET', '/api/v1/models/m1', { headers: { 'x-answer-delay-ms': '3000' } });
    expectRefusal(a, 504, 'api_timeout');
  });

  it('answers a stream URL naming a node it does not know with JSON 410 (one Content-Type)', async () => {
    const a = await send('GET', '/stream/gone-node/00000000-0000-0000-0000-000000000000?token=x');
    expectRefusal(a, 410, 'stream_node_gone');
  });

  it('carries its own 503 with Retry-After (nginx_lb_unavailable_retry_after)', () => {
    expect(lb.rendered).toMatch(/location @unavailable \{[^}]*add_header Retry-After 5 always;[^}]*return 503 '\{"statusCode":503,"error":"Service Unavailable","code":"service_unavailable","message":"[^"']+"\}';/);
  });

  // Last: it takes the api away.
  it('answers JSON 502 when no api is up behind it', async () => {
    await api.close();
    const a = await send('GET', '/api/v1/models');
    expectRefusal(a, 502, 'api_unreachable');
    const upload = await send('POST', '/api/v1/models', { body: 'x' });
    expectRefusal(upload, 502, 'api_unreachable');
  });
});

describe("the 429's Retry-After follows the upload rate", () => {
  it.each([
    ['30r/m', 2],
    ['2r/s', 1],
    ['7r/m', 9],
  ])('%s: Retry-After %d', async (rate, seconds) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-nginx-render-'));
    try {
      const { nginxConf } = ansibleRender(dir, { nginx_lb_upload_rate: rate, nginx_lb_api_servers: [`127.0.0.1:${await freePort()}`] });
      expect(nginxConf).toMatch(new RegExp(`location @rate_limited \\{[^}]*add_header Retry-After ${seconds} always;[^}]*try again in ${seconds} s`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
