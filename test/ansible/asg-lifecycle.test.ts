// The lifecycle watcher of the asg_lifecycle role (what an app host does for its auto scaling
// group), rendered by the real ansible-playbook from the role's template and run with bash:
// `curl` (IMDS and the service's /healthz), `aws`, `systemctl` and `sleep` are stubs that record
// what they were asked, so the order of the drain and the one unhealthy report are visible.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
let dir: string;

const STUBS: Record<string, string> = {
  // IMDS answers from files; /healthz fails while $HEALTH_DOWN exists. After $TERMINATE_AFTER looks
  // at the lifecycle state, it says Terminated (as when the group scales in).
  curl: `#!/bin/bash
url="\${@: -1}"
case "$url" in
  */latest/api/token) echo "curl token" >> "$CALLS"; printf imds-token ;;
  */meta-data/instance-id) printf i-0abc ;;
  */meta-data/placement/region) printf eu-west-1 ;;
  */meta-data/autoscaling/target-lifecycle-state)
    n=$(( $(cat "$DIR/looks" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$DIR/looks"
    if [ "$n" -gt "\${TERMINATE_AFTER:-0}" ]; then printf Terminated; else printf InService; fi ;;
  */healthz) echo "curl healthz" >> "$CALLS"; [ ! -e "$DIR/health-down" ] ;;
  *) echo "curl stub: unexpected $url" >&2; exit 22 ;;
esac
`,
  aws: `#!/bin/bash
echo "aws $*" >> "$CALLS"
if [ "$4" = complete-lifecycle-action ] || [ "$2" = complete-lifecycle-action ]; then
  n=$(( $(cat "$DIR/completes" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$DIR/completes"
  [ "$n" -gt "\${COMPLETE_FAILS:-0}" ] || { echo "An error occurred (Throttling)" >&2; exit 255; }
fi
exit 0
`,
  systemctl: '#!/bin/bash\necho "systemctl $*" >> "$CALLS"\n',
  sleep: '#!/bin/bash\necho "sleep $*" >> "$CALLS"\n',
};

function render(vars: Record<string, unknown>): string {
  const out = path.join(dir, `watcher-${Math.random().toString(36).slice(2)}.sh`);
  const play = path.join(dir, 'render.yml');
  fs.writeFileSync(play, `- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.template:\n        src: ${path.join(repoRoot, 'ansible/roles/asg_lifecycle/templates/cadfleet-lifecycle.sh.j2')}\n        dest: ${out}\n        mode: "0755"\n`);
  const defaults = path.join(repoRoot, 'ansible/roles/asg_lifecycle/defaults/main.yml');
  const r = spawnSync('ansible-playbook', ['-i', 'localhost,', '-c', 'local', '-e', `@${defaults}`, '-e', JSON.stringify(vars), play], {
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: path.join(dir, 'tmp'), ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3' },
  });
  if (r.error) throw new Error(`ansible-playbook is not installed: apt-get install ansible (${r.error.message})`);
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  return out;
}

function run(script: string, env: Record<string, string> = {}): { code: number | null; calls: string[]; output: string } {
  const calls = path.join(dir, `calls-${Math.random().toString(36).slice(2)}`);
  const state = fs.mkdtempSync(path.join(dir, 'state-'));
  if (env.HEALTH_DOWN) fs.writeFileSync(path.join(state, 'health-down'), '');
  fs.writeFileSync(calls, '');
  const r = spawnSync('bash', [script], { encoding: 'utf8', timeout: 30_000, env: { PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`, CALLS: calls, DIR: state, ...env } });
  return { code: r.status, calls: fs.readFileSync(calls, 'utf8').trim().split('\n'), output: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-asg-lifecycle-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.mkdirSync(path.join(dir, 'tmp'));
  for (const [name, body] of Object.entries(STUBS)) fs.writeFileSync(path.join(dir, 'bin', name), body, { mode: 0o755 });
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the lifecycle watcher', () => {
  const worker = { asg_lifecycle_role: 'worker', asg_lifecycle_group: 'cadfleet-staging-worker', asg_lifecycle_hook: 'drain' };

  it('on scale-in: stops the service (its drain) first, then completes the lifecycle action, trying again until AWS takes it', () => {
    const r = run(render(worker), { TERMINATE_AFTER: '2', COMPLETE_FAILS: '1' });
    expect(r.code, r.output).toBe(0);
    const stop = r.calls.indexOf('systemctl stop cadfleet-worker');
    const completes = r.calls.map((c, i) => [c, i] as const).filter(([c]) => c.includes('complete-lifecycle-action'));
    expect(stop).toBeGreaterThan(0);
    expect(completes).toHaveLength(2);
    expect(completes[0]![1]).toBeGreaterThan(stop);
    expect(completes[1]![0]).toBe('aws autoscaling complete-lifecycle-action --lifecycle-hook-name drain --auto-scaling-group-name cadfleet-staging-worker --lifecycle-action-result CONTINUE --instance-id i-0abc');
    expect(r.output).toContain('i-0abc is leaving cadfleet-staging-worker (scale-in): draining cadfleet-worker');
    expect(r.output).toContain('lifecycle action drain completed');
    // Nothing is reported unhealthy while the service answers.
    expect(r.calls.some((c) => c.includes('set-instance-health'))).toBe(false);
  });

  it('reports the instance unhealthy once when /healthz keeps failing, to the endpoint it was given', () => {
    const script = render({ ...worker, asg_lifecycle_unhealthy_after: 0, asg_lifecycle_autoscaling_endpoint: 'https://10.1.0.1:4566' });
    const r = run(script, { HEALTH_DOWN: '1', TERMINATE_AFTER: '4' });
    expect(r.code, r.output).toBe(0);
    const reports = r.calls.filter((c) => c.includes('set-instance-health'));
    expect(reports).toEqual(['aws --endpoint-url https://10.1.0.1:4566 autoscaling set-instance-health --instance-id i-0abc --health-status Unhealthy']);
    expect(r.calls.filter((c) => c === 'curl healthz').length).toBeGreaterThanOrEqual(3);
    expect(r.output).toContain('reporting i-0abc unhealthy, so that cadfleet-staging-worker replaces it');
  });

  it('never drains a role without a hook (the api), and waits its threshold before a report', () => {
    const script = render({ asg_lifecycle_role: 'api', asg_lifecycle_group: 'cadfleet-staging-api', asg_lifecycle_hook: '', asg_lifecycle_unhealthy_after: 600 });
    // The loop never ends by itself there: let it look a few times, then time it out.
    const calls = path.join(dir, 'api-calls');
    fs.writeFileSync(calls, '');
    const state = fs.mkdtempSync(path.join(dir, 'state-'));
    fs.writeFileSync(path.join(state, 'health-down'), '');
    spawnSync('bash', [script], { encoding: 'utf8', timeout: 2_000, env: { PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`, CALLS: calls, DIR: state, TERMINATE_AFTER: '0' } });
    const seen = fs.readFileSync(calls, 'utf8').trim().split('\n');
    expect(seen.filter((c) => c === 'curl healthz').length).toBeGreaterThan(1);
    expect(seen.some((c) => c.startsWith('systemctl stop') || c.includes('complete-lifecycle-action') || c.includes('set-instance-health'))).toBe(false);
    expect(fs.existsSync(path.join(state, 'looks'))).toBe(false);
  });
});
