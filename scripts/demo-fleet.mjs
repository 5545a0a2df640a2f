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

if (process.getuid?.() !== 0) {
  say('the local fleet needs root (its hosts are containers): run sudo npm run demo');
  process.exit(1);
}
if (!fs.existsSync(CLI.replace('bin/cadfleet.js', 'dist/cadfleet.js'))) spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });

say('1/4 bringing up the local fleet (the first time builds its base image, about a minute)');
cadfleet(['local', 'up']);
say(`2/4 deploying the release to every host (${elapsed()} so far)`);
cadfleet(['deploy', '--env', 'local']);
const outputs = JSON.parse(cadfleet(['outputs', '--env', 'local'], { capture: true }));
const lb = outputs.lb.address;
const ca = path.join(STATE, 'pki', 'ca.crt');

say('3/4 getting an API key');
const keyFile = path.join(STATE, 'demo-key');
let key = fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : '';
if (!key || https(lb, ca, 'GET', '/api/v1/models', key).status === 401) {
  key = cadfleet(['keys', 'create', '--env', 'local', '--project', 'demo', '--admin', '--name', 'demo'], { capture: true }).trim().split('\n').pop();
  fs.writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
}

say(`4/4 uploading ${path.basename(SAMPLE)} through the load balancer at ${lb}`);
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
say(`converted on ${model.workerHost}: ${model.stats.parts} parts, ${model.stats.triangles} triangles (${elapsed()} in all)`);

process.stdout.write(`
The local fleet is up and serving (npx cadfleet local status; npx cadfleet local down stops it).
Status page:  https://${lb}/status   (user: anything, password: the key)
Model:        https://${lb}/api/v1/models/${id}
TLS:          the fleet's own CA signed the LB's certificate: curl --cacert ${ca} ...
API key (KEY):
${key}
`);
