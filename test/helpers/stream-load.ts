// Streaming sessions through the LB as viewers hold them, run as its own process
// (`node --import tsx`, NODE_EXTRA_CA_CERTS naming the fleet CA): SESSIONS loops, each opening a
// session on MODEL_ID and reading it like a slow viewer (one frame acknowledged every
// ACK_DELAY_MS, a small window), so sessions stay open for seconds and a streamer drain cuts
// some of them. A cut session is resumed through the api with the parts it holds, the only
// retry the protocol allows. Stops at STOP_FILE or MAX_SECONDS, then writes to OUT_FILE:
//   sessions  completed sessions (every part arrived)
//   resumes   resumes that were needed (cut by a drain, a dead node, a full node)
//   failures  sessions that could not complete, and every HTTP 5xx or connection error (api or
//             WebSocket upgrade), even when a resume then completed the session
//   mismatches  resumes whose `sending` was not exactly the parts the client lacked
// Each failure is described in `errors` (the first 20). ONCE=1: each of the SESSIONS runs one
// session to its end (resumes included) and the process stops when all have, or at MAX_SECONDS.
import fs from 'node:fs';
import { openStream, type StreamClient } from '../streamer/client';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`stream-load: ${name} is required`);
  return value;
};
const LB_URL = env('LB_URL');
const API_KEY = env('API_KEY');
const MODEL_ID = env('MODEL_ID');
const STOP_FILE = env('STOP_FILE');
const OUT_FILE = env('OUT_FILE');
const SESSIONS = Number(env('SESSIONS', '10'));
const MAX_SECONDS = Number(env('MAX_SECONDS', '300'));
const ACK_DELAY_MS = Number(env('ACK_DELAY_MS', '200'));
const WINDOW = Number(env('WINDOW', '16384'));
const MAX_RESUMES = 20;
const ONCE = env('ONCE', '0') === '1';

const started = Date.now();
const result = { sessions: 0, resumes: 0, failures: 0, mismatches: 0, closes: {} as Record<string, number>, byStatus: {} as Record<string, number>, errors: [] as string[] };
const done = (): boolean => fs.existsSync(STOP_FILE) || Date.now() - started > MAX_SECONDS * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fail = (what: string): void => {
  result.failures++;
  if (result.errors.length < 20) result.errors.push(what);
};

interface Handout {
  sessionId: string;
  streamUrl: string;
  node: string;
}

// fetch() rejects with these (as its error's cause) when the connection closed before an answer.
const CLOSED_BEFORE_ANSWER = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
/** Tries of a request whose connection closed before an answer (the pool keeps up to 6 per origin). */
const CLOSED_TRIES = 3;

/**
 * fetch, sent again after a connection that closed before any answer: an LB reload closes its
 * idle HTTP/1.1 connections, and nginx never read a request that met that (docs/architecture.md,
 * "LB keep-alive"); a session handed out twice costs an unused record. Not counted as a failure.
 * The pool may hold more than one connection the same reload closed (a starved machine runs
 * reloads close together): each try uses up one, so a few tries reach a fresh connection.
 */
async function send(url: string, init: RequestInit): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (attempt >= CLOSED_TRIES || !CLOSED_BEFORE_ANSWER.has(String((err as { cause?: { code?: string } }).cause?.code))) throw err;
      await sleep(50);
    }
  }
}

/** POST .../sessions; undefined after a failure (counted). 429 waits and asks again: the LB's rate limit. */
async function handout(body: object): Promise<Handout | undefined> {
  for (;;) {
    let status: number | string;
    try {
      const r = await send(`${LB_URL}/api/v1/models/${MODEL_ID}/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      status = r.status;
      result.byStatus[status] = (result.byStatus[status] ?? 0) + 1;
      const json = (await r.json().catch(() => ({}))) as Handout & { message?: string };
      if (status === 200 || status === 201) return json;
      if (status === 429) {
        await sleep(500);
        continue;
      }
      fail(`POST sessions ${JSON.stringify(body)} answered ${status}: ${json.message ?? ''}`);
      return undefined;
    } catch (err) {
      result.byStatus.error = (result.byStatus.error ?? 0) + 1;
      fail(`POST sessions: ${String((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message)}`);
      return undefined;
    }
  }
}

/** One connection, read slowly; resolves with the client once it closed. */
async function read(url: string, have: Set<string>): Promise<StreamClient> {
  let processed = 0;
  let nextAckAt = 0;
  const client = openStream(`${LB_URL.replace(/^http/, 'ws')}${url}`, {
    have: [...have],
    window: WINDOW,
    autoAck: false,
    onFrame: (_frame, c) => {
      nextAckAt = Math.max(Date.now(), nextAckAt) + ACK_DELAY_MS;
      setTimeout(() => {
        processed++;
        if (c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify({ type: 'ack', frames: processed }));
      }, nextAckAt - Date.now());
    },
  });
  try {
    await client.opened;
  } catch (err) {
    // An upgrade refused by HTTP: 410 (the LB no longer routes to that node) is the protocol
    // telling the client to resume elsewhere; a 5xx or a connection error is a failure.
    const reason = (err as Error).message;
    if (!/HTTP 410/.test(reason)) fail(`opening ${url.split('?')[0]}: ${reason}`);
    client.close = { code: 0, reason, at: 0 };
    return client;
  }
  await client.closed;
  return client;
}

async function oneSession(): Promise<void> {
  const first = await handout({});
  if (!first) return;
  const have = new Set<string>();
  let url = first.streamUrl;
  let order: string[] | undefined;
  for (let attempt = 0; ; attempt++) {
    const client = await read(url, have);
    const close = client.close!;
    const key = `${close.code}${close.reason ? ` ${close.reason.slice(0, 40)}` : ''}`;
    result.closes[key] = (result.closes[key] ?? 0) + 1;
    if (client.manifest) {
      order ??= client.manifest.order;
      const lacking = order.filter((p) => !have.has(p));
      if (JSON.stringify([...client.manifest.sending].sort()) !== JSON.stringify([...lacking].sort())) {
        result.mismatches++;
        fail(`session ${first.sessionId}: sent ${client.manifest.sending.length} parts, the client lacked ${lacking.length}`);
        return;
      }
    }
    for (const part of client.completeParts()) have.add(part);
    if (close.code === 1000 && client.complete) {
      if (!order || order.some((p) => !have.has(p))) fail(`session ${first.sessionId} completed without every part (${have.size}/${order?.length})`);
      else result.sessions++;
      return;
    }
    if (client.error && client.error.resume === false) {
      fail(`session ${first.sessionId} refused for good: ${client.error.code} ${client.error.message}`);
      return;
    }
    if (attempt >= MAX_RESUMES) {
      fail(`session ${first.sessionId} gave up after ${MAX_RESUMES} resumes (last close ${key})`);
      return;
    }
    result.resumes++;
    const next = await handout({ resume: first.sessionId });
    if (!next) return;
    url = next.streamUrl;
  }
}

await Promise.all(
  Array.from({ length: SESSIONS }, async (_, i) => {
    await sleep(i * 150);
    if (ONCE) await oneSession();
    else while (!done()) await oneSession();
  }),
);
fs.writeFileSync(OUT_FILE, JSON.stringify(result));
