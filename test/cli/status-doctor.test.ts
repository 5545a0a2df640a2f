import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { checksFor, runChecks } from '../../cli/src/commands/doctor';
import { parseStatus, statusScript } from '../../cli/src/commands/status';

const api = { name: 'cf-api-1', role: 'api' as const, index: 1, address: '10.213.0.21' };

describe('status of a host', () => {
  it('reads release, units, health and queue depth', () => {
    const out = ['release=0.1.0-abc', 'unit.cadfleet-api=active', 'health=200', 'metric cadfleet_queue_jobs{state="waiting",role="api",node="cf-api-1"} 3', 'metric cadfleet_queue_jobs{state="active",role="api",node="cf-api-1"} 2'].join('\n');
    expect(parseStatus(api, out, true)).toEqual({ host: 'cf-api-1', role: 'api', address: '10.213.0.21', reachable: true, release: '0.1.0-abc', units: { 'cadfleet-api': 'active' }, health: 'ok', figures: { queue: 5 }, warnings: [], ok: true });
  });

  it('calls a host with a stopped unit degraded, and one that does not answer down', () => {
    expect(parseStatus(api, 'release=x\nunit.cadfleet-api=failed\nhealth=000', true)).toMatchObject({ ok: false, health: 'failing (000)', units: { 'cadfleet-api': 'failed' } });
    expect(parseStatus(api, '', false)).toMatchObject({ ok: false, reachable: false, health: 'unreachable', release: null });
  });

  it('warns, without calling the host degraded, when the LB serves a self-signed certificate', () => {
    const lb = { name: 'cf-lb', role: 'lb' as const, index: 1, address: '10.213.0.10' };
    const parsed = parseStatus(lb, 'release=x\nunit.nginx=active\nunit.cadfleet-lb-sync=active\nhealth=200\nwarning=self-signed-certificate', true);
    expect(parsed.ok).toBe(true);
    expect(parsed.warnings).toEqual([expect.stringMatching(/^the LB serves a self-signed certificate \(browsers warn\): set tls_certificate_parameter/)]);
    // The check reads the marker the nginx_lb role leaves beside a certificate it made itself.
    expect(statusScript('lb')).toContain('test -e /etc/nginx/cadfleet/tls/self-signed && echo warning=self-signed-certificate');
    expect(statusScript('api')).not.toContain('self-signed');
  });

  it('checks each role\'s own units and health port', () => {
    expect(statusScript('lb')).toContain('for u in nginx cadfleet-lb-sync;');
    expect(statusScript('worker')).toContain('http://127.0.0.1:9464/healthz');
    expect(statusScript('data')).toContain('echo health=n/a');
  });
});

describe('doctor', () => {
  it('says how to fix each missing piece and tells required from optional', () => {
    const missing = runChecks(() => ({ ok: false, out: '' }), {}, 1000);
    const byName = Object.fromEntries(missing.map((c) => [c.name, c]));
    expect(byName['ansible-playbook']).toMatchObject({ ok: false, optional: false, fix: expect.stringMatching(/apt-get install ansible/) });
    expect(byName.terraform!.fix).toMatch(/Terraform 1\.10 or newer/);
    expect(byName.root).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/sudo/) });
    expect(byName['AWS credentials']).toMatchObject({ ok: false, optional: true });
    expect(byName['boto3 (for Ansible)']).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/python3-boto3/) });
    expect(byName['session-manager-plugin']).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/CADFLEET_HOST_ROUTE=bastion/) });
    expect(byName['AWS CLI']).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/apt-get install awscli/) });
    expect(byName['amazon.aws (Ansible collection)']).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/ansible-galaxy collection install 'amazon\.aws>=5\.0'/) });
    expect(byName['community.general, ansible.posix (Ansible collections)']).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/community\.general ansible\.posix/) });
    expect(byName.packer).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/Packer/) });
  });

  it("finds, for real, the AWS CLI and the Ansible collections scripts/setup.sh installs, and names one that is not there", () => {
    const real = runChecks();
    const byName = Object.fromEntries(real.map((c) => [c.name, c]));
    expect(byName['AWS CLI'], 'scripts/setup.sh installs awscli').toMatchObject({ ok: true, found: expect.stringMatching(/^\d+\.\d+/) });
    expect(byName['amazon.aws (Ansible collection)'], "scripts/setup.sh installs Debian's ansible").toMatchObject({ ok: true, found: expect.stringMatching(/^[5-9]\.\d+/) });
    expect(byName['community.general, ansible.posix (Ansible collections)']).toMatchObject({ ok: true });
    // The same probe, with a collection that no machine has: the check fails and says how to install it.
    const probeOf = (argv: string[]): { ok: boolean; out: string } => {
      const r = spawnSync(argv[0]!, argv.slice(1).map((a) => a.replaceAll('amazon.aws', 'cadfleet.absent').replaceAll('amazon\\.aws', 'cadfleet\\.absent')), { encoding: 'utf8' });
      return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
    };
    const without = runChecks(probeOf).find((c) => c.name === 'amazon.aws (Ansible collection)')!;
    expect(without).toMatchObject({ ok: false, found: 'not found', fix: expect.stringMatching(/apt-get install ansible/) });
  });

  it("finds boto3 in Ansible's own Python, where the inventory plugin imports it", () => {
    const boto = runChecks().find((c) => c.name === 'boto3 (for Ansible)')!;
    expect(boto, 'scripts/setup.sh installs python3-boto3').toMatchObject({ ok: true });
    expect(boto.found).toMatch(/^1\.\d+/);
  });

  it('wants Node 22 or 24, and warns on Node 20 (past end of life) without failing', () => {
    const node = (version: string) => runChecks(() => ({ ok: true, out: 'v9.9.9' }), {}, 0, version).find((c) => c.name === 'node');
    expect(node('24.21.0')).toMatchObject({ ok: true, fix: '' });
    expect(node('22.12.0')).toMatchObject({ ok: true });
    expect(node('20.20.2')).toMatchObject({ ok: false, optional: true, fix: expect.stringMatching(/past end of life.*22 or 24/) });
    expect(node('18.20.0')).toMatchObject({ ok: false, optional: false, fix: 'install Node.js 22 or 24 (LTS)' });
  });

  it('refuses tools that are too old', () => {
    const old = runChecks((argv) => ({ ok: true, out: argv[0] === 'ansible-playbook' ? 'ansible-playbook [core 2.12.1]' : 'v9.9.9' }), { AWS_PROFILE: 'x' }, 0);
    expect(old.find((c) => c.name === 'ansible-playbook')).toMatchObject({ ok: false, found: '2.12.1' });
    expect(old.find((c) => c.name === 'terraform')).toMatchObject({ ok: true });
  });
});

describe('doctor --env', () => {
  it("for local, requires the fleet's tools and kernel features, probed for real, and drops the AWS checks", async () => {
    const checks = await checksFor('local', runChecks(() => ({ ok: true, out: 'v9.9.9' }), {}, 0, '24.21.0'));
    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    for (const name of ['root', 'systemd-nspawn', 'debootstrap', 'ip', 'unshare', 'overlay file system', 'cgroups', 'network namespaces']) {
      expect(byName[name], `${name} (scripts/setup.sh installs the tools; the tests run as root)`).toMatchObject({ ok: true, optional: false });
    }
    expect(byName['network namespaces']!.found).toBe('netns, bridge, veth');
    expect(byName['AWS credentials']).toBeUndefined();
    // The probe left nothing behind: its bridge lived in a namespace that is gone.
    expect(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })).not.toContain('cfprobe');
  });

  it('for an AWS environment, requires its credentials and drops the local fleet checks', async () => {
    const checks = await checksFor('staging', runChecks(() => ({ ok: false, out: '' }), {}, 1000));
    expect(checks.find((c) => c.name === 'AWS credentials')).toMatchObject({ ok: false, optional: false });
    for (const name of ['AWS CLI', 'amazon.aws (Ansible collection)', 'boto3 (for Ansible)', 'session-manager-plugin']) expect(checks.find((c) => c.name === name), name).toMatchObject({ ok: false, optional: false });
    // The host image's tools stay optional: hosts boot from Debian's AMI without it.
    expect(checks.find((c) => c.name === 'packer')).toMatchObject({ optional: true });
    expect(checks.find((c) => c.name === 'systemd-nspawn')).toBeUndefined();
  });
});
