// The README's main command: the local fleet from nothing to a converted model, as a user
// would do it with the CLI. Needs root (the fleet's hosts are containers). Run again, it
// reuses what is there: the fleet, the release, the demo key.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const CLI = path.resolve('bin/cadfleet.js');
const SAMPLE = path.resolve('node_modules/occt-import-js/test/testfiles/cax-if/as1-oc-214.stp');
const STATE = path.join(process.env.CADFLEET_LOCAL_STATE ?? '/var/lib/cadfleet/local', process.env.CADFLEET_LOCAL_FLEET ?? 'cf');
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
const say = (line) => process.stderr.write(`demo: ${line}\n`);

function cadfleet(args, { capture = false } = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { stdio: capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8' });
  if (r.status !== 0) {
    say(`cadfleet ${args.join(' ')} failed (exit ${r.status}); fix what it says and run npm run demo again: it picks up where it stopped.`);
    process.exit(r.status ?? 1);
  }
  return r.stdout ?? '';
}

function https(lb, ca, method, urlPath, key, extra = []) {
  const r = spawnSync('curl', ['-sS', '--max-time', '120', '--cacert', ca, '-X', method, '-H', `Authorization: Bearer ${key}`, '-w', '\n%{http_code}', ...extra, `https://${lb}${urlPath}`], { encoding: 'utf8' });
  if (r.error) throw new Error(`curl is needed: apt-get install curl (${r.error.message})`);
  const lines = (r.stdout ?? '').split('\n');
  const status = Number(lines.pop());
  return { status, body: lines.join('\n') };
}

/** One streaming session read to its end with the protocol of docs/streaming.md; frames are counted, not drawn. */
async function streamOnce(url, caPem) {
  const { default: WebSocket } = await import('ws');
  const t0 = Date.now();
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { ca: caPem, perMessageDeflate: false });
    let frames = 0;
    let firstMs = 0;
    let parts = 0;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1, have: [] })));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        const message = JSON.parse(data.toString());
        if (message.type === 'complete') parts = message.parts;
        return;
      }
      frames++;
      firstMs ||= Date.now() - t0;
      ws.send(JSON.stringify({ type: 'ack', frames }));
    });
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => resolve({ close: code, reason: reason.toString(), frames, parts, firstMs, totalMs: Date.now() - t0 }));
  });
}

if (process.getuid?.() !== 0) {
  say('the local fleet needs root (its hosts are containers): run sudo npm run demo');
  process.exit(1);
}
if (!fs.existsSync(CLI.replace('bin/cadfleet.js', 'dist/cadfleet.js'))) spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });

say('1/5 bringing up the local fleet (the first time builds its base image, about a minute)');
cadfleet(['local', 'up']);
say(`2/5 deploying the release to every host (${elapsed()} so far)`);
cadfleet(['deploy', '--env', 'local']);
const outputs = JSON.parse(cadfleet(['outputs', '--env', 'local'], { capture: true }));
const lb = outputs.lb.address;
const ca = path.join(STATE, 'pki', 'ca.crt');

say('3/5 getting an API key');
const keyFile = path.join(STATE, 'demo-key');
let key = fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : '';
if (!key || https(lb, ca, 'GET', '/api/v1/models', key).status === 401) {
  key = cadfleet(['keys', 'create', '--env', 'local', '--project', 'demo', '--admin', '--name', 'demo'], { capture: true }).trim().split('\n').pop();
  fs.writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
}

say(`4/5 uploading ${path.basename(SAMPLE)} through the load balancer at ${lb}`);
const upload = https(lb, ca, 'POST', '/api/v1/models', key, ['-F', `file=@${SAMPLE}`]);
if (upload.status !== 201) {
  say(`the upload was refused (${upload.status}): ${upload.body}`);
  process.exit(1);
}
const { id } = JSON.parse(upload.body);
let model = { state: 'queued' };
for (let i = 0; i < 180 && !['ready', 'failed'].includes(model.state); i++) {
  spawnSync('sleep', ['1']);
  const r = https(lb, ca, 'GET', `/api/v1/models/${id}`, key);
  if (r.status === 200) model = JSON.parse(r.body);
}
if (model.state !== 'ready') {
  say(`the model did not convert: ${model.state} ${model.error ?? ''}; see: cadfleet logs --env local worker`);
  process.exit(1);
}
say(`converted on ${model.workerHost}: ${model.stats.parts} parts, ${model.stats.triangles} triangles (${elapsed()} so far)`);

say('5/5 streaming it through the load balancer, as the viewer does');
const opened = https(lb, ca, 'POST', `/api/v1/models/${id}/sessions`, key, ['-H', 'content-type: application/json', '-d', '{}']);
if (opened.status !== 201) {
  say(`no streaming session (${opened.status}): ${opened.body}; see: cadfleet logs --env local streamer`);
  process.exit(1);
}
const session = JSON.parse(opened.body);
const streamed = await streamOnce(`wss://${lb}${session.streamUrl}`, fs.readFileSync(ca));
if (streamed.close !== 1000) {
  say(`the stream from ${session.node} ended with ${streamed.close} ${streamed.reason}; see: cadfleet logs --env local streamer`);
  process.exit(1);
}
say(`streamed ${streamed.parts} parts in ${streamed.frames} frames from ${session.node}: first geometry after ${streamed.firstMs} ms, the whole model after ${streamed.totalMs} ms (${elapsed()} in all)`);

process.stdout.write(`
The local fleet is up and serving (npx cadfleet local status; npx cadfleet local down stops it).
Viewer:       https://${lb}/   (paste the API key below; the model is in its list)
Status page:  https://${lb}/status   (user: anything, password: the key)
Model:        https://${lb}/api/v1/models/${id}
TLS:          the fleet's own CA signed the LB's certificate: curl --cacert ${ca} ...
API key (KEY):
${key}
`);
