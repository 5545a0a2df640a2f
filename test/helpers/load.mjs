// A steady client load through the LB, run as its own process (with NODE_EXTRA_CA_CERTS naming
// the fleet CA): API reads and small uploads (and, with SESSION_EVERY, streaming session
// hand-outs), no retries but one (below). Stops when STOP_FILE appears or after MAX_SECONDS,
// then writes to OUT_FILE:
//   requests, failures, retries, byStatus, errors, uploads: [ids of uploads answered 201]
//   seconds, perSecond      how long it ran, requests answered per second
//   latencyMs               {p50, p90, p99, max} of every request (connection errors included)
//   byKind                  {read|upload|session: {requests, byStatus, latencyMs}}
//   missingRetryAfter       503 answers without a Retry-After header
//   codes                   error codes of the JSON error bodies, by status ("503 dependency_unavailable")
// A failure is any 5xx or connection error, but for the retry the LB asks of its clients
// (docs/architecture.md, "LB keep-alive"): a reload closes nginx's idle HTTP/1.1 connections,
// and a request sent on one in that instant fails before any answer, unread by nginx. Such a
// request goes again "on a new connection"; fetch cannot ask for one, and its pool may hold
// other connections the same reload closed, so up to three tries (uploads too: nothing here
// crashes the LB, the only other source of that error); each counts in `retries`.
// Settings: CONCURRENCY (3), PAUSE_MS between a client's requests (50), UPLOAD_EVERY (every
// 40th request is an upload), SESSION_EVERY (0: none; needs MODEL_ID).
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

const { LB_URL, API_KEY, STOP_FILE, OUT_FILE, UPLOAD_FILE, MODEL_ID } = process.env;
const MAX_SECONDS = Number(process.env.MAX_SECONDS ?? 300);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 3);
const PAUSE_MS = Number(process.env.PAUSE_MS ?? 50);
const UPLOAD_EVERY = Number(process.env.UPLOAD_EVERY ?? 40);
const SESSION_EVERY = Number(process.env.SESSION_EVERY ?? 0);
const started = Date.now();
const result = { requests: 0, failures: 0, retries: 0, byStatus: {}, errors: [], uploads: [], missingRetryAfter: 0, codes: {}, byKind: {} };
const latencies = { all: [] };
const upload = fs.readFileSync(UPLOAD_FILE);
const headers = { authorization: `Bearer ${API_KEY}` };
const done = () => fs.existsSync(STOP_FILE) || Date.now() - started > MAX_SECONDS * 1000;

// fetch() rejects with these (as its error's cause) when the connection closed before an answer.
const CLOSED_BEFORE_ANSWER = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * fetch, sent again after a connection that closed before any answer (an LB reload closes its
 * idle connections; the pool may hold more than one that the same reload closed, each try uses
 * one up). `init` is called per try (a body is read once).
 */
async function send(url, init) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, init());
    } catch (err) {
      if (attempt >= 3 || !CLOSED_BEFORE_ANSWER.has(err.cause?.code)) throw err;
      result.retries++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

const kindOf = (i) => (UPLOAD_EVERY > 0 && i % UPLOAD_EVERY === 0 ? 'upload' : SESSION_EVERY > 0 && MODEL_ID && i % SESSION_EVERY === 1 ? 'session' : 'read');

async function one(i) {
  const kind = kindOf(i);
  let status;
  const t0 = performance.now();
  try {
    let r;
    if (kind === 'upload') {
      r = await send(`${LB_URL}/api/v1/models?reuse=false`, () => {
        // reuse=false: every upload is a conversion, as the load means it to be.
        const form = new FormData();
        form.append('file', new Blob([upload]), 'load.stl');
        return { method: 'POST', headers, body: form };
      });
    } else if (kind === 'session') {
      r = await send(`${LB_URL}/api/v1/models/${MODEL_ID}/sessions`, () => ({ method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' }));
    } else {
      r = await send(`${LB_URL}/api/v1/models`, () => ({ headers }));
    }
    status = r.status;
    const text = await r.text();
    let body = {};
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (an nginx error page)
    }
    if (kind === 'upload' && r.status === 201) result.uploads.push(body.id);
    if (r.status === 503 && !r.headers.get('retry-after')) result.missingRetryAfter++;
    if (r.status >= 400) {
      const code = `${r.status} ${body.code ?? (text.match(/<title>([^<]*)<\/title>/)?.[1] ?? 'no body code')}`;
      result.codes[code] = (result.codes[code] ?? 0) + 1;
    }
  } catch (err) {
    status = 'error';
    if (result.errors.length < 20) result.errors.push(String(err.cause?.code ?? err.message));
  }
  const ms = performance.now() - t0;
  latencies.all.push(ms);
  (latencies[kind] ??= []).push(ms);
  const k = (result.byKind[kind] ??= { requests: 0, byStatus: {} });
  k.requests++;
  k.byStatus[status] = (k.byStatus[status] ?? 0) + 1;
  result.requests++;
  result.byStatus[status] = (result.byStatus[status] ?? 0) + 1;
  if (status === 'error' || status >= 500) result.failures++;
}

function percentiles(values) {
  if (values.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 10) / 10;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: Math.round(sorted[sorted.length - 1] * 10) / 10 };
}

let n = 0;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (!done()) {
      await one(n++);
      if (PAUSE_MS > 0) await new Promise((r) => setTimeout(r, PAUSE_MS));
    }
  }),
);
result.seconds = (Date.now() - started) / 1000;
result.perSecond = Math.round((result.requests / result.seconds) * 10) / 10;
result.latencyMs = percentiles(latencies.all);
for (const [kind, k] of Object.entries(result.byKind)) k.latencyMs = percentiles(latencies[kind] ?? []);
fs.writeFileSync(OUT_FILE, JSON.stringify(result));
