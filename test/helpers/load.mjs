// A steady client load through the LB, run as its own process (with NODE_EXTRA_CA_CERTS naming
// the fleet CA): API reads and small uploads, no retries. Stops when STOP_FILE appears or after
// MAX_SECONDS, then writes {requests, failures, byStatus, uploads:[ids]} to OUT_FILE.
// A failure is any 5xx or connection error, as a client that does not retry sees it.
import fs from 'node:fs';

const { LB_URL, API_KEY, STOP_FILE, OUT_FILE, UPLOAD_FILE } = process.env;
const MAX_SECONDS = Number(process.env.MAX_SECONDS ?? 300);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 3);
const started = Date.now();
const result = { requests: 0, failures: 0, byStatus: {}, errors: [], uploads: [] };
const upload = fs.readFileSync(UPLOAD_FILE);
const headers = { authorization: `Bearer ${API_KEY}` };
const done = () => fs.existsSync(STOP_FILE) || Date.now() - started > MAX_SECONDS * 1000;

async function one(i) {
  let status;
  try {
    if (i % 40 === 0) {
      const form = new FormData();
      form.append('file', new Blob([upload]), 'load.stl');
      const r = await fetch(`${LB_URL}/api/v1/models`, { method: 'POST', headers, body: form });
      status = r.status;
      const body = await r.json().catch(() => ({}));
      if (r.status === 201) result.uploads.push(body.id);
    } else {
      const r = await fetch(`${LB_URL}/api/v1/models`, { headers });
      status = r.status;
      await r.arrayBuffer();
    }
  } catch (err) {
    status = 'error';
    if (result.errors.length < 20) result.errors.push(String(err.cause?.code ?? err.message));
  }
  result.requests++;
  result.byStatus[status] = (result.byStatus[status] ?? 0) + 1;
  if (status === 'error' || status >= 500) result.failures++;
}

let n = 0;
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (!done()) {
      await one(n++);
      await new Promise((r) => setTimeout(r, 50));
    }
  }),
);
fs.writeFileSync(OUT_FILE, JSON.stringify(result));
