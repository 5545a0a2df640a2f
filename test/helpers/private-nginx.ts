// The LB's nginx as the nginx_lb role renders it (the real ansible-playbook, the role's defaults),
// run as a private nginx on 127.0.0.1: only paths and listen ports are changed, so what the
// tests and the local LB benchmark measure is the production configuration. Needs nginx and
// Ansible on this machine (scripts/setup.sh installs both); nothing leaves 127.0.0.1.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/local-services';

/** The host contract, as the playbooks load it (group_vars): the role's defaults take the install path from it. */
const HOST_CONTRACT_FILE = path.resolve(__dirname, '../../ansible/playbooks/group_vars/all/host_contract.json');

const ROLE = path.resolve(import.meta.dirname, '../../ansible/roles/nginx_lb');

export interface PrivateNginx {
  dir: string;
  /** https://127.0.0.1:<port> of the TLS server (HTTP/2 and HTTP/1.1). */
  origin: string;
  httpsPort: number;
  httpPort: number;
  /** The self-signed certificate the clients trust. */
  ca: Buffer;
  /** The nginx.conf as the role rendered it, and as it runs here. */
  rendered: string;
  config: string;
  /** Rewrites the upstream file as cadfleet-lb-sync does (`host:port` entries). */
  writeUpstream(servers: string[]): void;
  writeStreamers(streamers: Array<[string, string]>): void;
  /** `nginx -s reload`, then waits until the new workers run (what cadfleet-lb-sync's settle wait stands for). */
  reload(): Promise<void>;
  /** Worker processes that are not shutting down. */
  workers(): number[];
  /** The last lines of nginx's error log, for a failing test's message. */
  errorLog(lines?: number): string;
  /** Stops nginx (old workers too) and removes its folder. */
  stop(): Promise<void>;
}

/** nginx.conf and the seeded api upstream as the role renders them with these variables. */
export function ansibleRender(dir: string, vars: Record<string, unknown>): { nginxConf: string; upstream: string } {
  const out = path.join(dir, 'rendered');
  fs.mkdirSync(path.join(dir, 'ansible-tmp'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'render.yml'),
    `- name: Render the LB's nginx configuration as the nginx_lb role does.
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the role's defaults.
      ansible.builtin.include_vars:
        file: ${ROLE}/defaults/main.yml
    - name: Render nginx.conf and the seeded api upstream.
      ansible.builtin.template:
        src: "${ROLE}/templates/{{ item }}.j2"
        dest: "${out}/{{ item }}"
        mode: "0644"
      loop: [nginx.conf, api-upstream.conf]
`,
  );
  fs.mkdirSync(out, { recursive: true });
  const r = spawnSync('ansible-playbook', ['-i', 'localhost,', '-c', 'local', '-e', `@${HOST_CONTRACT_FILE}`, '-e', JSON.stringify({ ansible_python_interpreter: 'auto_silent', ...vars }), 'render.yml'], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: path.join(dir, 'ansible-tmp'), ANSIBLE_RETRY_FILES_ENABLED: 'False' },
  });
  if (r.error) throw new Error(`ansible-playbook is not installed: apt-get install ansible (${r.error.message})`);
  if (r.status !== 0) throw new Error(`rendering the nginx_lb templates failed:\n${r.stdout}\n${r.stderr}`);
  return { nginxConf: fs.readFileSync(path.join(out, 'nginx.conf'), 'utf8'), upstream: fs.readFileSync(path.join(out, 'api-upstream.conf'), 'utf8') };
}

/**
 * The rendered nginx.conf with host paths moved under `dir` and the listen ports on 127.0.0.1.
 * Every replacement must match: a template change that this does not know fails here, loudly,
 * rather than testing a configuration that differs from the role's.
 */
export function adaptForPrivateRun(text: string, dir: string, ports: { http: number; https: number }): string {
  const replacements: Array<[RegExp, string]> = [
    [/^user www-data;$/m, `user ${os.userInfo().username};`],
    [/^pid \/run\/nginx\.pid;$/m, `pid ${dir}/nginx.pid;`],
    [/^include \/etc\/nginx\/modules-enabled\/\*\.conf;$/m, '# (no dynamic modules)'],
    [/\/var\/log\/nginx\//g, `${dir}/logs/`],
    [/\/etc\/nginx\/cadfleet\//g, `${dir}/cadfleet/`],
    [/^(\s*)listen 80 /m, `$1listen 127.0.0.1:${ports.http} `],
    [/^(\s*)listen 443 /m, `$1listen 127.0.0.1:${ports.https} `],
    // nginx's compiled-in temp folders are the system nginx's (/var/lib/nginx).
    [/^http \{$/m, `http {\n${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${dir}/temp/${t};`).join('\n')}`],
  ];
  let out = text;
  for (const [pattern, replacement] of replacements) {
    if (!pattern.test(out)) throw new Error(`the rendered nginx.conf no longer has ${pattern}: adapt test/helpers/private-nginx.ts`);
    pattern.lastIndex = 0;
    out = out.replace(pattern, replacement);
  }
  return out;
}

function nginxBinary(): string {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx']) if (fs.existsSync(candidate)) return candidate;
  throw new Error('nginx is not installed: apt-get install nginx (scripts/setup.sh does)');
}

/** Children of a process (Linux /proc). */
function children(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

const title = (pid: number): string => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
};

export async function startPrivateNginx(options: { name: string; apiServers: string[]; streamers?: Array<[string, string]>; vars?: Record<string, unknown> }): Promise<PrivateNginx> {
  const bin = nginxBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cadfleet-${options.name}-`));
  for (const sub of ['logs', 'temp', 'cadfleet/tls', 'release/current/viewer']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  fs.writeFileSync(path.join(dir, 'release/current/viewer/index.html'), '<!doctype html><title>viewer</title>\n');
  const tls = path.join(dir, 'cadfleet/tls');
  // The role's own self-signed recipe (tasks/self-signed.yml), for 127.0.0.1.
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${tls}/lb.key`, '-out', `${tls}/lb.crt`], { stdio: 'ignore' });
  const { nginxConf, upstream } = ansibleRender(dir, { nginx_lb_api_servers: options.apiServers, nginx_lb_release_root: path.join(dir, 'release'), ...options.vars });
  const ports = { http: await freePort(), https: await freePort() };
  const config = adaptForPrivateRun(nginxConf, dir, ports);
  const confFile = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confFile, config);
  fs.writeFileSync(path.join(dir, 'cadfleet/api-upstream.conf'), upstream);
  const writeStreamers = (streamers: Array<[string, string]>): void =>
    fs.writeFileSync(path.join(dir, 'cadfleet/streamers.map'), ['# node id -> address:port', ...streamers.map(([id, addr]) => `${id} ${addr};`), ''].join('\n'));
  writeStreamers(options.streamers ?? []);
  const base = ['-p', dir, '-c', confFile, '-e', path.join(dir, 'logs/error.log')];
  const nginx = (args: string[]): void => {
    const r = spawnSync(bin, [...base, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`nginx ${args.join(' ')} failed: ${r.stderr}`);
  };
  nginx(['-t', '-q']);
  nginx([]);
  const master = Number(fs.readFileSync(path.join(dir, 'nginx.pid'), 'utf8'));
  const workers = (): number[] => children(master).filter((pid) => title(pid) === 'nginx: worker process');
  const waitFor = async (ok: () => boolean, what: string, ms = 10_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`private nginx: ${what} within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await waitFor(() => workers().length > 0, 'no workers started');
  return {
    dir,
    origin: `https://127.0.0.1:${ports.https}`,
    httpsPort: ports.https,
    httpPort: ports.http,
    ca: fs.readFileSync(`${tls}/lb.crt`),
    rendered: nginxConf,
    config,
    writeUpstream(servers) {
      // As cadfleet-lb-sync writes it (render.ts), through a rename.
      const text = ['upstream cadfleet_api {', '    least_conn;', ...servers.map((s) => `    server ${s} max_fails=2 fail_timeout=5s;`), '    keepalive 32;', '}', ''].join('\n');
      const file = path.join(dir, 'cadfleet/api-upstream.conf');
      fs.writeFileSync(`${file}.tmp`, text);
      fs.renameSync(`${file}.tmp`, file);
    },
    writeStreamers,
    async reload() {
      const before = new Set(workers());
      nginx(['-s', 'reload']);
      await waitFor(() => {
        const now = workers();
        return now.length > 0 && now.every((pid) => !before.has(pid));
      }, 'the reload did not start new workers');
    },
    workers,
    errorLog: (lines = 30) => fs.readFileSync(path.join(dir, 'logs/error.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n'),
    async stop() {
      try {
        process.kill(master, 'SIGTERM');
        await waitFor(() => !fs.existsSync(`/proc/${master}`) || title(master) === '', 'nginx did not stop').catch(() => process.kill(master, 'SIGKILL'));
      } catch {
        // already gone
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Backend {
  name: string;
  address: string;
  server: http.Server;
  /** Requests answered, and the ids (x-request-id) of the POSTs received, with how often. */
  requests: number;
  posts: Map<string, number>;
  close(): Promise<void>;
}

/**
 * A small HTTP backend in the api's place: GET answers a model list of the size the api's
 * `GET /api/v1/models?limit=20` gives (about 7 KB of JSON), POST counts its x-request-id.
 * Its keep-alive timeout is longer than nginx's upstream one, as the api's is (app/src/api/process.ts).
 * `cpuMs`: CPU time each request burns first, standing in for the api's own work.
 */
export async function startBackend(name: string, options: { cpuMs?: number } = {}): Promise<Backend> {
  const models = Array.from({ length: 20 }, (_, i) => ({
    id: `0190c0de-${String(i).padStart(4, '0')}-7000-8000-${name.padEnd(12, '0').slice(0, 12)}`,
    name: `assembly-${i}.step`,
    state: 'ready',
    progress: 100,
    createdAt: '2026-12-01T10:00:00.000Z',
    updatedAt: '2026-12-01T10:00:05.000Z',
    stats: { triangles: 120_000 + i, parts: 40 + i, inputBytes: 2_400_000, outputBytes: 900_000, seconds: 1.25 },
    files: ['model.glb', 'manifest.json'],
    workerHost: 'worker-1',
  }));
  const body = JSON.stringify({ backend: name, models });
  const backend = { name, requests: 0, posts: new Map<string, number>() } as Backend;
  const server = http.createServer({ keepAliveTimeout: 75_000 }, (req, res) => {
    backend.requests++;
    if (options.cpuMs) for (const until = performance.now() + options.cpuMs; performance.now() < until; );
    if (req.method === 'POST') {
      const id = String(req.headers['x-request-id'] ?? '');
      backend.posts.set(id, (backend.posts.get(id) ?? 0) + 1);
    }
    req.resume();
    req.on('end', () =>
      // x-answer-delay-ms: a request that stays in progress this long (an upload the api stores).
      setTimeout(() => {
        res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json; charset=utf-8', 'x-backend': name });
        res.end(req.method === 'POST' ? JSON.stringify({ backend: name, id: req.headers['x-request-id'] }) : body);
      }, Number(req.headers['x-answer-delay-ms'] ?? 0)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.server = server;
  backend.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  return backend;
}
