// The common role's time sync (ansible/roles/common/tasks/time.yml), run for real by
// ansible-playbook against a copy of Debian 12's chrony.conf in a folder of the test's own
// (common_chrony_dir; common_image_build keeps it from installing or starting anything here).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ansibleDir = path.resolve('ansible');
let workDir: string;
let chronyDir: string;

/** The lines of Debian 12's /etc/chrony/chrony.conf that choose sources. */
const DEBIAN_CHRONY_CONF = `# Welcome to the chrony configuration file. See chrony.conf(5) for more
# information about usable directives.

# Use Debian vendor zone.
pool 2.debian.pool.ntp.org iburst

# Use time sources from DHCP.
sourcedir /run/chrony-dhcp

# Use NTP sources found in /etc/chrony/sources.d.
sourcedir /etc/chrony/sources.d

# This directive specify the location of the file containing ID/key pairs for
# NTP authentication.
keyfile /etc/chrony/chrony.keys
`;

function play(provider: string): { status: number | null; output: string } {
  const r = spawnSync(
    'ansible-playbook',
    ['-i', 'localhost,', '-c', 'local', '-e', `cadfleet_provider=${provider}`, '-e', 'common_image_build=true', '-e', `common_chrony_dir=${chronyDir}`, 'time.yml'],
    {
      cwd: workDir,
      encoding: 'utf8',
      env: { ...process.env, ANSIBLE_ROLES_PATH: path.join(ansibleDir, 'roles'), ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCAL_TEMP: path.join(workDir, 'tmp'), ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3' },
    },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-time-'));
  chronyDir = path.join(workDir, 'chrony');
  fs.mkdirSync(path.join(chronyDir, 'sources.d'), { recursive: true });
  fs.writeFileSync(path.join(chronyDir, 'chrony.conf'), DEBIAN_CHRONY_CONF);
  fs.writeFileSync(
    path.join(workDir, 'time.yml'),
    `- name: The common role's time sync.
  hosts: all
  gather_facts: false
  tasks:
    - name: As main.yml includes it, on every host.
      ansible.builtin.include_role:
        name: common
        tasks_from: time.yml
`,
  );
});

afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

describe("the common role's clock", () => {
  it('on AWS: chrony follows the Amazon Time Sync Service only, and a second run changes nothing', () => {
    const first = play('aws');
    expect(first.status, first.output).toBe(0);
    expect(fs.readFileSync(path.join(chronyDir, 'sources.d/cadfleet.sources'), 'utf8')).toBe('# Managed by cadfleet (role common).\nserver 169.254.169.123 prefer iburst minpoll 4 maxpoll 4\n');
    const conf = fs.readFileSync(path.join(chronyDir, 'chrony.conf'), 'utf8');
    // Debian's pool (out of reach: no NTP egress) is off; the folder our file is in is still read.
    expect(conf.split('\n').filter((l) => /^(pool|server) /.test(l))).toEqual([]);
    expect(conf).toContain('# (cadfleet: the servers of sources.d/cadfleet.sources only) pool 2.debian.pool.ntp.org iburst\n');
    expect(conf).toContain('\nsourcedir /etc/chrony/sources.d\n');
    const again = play('aws');
    expect(again.status, again.output).toBe(0);
    expect(again.output).toMatch(/localhost\s+: ok=\d+\s+changed=0/);
  }, 120_000);

  it('on the local fleet: leaves time alone (the hosts keep this machine\'s clock)', () => {
    fs.writeFileSync(path.join(chronyDir, 'chrony.conf'), DEBIAN_CHRONY_CONF);
    fs.rmSync(path.join(chronyDir, 'sources.d/cadfleet.sources'), { force: true });
    const run = play('local');
    expect(run.status, run.output).toBe(0);
    expect(run.output).toMatch(/localhost\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0\s+skipped=4/);
    expect(fs.readFileSync(path.join(chronyDir, 'chrony.conf'), 'utf8')).toBe(DEBIAN_CHRONY_CONF);
    expect(fs.existsSync(path.join(chronyDir, 'sources.d/cadfleet.sources'))).toBe(false);
  }, 120_000);
});
