// The local fleet the fleet benchmarks run on: the user's default fleet (`cf`), brought up and
// deployed when it is not, with an admin key of its own. Everything goes through the real CLI.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import https from 'node:https';

export const CLI = path.resolve('bin/cadfleet.js');
export const STATE = path.join(process.env.CADFLEET_LOCAL_STATE ?? '/var/lib/cadfleet/local', process.env.CADFLEET_LOCAL_FLEET ?? 'cf');
export const CA = path.join(STATE, 'pki/ca.crt');

export interface FleetInfo {
  lb: string;
  hosts: Record<string, string>;
  key: string;
}

/** Runs the CLI; throws with its stderr when it fails. Returns stdout and the seconds it took. */
export function cadfleet(args: string[], env: NodeJS.ProcessEnv = {}): { stdout: string; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`cadfleet ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' / ')}`);
  return { stdout: r.stdout, seconds: (performance.now() - t0) / 1000 };
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('the fleet benchmarks need root (the local fleet\'s hosts are containers): sudo npm run bench -- api');
}

/** The fleet, up and deployed (idempotent: a running, deployed fleet costs one no-change deploy). */
export function ensureFleet(log: (line: string) => void): FleetInfo {
  requireRoot();
  if (!fs.existsSync(path.resolve('dist/cadfleet.js'))) spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
  log('bringing the local fleet up and deploying (no-op when it already runs this tree)');
  cadfleet(['local', 'up']);
  cadfleet(['deploy', '--env', 'local']);
  const outputs = JSON.parse(cadfleet(['outputs', '--env', 'local']).stdout) as { lb: { address: string }; hosts: Record<string, Array<{ name: string; address: string }>> };
  const hosts: Record<string, string> = {};
  for (const [role, list] of Object.entries(outputs.hosts)) list.forEach((h, i) => (hosts[`${role}-${i + 1}`] = h.address));
  const keyFile = path.join(STATE, 'bench-key');
  let key = fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : '';
  if (!key) {
    key = cadfleet(['keys', 'create', '--env', 'local', '--project', 'bench', '--admin', '--name', 'bench']).stdout.trim().split('\n').pop()!;
    fs.writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  }
  return { lb: outputs.lb.address, hosts, key };
}

/** Agents for the fleet: HTTPS trusting the fleet CA (the LB), plain HTTP (a host's own port). */
export function fleetAgents(keepAlive = true): { https: https.Agent; http: http.Agent } {
  return {
    https: new https.Agent({ ca: fs.readFileSync(CA), keepAlive, maxSockets: 64 }),
    http: new http.Agent({ keepAlive, maxSockets: 64 }),
  };
}

export interface Reply {
  status: number;
  body: string;
}

/** One request with node's http(s) (no retries); `headers` may add `connection: close`. */
export function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer; agents: { https: https.Agent; http: http.Agent } }): Promise<Reply> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method: options.method ?? 'GET', headers: options.headers, agent: u.protocol === 'https:' ? options.agents.https : options.agents.http }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Uploads a file through the LB (multipart by hand: one file field); the model id. */
export async function upload(fleet: FleetInfo, agents: ReturnType<typeof fleetAgents>, file: string, quality?: 'coarse' | 'normal' | 'fine'): Promise<string> {
  const boundary = `cadfleet${Math.random().toString(16).slice(2)}`;
  const body = Buffer.concat([
    Buffer.from(quality ? `--${boundary}\r\nContent-Disposition: form-data; name="quality"\r\n\r\n${quality}\r\n` : ''),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${path.basename(file)}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    fs.readFileSync(file),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const r = await call(`https://${fleet.lb}/api/v1/models`, {
    method: 'POST',
    headers: { authorization: `Bearer ${fleet.key}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) },
    body,
    agents,
  });
  const parsed = JSON.parse(r.body || '{}') as { id?: string; message?: string };
  if (r.status !== 201 || !parsed.id) throw new Error(`upload of ${file} answered ${r.status}: ${parsed.message ?? r.body.slice(0, 200)}`);
  return parsed.id;
}

/** Waits until every model is ready (a failed one throws); returns when the last became ready. */
export async function waitReady(fleet: FleetInfo, agents: ReturnType<typeof fleetAgents>, ids: string[], timeoutMs = 900_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(ids);
  while (pending.size) {
    if (Date.now() > deadline) throw new Error(`${pending.size} model(s) not ready within ${timeoutMs / 1000} s`);
    for (const id of [...pending]) {
      const r = await call(`https://${fleet.lb}/api/v1/models/${id}`, { headers: { authorization: `Bearer ${fleet.key}` }, agents });
      const m = JSON.parse(r.body || '{}') as { state?: string; error?: string };
      if (m.state === 'ready') pending.delete(id);
      else if (m.state === 'failed') throw new Error(`model ${id} failed: ${m.error}`);
    }
    if (pending.size) await new Promise((r) => setTimeout(r, 250));
  }
}
