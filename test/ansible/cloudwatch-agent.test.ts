// The cloudwatch_agent role, rendered by the real ansible-playbook on this machine (local
// connection, into a temporary folder; no AWS, no agent): the metrics it makes CloudWatch
// publish must be exactly the names the stacks scale and alarm on, in their namespace and
// dimension; each host ships its own units' logs; and the local fleet never installs it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PORTS } from '../../stacks/contract';
import { METRICS, METRICS_DIMENSION, METRICS_NAMESPACE, logGroupName } from '../../stacks/metrics';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const ansibleDir = path.join(repoRoot, 'ansible');
const ENV = 'staging';
const HOSTS = { lb: 'lb-1', api: 'api-1', worker: 'worker-1', streamer: 'streamer-1' } as const;
type Role = keyof typeof HOSTS;

interface Relabel {
  source_labels: string[];
  regex: string;
  target_label?: string;
  replacement?: string;
  action?: string;
}
interface ScrapeJob {
  job_name: string;
  metrics_path: string;
  static_configs: Array<{ targets: string[]; labels: Record<string, string> }>;
  metric_relabel_configs: Relabel[];
}
interface Declaration {
  source_labels: string[];
  label_matcher: string;
  dimensions: string[][];
  metric_selectors: string[];
}
interface AgentConfig {
  agent: { run_as_user: string };
  logs: {
    logs_collected: { journald: { collect_list: Array<{ log_group_name: string; log_stream_name: string; units: string[]; priority: string }> } };
    metrics_collected?: {
      prometheus: {
        log_group_name: string;
        prometheus_config_path: string;
        emf_processor: { metric_namespace: string; metric_unit: Record<string, string>; metric_declaration: Declaration[] };
      };
    };
  };
}
interface Rendered {
  agent: AgentConfig;
  scrape?: { scrape_configs: ScrapeJob[] };
}

let workDir: string;
const rendered = {} as Record<Role, Rendered>;

function ansiblePlaybook(args: string[]): { status: number | null; output: string } {
  const r = spawnSync('ansible-playbook', args, {
    cwd: workDir,
    encoding: 'utf8',
    env: {
      ...process.env,
      ANSIBLE_ROLES_PATH: path.join(ansibleDir, 'roles'),
      ANSIBLE_CONFIG: path.join(workDir, 'ansible.cfg'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_LOCAL_TEMP: path.join(workDir, 'tmp'),
      ANSIBLE_REMOTE_TEMP: path.join(workDir, 'tmp'),
    },
  });
  if (r.error) throw new Error(`ansible-playbook is not installed: apt-get install ansible (${r.error.message})`);
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

/** YAML through the Python that runs Ansible anyway (PyYAML comes with it). */
function readYaml(file: string): unknown {
  const r = spawnSync('python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot parse ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Prometheus metric relabelling (replace and keep), as the agent's scraper applies it. */
function relabel(series: Record<string, string>, rules: Relabel[]): Record<string, string> | undefined {
  let labels = { ...series };
  for (const rule of rules) {
    const value = rule.source_labels.map((l) => labels[l] ?? '').join(';');
    const match = new RegExp(`^(?:${rule.regex})$`).test(value);
    if ((rule.action ?? 'replace') === 'keep') {
      if (!match) return undefined;
    } else if (match) {
      labels = { ...labels, [rule.target_label!]: rule.replacement! };
    }
  }
  return labels;
}

const scrapeJob = (role: Role, name: string): ScrapeJob | undefined => rendered[role].scrape?.scrape_configs.find((j) => j.job_name === name);
const selectors = (d: Declaration): string[] => d.metric_selectors.map((s) => s.replace(/^\^(.*)\$$/, '$1'));

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-cloudwatch-agent-'));
  fs.mkdirSync(path.join(workDir, 'tmp'));
  fs.writeFileSync(path.join(workDir, 'ansible.cfg'), '[defaults]\nretry_files_enabled = False\ngathering = explicit\n');
  fs.writeFileSync(
    path.join(workDir, 'inventory.ini'),
    [
      ...Object.entries(HOSTS).flatMap(([group, host]) => [`[${group}]`, host]),
      '[all:vars]',
      'ansible_connection=local',
      'ansible_python_interpreter=auto_silent',
      `cadfleet_environment=${ENV}`,
      'cadfleet_provider=aws',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(workDir, 'render.yml'),
    `- name: Render the CloudWatch agent configuration of every kind of host.
  hosts: all
  gather_facts: false
  tasks:
    - name: Render the role's configuration into a folder per host.
      ansible.builtin.include_role:
        name: cloudwatch_agent
        tasks_from: config.yml
      vars:
        cloudwatch_agent_config_dir: "${workDir}/out/{{ inventory_hostname }}"
        cloudwatch_agent_config_owner: "${os.userInfo().username}"
        cloudwatch_agent_manage_service: false
`,
  );
  const run = ansiblePlaybook(['-i', 'inventory.ini', 'render.yml']);
  expect(run.status, run.output).toBe(0);
  for (const [role, host] of Object.entries(HOSTS) as Array<[Role, string]>) {
    const dir = path.join(workDir, 'out', host);
    const scrapeFile = path.join(dir, 'cadfleet-prometheus.yaml');
    rendered[role] = {
      agent: JSON.parse(fs.readFileSync(path.join(dir, 'cadfleet.json'), 'utf8')) as AgentConfig,
      scrape: fs.existsSync(scrapeFile) ? (readYaml(scrapeFile) as Rendered['scrape']) : undefined,
    };
  }
}, 120_000);

afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe('the cloudwatch_agent role, rendered by ansible', () => {
  it('makes CloudWatch publish exactly the metric names the stacks scale and alarm on, in their namespace and dimension', () => {
    const published = new Set<string>();
    for (const role of Object.keys(HOSTS) as Role[]) {
      const prometheus = rendered[role].agent.logs.metrics_collected?.prometheus;
      if (!prometheus) continue;
      expect(prometheus.emf_processor.metric_namespace, role).toBe(METRICS_NAMESPACE);
      expect(Object.keys(prometheus.emf_processor.metric_unit).sort(), role).toEqual(Object.values(METRICS).sort());
      for (const declaration of prometheus.emf_processor.metric_declaration) {
        expect(declaration.dimensions, role).toEqual([[METRICS_DIMENSION]]);
        expect(declaration.source_labels).toEqual(['job']);
        const job = declaration.label_matcher.replace(/^\^(.*)\$$/, '$1');
        const scrape = scrapeJob(role, job);
        expect(scrape, `${role}: ${job} is scraped`).toBeDefined();
        // The dimension's value is the environment, on every series of the job.
        expect(scrape!.static_configs.map((c) => c.labels)).toEqual([{ [METRICS_DIMENSION]: ENV }]);
        // What the job renames to is what the declaration selects, and nothing else is kept.
        const renamed = scrape!.metric_relabel_configs.filter((r) => r.target_label === '__name__').map((r) => r.replacement!);
        expect(selectors(declaration).sort()).toEqual([...renamed].sort());
        for (const name of selectors(declaration)) published.add(name);
      }
    }
    expect([...published].sort()).toEqual(Object.values(METRICS).sort());
  });

  it('turns the app\'s Prometheus series into those names, and drops every other series', () => {
    const rules = scrapeJob('api', 'cadfleet-api')!.metric_relabel_configs;
    const name = (series: Record<string, string>): string | undefined => relabel(series, rules)?.__name__;
    expect(name({ __name__: 'cadfleet_queue_jobs', state: 'waiting', role: 'api' })).toBe(METRICS.queueDepth);
    expect(name({ __name__: 'cadfleet_queue_jobs', state: 'active' })).toBeUndefined();
    expect(name({ __name__: 'cadfleet_http_requests_total', status: '503', route: '/api/v1/models' })).toBe(METRICS.http5xx);
    expect(name({ __name__: 'cadfleet_http_requests_total', status: '200' })).toBeUndefined();
    expect(name({ __name__: 'cadfleet_queue_oldest_job_age_seconds' })).toBe(METRICS.oldestJobAgeSeconds);
    expect(name({ __name__: 'cadfleet_process_cpu_seconds_total' })).toBeUndefined();
    // Streamers publish their own sessions and 5xx; the fleet-wide queue gauges come from the api only.
    const streamer = scrapeJob('streamer', 'cadfleet-streamer')!.metric_relabel_configs;
    expect(relabel({ __name__: 'cadfleet_stream_sessions', role: 'streamer' }, streamer)?.__name__).toBe(METRICS.activeSessions);
    expect(relabel({ __name__: 'cadfleet_stream_sessions_total', outcome: 'closed' }, streamer)).toBeUndefined();
    expect(relabel({ __name__: 'cadfleet_http_requests_total', status: '500' }, streamer)?.__name__).toBe(METRICS.http5xx);
    expect(relabel({ __name__: 'cadfleet_queue_jobs', state: 'waiting' }, streamer)).toBeUndefined();
  });

  it('scrapes each role on the port its service serves /metrics on, on the host itself', () => {
    expect(scrapeJob('api', 'cadfleet-api')!.static_configs[0]!.targets).toEqual([`127.0.0.1:${PORTS.api}`]);
    expect(scrapeJob('streamer', 'cadfleet-streamer')!.static_configs[0]!.targets).toEqual([`127.0.0.1:${PORTS.streamer}`]);
    for (const role of ['api', 'streamer'] as const) expect(scrapeJob(role, `cadfleet-${role}`)!.metrics_path).toBe('/metrics');
    // Workers and the LB are the source of none of the metrics: nothing to scrape there.
    expect(rendered.worker.agent.logs.metrics_collected).toBeUndefined();
    expect(rendered.lb.agent.logs.metrics_collected).toBeUndefined();
    expect(rendered.api.agent.logs.metrics_collected!.prometheus.log_group_name).toBe(logGroupName('metrics', ENV));
  });

  it("ships each host's own cadfleet units from journald to the environment's journal log group, as an unprivileged user", () => {
    const shipped = Object.fromEntries(
      (Object.keys(HOSTS) as Role[]).map((role) => {
        const [entry, ...rest] = rendered[role].agent.logs.logs_collected.journald.collect_list;
        expect(rest).toEqual([]);
        expect(entry!.log_group_name).toBe(logGroupName('journal', ENV));
        expect(entry!.log_stream_name).toBe('{instance_id}');
        return [role, entry!.units];
      }),
    );
    expect(shipped).toEqual({
      lb: ['nginx.service', 'cadfleet-lb-sync.service'],
      api: ['cadfleet-api.service'],
      worker: ['cadfleet-worker.service'],
      streamer: ['cadfleet-streamer.service'],
    });
    for (const role of Object.keys(HOSTS) as Role[]) expect(rendered[role].agent.agent.run_as_user).toBe('cwagent');
  });

  it('does nothing on the local fleet: every task is skipped, nothing is downloaded or installed', () => {
    fs.writeFileSync(
      path.join(workDir, 'local.yml'),
      `- name: Apply the role as site.yml does on the local fleet.
  hosts: api
  gather_facts: false
  roles:
    - role: cloudwatch_agent
`,
    );
    // --check as a safety net: were the guard broken, this machine would still be left alone.
    const run = ansiblePlaybook(['-i', 'inventory.ini', '--check', '-e', 'cadfleet_provider=local', 'local.yml']);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toMatch(/api-1\s+: ok=0\s+changed=0\s+unreachable=0\s+failed=0\s+skipped=3/);
    // site.yml (the local fleet's deploy) and release-install.yml (what `cadfleet upgrade` runs
    // on AWS hosts) run the role on every AWS host kind, and only where the provider is aws.
    for (const playbook of ['site.yml', 'release-install.yml']) {
      const plays = (readYaml(path.join(ansibleDir, 'playbooks', playbook)) as Array<{ hosts: string; roles?: Array<{ role: string; when?: string }> }>).filter((p) =>
        p.roles?.some((r) => r.role === 'cloudwatch_agent'),
      );
      expect(plays, playbook).toHaveLength(1);
      // Less the hosts a deploy leaves out for their record (site.yml's `!cadfleet_deploy_current`).
      expect(plays[0]!.hosts.split(':').filter((p) => !p.startsWith('!')).sort()).toEqual(['api', 'lb', 'streamer', 'worker']);
      expect(plays[0]!.roles!.find((r) => r.role === 'cloudwatch_agent')!.when).toMatch(/cadfleet_provider.*==\s*'aws'/);
    }
  }, 60_000);
});
