// The playbooks' group_vars, rendered by the real ansible-playbook on this machine (local
// connection, one host per role, nothing changed but files in a temporary folder): what each
// kind of host takes of the app settings, the LB's keepalive_time against the api's linger, and
// the per-host deploy digest that decides which hosts a deploy leaves out.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMER_SETTINGS } from '../../app/src/shared/config';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const ROLES = ['lb', 'data', 'api', 'worker', 'streamer'] as const;
type Role = (typeof ROLES)[number];
interface HostView {
  serviceEnv: Record<string, string> | null;
  keepaliveTime: string | null;
  digest: string;
}

let workDir: string;

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-group-vars-'));
  // group_vars beside the playbook: the playbooks' own, as site.yml and host.yml load them.
  fs.symlinkSync(path.join(repoRoot, 'ansible/playbooks/group_vars'), path.join(workDir, 'group_vars'));
  fs.writeFileSync(
    path.join(workDir, 'render.yml'),
    // One module run in all (run_once): every host's values through hostvars, each templated as that host.
    `- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: "${workDir}/rendered.json"
        content: |
          {
          {% for h in ansible_play_hosts_all %}
          {% set v = hostvars[h] %}
          {{ h | to_json }}: {{ {'serviceEnv': v.cadfleet_service_env if v.cadfleet_service_role | length > 0 else none,
                                 'keepaliveTime': v.nginx_lb_keepalive_time if v.cadfleet_host_role == 'lb' else none,
                                 'digest': v.cadfleet_deploy_host_digest} | to_json }}{{ ',' if not loop.last else '' }}
          {% endfor %}
          }
        mode: "0600"
      run_once: true
`,
  );
});

afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/**
 * Every host's view of each set of settings, as the playbooks compute it: one run, a host per
 * role and case, each case's settings as its hosts' inventory variables.
 */
function render<K extends string>(cases: Record<K, Record<string, string>>): Record<K, Record<Role, HostView>> {
  const names = Object.keys(cases) as K[];
  // Each case's host of a role stands for the same host: the parts of its environment that come
  // from its name and address (group_vars/all/service.yml) are the same in every case.
  const identity = (role: Role) => ({ CADFLEET_NODE_ID: `${role}-1`, CADFLEET_ADVERTISE_URL: 'http://10.0.0.10:8080' });
  const inventory = {
    all: {
      vars: { ansible_connection: 'local', ansible_python_interpreter: '/usr/bin/python3' },
      children: Object.fromEntries(
        ROLES.map((role) => [role, { hosts: Object.fromEntries(names.map((c, i) => [`c${i}-${role}`, { cadfleet_service_env_common: cases[c], cadfleet_service_env_host: identity(role) }])) }]),
      ),
    },
  };
  fs.writeFileSync(path.join(workDir, 'inventory.json'), JSON.stringify(inventory));
  const vars = { cadfleet_deploy_digest: 'a'.repeat(64), release_version: 'v1' };
  const r = spawnSync('ansible-playbook', ['-i', 'inventory.json', 'render.yml', '-e', JSON.stringify(vars)], {
    cwd: workDir,
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_ROLES_PATH: path.join(repoRoot, 'ansible/roles'), ANSIBLE_NOCOLOR: '1', ANSIBLE_FORKS: '20' },
  });
  if (r.error) throw new Error(`ansible-playbook could not start (${r.error.message}): apt-get install ansible`);
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  const rendered = JSON.parse(fs.readFileSync(path.join(workDir, 'rendered.json'), 'utf8')) as Record<string, HostView>;
  const read = (host: string): HostView => rendered[host]!;
  return Object.fromEntries(names.map((c, i) => [c, Object.fromEntries(ROLES.map((role) => [role, read(`c${i}-${role}`)]))])) as Record<K, Record<Role, HostView>>;
}

const SETTINGS = {
  CADFLEET_REDIS_URL: 'rediss://data:6379',
  CADFLEET_STREAM_TOKEN_SECRET: 's'.repeat(32),
  CADFLEET_STREAM_TOKEN_TTL_MS: '30000',
  CADFLEET_WORKER_CONCURRENCY: '2',
};

/** The roles whose digest differs between two renderings. */
const moved = (a: Record<Role, HostView>, b: Record<Role, HostView>): Role[] => ROLES.filter((r) => a[r].digest !== b[r].digest);

describe('the playbooks\' group_vars', () => {
  it('give each app host the settings its role reads: worker settings to workers, streaming settings (the token secret above all) to the api and streamers', () => {
    const view = render({ base: SETTINGS }).base;
    expect(view.worker.serviceEnv).toMatchObject({ CADFLEET_REDIS_URL: SETTINGS.CADFLEET_REDIS_URL, CADFLEET_WORKER_CONCURRENCY: '2' });
    expect(view.worker.serviceEnv).not.toHaveProperty('CADFLEET_STREAM_TOKEN_SECRET');
    expect(view.worker.serviceEnv).not.toHaveProperty('CADFLEET_STREAM_TOKEN_TTL_MS');
    for (const role of ['api', 'streamer'] as const) {
      expect(view[role].serviceEnv, role).toMatchObject({ CADFLEET_REDIS_URL: SETTINGS.CADFLEET_REDIS_URL, CADFLEET_STREAM_TOKEN_SECRET: SETTINGS.CADFLEET_STREAM_TOKEN_SECRET, CADFLEET_STREAM_TOKEN_TTL_MS: '30000' });
      expect(view[role].serviceEnv, role).not.toHaveProperty('CADFLEET_WORKER_CONCURRENCY');
    }
    expect(view.lb.serviceEnv).toBeNull();
    expect(view.data.serviceEnv).toBeNull();
  });

  it('withhold nothing a streamer reads (every setting of its schema reaches it)', () => {
    const every = Object.fromEntries(STREAMER_SETTINGS.map((name) => [name, 'x']));
    const view = render({ every: { ...SETTINGS, ...every } }).every;
    expect(Object.keys(view.streamer.serviceEnv ?? {}).filter((name) => name in every).sort()).toEqual([...STREAMER_SETTINGS].sort());
  });

  it('keep the LB\'s keepalive_time below the api\'s linger, whatever the linger is set to', () => {
    const lingers = { unset: undefined, '12000': '12000', '5000': '5000', '2500': '2500', '0': '0', '60000': '60000' } as const;
    const expected: Record<keyof typeof lingers, string> = { unset: '10s', '12000': '10s', '5000': '3s', '2500': '1s', '0': '1s', '60000': '10s' };
    const cases = Object.fromEntries(Object.entries(lingers).map(([k, v]) => [k, v === undefined ? SETTINGS : { ...SETTINGS, CADFLEET_LB_LINGER_MS: v }]));
    const views = render(cases as unknown as Record<keyof typeof lingers, Record<string, string>>);
    for (const key of Object.keys(lingers) as Array<keyof typeof lingers>) {
      expect(views[key].lb.keepaliveTime, `linger ${key}`).toBe(expected[key]);
      const lingerMs = Number(lingers[key] ?? 12_000);
      // A client connection ends before the api stops serving (a linger under 2 s leaves the 1 s floor).
      if (lingerMs >= 2000) expect(Number(expected[key].slice(0, -1)) * 1000, `linger ${key}`).toBeLessThan(lingerMs);
    }
  });

  it('move a host\'s deploy digest only for a setting that host reads', () => {
    const v = render({
      base: SETTINGS,
      same: { ...SETTINGS },
      concurrency: { ...SETTINGS, CADFLEET_WORKER_CONCURRENCY: '3' },
      secret: { ...SETTINGS, CADFLEET_STREAM_TOKEN_SECRET: 't'.repeat(32) },
      sessions: { ...SETTINGS, CADFLEET_STREAM_SESSION_TTL_MS: '600000' },
      redis: { ...SETTINGS, CADFLEET_REDIS_URL: 'rediss://other:6379' },
      linger: { ...SETTINGS, CADFLEET_LB_LINGER_MS: '5000' },
      webhooks: { ...SETTINGS, CADFLEET_WEBHOOK_ATTEMPTS: '3' },
      exports: { ...SETTINGS, CADFLEET_EXPORT_TIMEOUT_MS: '60000', CADFLEET_DOWNLOAD_URL_EXPIRES_SECONDS: '600' },
    });
    expect(new Set(ROLES.map((r) => v.base[r].digest)).size).toBe(ROLES.length);
    expect(moved(v.base, v.same)).toEqual([]);
    expect(moved(v.base, v.concurrency)).toEqual(['worker']);
    expect(moved(v.base, v.secret)).toEqual(['api', 'streamer']);
    expect(moved(v.base, v.sessions)).toEqual(['api', 'streamer']);
    expect(moved(v.base, v.redis)).toEqual(['lb', 'api', 'worker', 'streamer']);
    expect(moved(v.base, v.linger)).toEqual(['lb', 'api', 'worker', 'streamer']);
    // Read by the api and the workers (loadConfig), never by the streamers (loadStreamerConfig).
    expect(moved(v.base, v.webhooks)).toEqual(['api', 'worker']);
    expect(moved(v.base, v.exports)).toEqual(['api', 'worker']);
  });
});
