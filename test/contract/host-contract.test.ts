// The host contract (ansible/playbooks/group_vars/all/host_contract.json) is the one place that
// names a host's ports, its units and its install paths: no copy of them anywhere else in the
// code that deploys and runs hosts, so that changing one is one edit the tests then check.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOST_CONTRACT, envFileOf, localUrlOf, portOf, unitsOf } from '../../app/src/shared/host-contract';
import { READY, switchScript } from '../../cli/src/upgrade/runner';
import { ROLE_CHECKS } from '../../cli/src/commands/status';
import { PORTS } from '../../stacks/contract';

const ROOT = path.join(__dirname, '../..');
const CONTRACT_FILE = 'ansible/playbooks/group_vars/all/host_contract.json';
const tracked = (dirs: string[]): string[] =>
  execFileSync('git', ['ls-files', '-z', ...dirs], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f && f !== CONTRACT_FILE && fs.existsSync(path.join(ROOT, f)) && !/\.(png|jpe?g|glb|wasm|gz|zip|ico)$/.test(f));

/** Each literal of the contract that must appear nowhere else, with the files and lines that hold a copy. */
function copies(dirs: string[], needles: Array<{ what: string; pattern: RegExp }>): string[] {
  const found: string[] = [];
  for (const file of tracked(dirs)) {
    const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const { what, pattern } of needles) if (pattern.test(line)) found.push(`${file}:${i + 1}: ${what}: ${line.trim().slice(0, 160)}`);
    });
  }
  return found;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('the host contract', () => {
  it('is the only place that names an app port or the install folder, in cli/, stacks/, app/src and ansible/', () => {
    const ports = (['api', 'worker', 'streamer'] as const).map((role) => ({ what: `the ${role}'s port`, pattern: new RegExp(`(?<![\\d.])${portOf(role)}(?![\\d])`) }));
    const install = { what: 'the install folder', pattern: new RegExp(escape(HOST_CONTRACT.install.dir)) };
    expect(copies(['cli', 'stacks', 'app/src', 'ansible'], [...ports, install])).toEqual([]);
  });

  it("is the only place in cli/, stacks/ and app/src that names a cadfleet unit (Ansible's unit templates are named after them)", () => {
    const units = [...new Set(Object.values(HOST_CONTRACT.roles).flatMap((r) => r.units))].filter((u) => u.startsWith('cadfleet-'));
    expect(units.sort()).toEqual(['cadfleet-api', 'cadfleet-lb-sync', 'cadfleet-s3', 'cadfleet-streamer', 'cadfleet-worker']);
    const needles = units.map((u) => ({ what: `the unit ${u}`, pattern: new RegExp(`['"\`]${escape(u)}(\\.service)?['"\`]|${escape(u)}\\.service`) }));
    expect(copies(['cli', 'stacks', 'app/src'], needles)).toEqual([]);
  });

  it('is what the CLI, the stacks and the service read: a changed value reaches each of them', () => {
    expect(PORTS.api).toBe(HOST_CONTRACT.roles.api.port);
    expect(PORTS.streamer).toBe(HOST_CONTRACT.roles.streamer.port);
    expect(PORTS.worker).toBe(HOST_CONTRACT.roles.worker.port);
    expect(READY.api).toBe(`http://127.0.0.1:${HOST_CONTRACT.roles.api.port}${HOST_CONTRACT.roles.api.ready}`);
    expect(READY.lb).toBe(`http://127.0.0.1${HOST_CONTRACT.roles.lb.ready}`);
    expect(localUrlOf('worker', 'health')).toBe(`http://127.0.0.1:${HOST_CONTRACT.roles.worker.port}/healthz`);
    expect(ROLE_CHECKS.data).toEqual({ units: HOST_CONTRACT.roles.data.units, healthPort: 0 });
    expect(ROLE_CHECKS.streamer.healthPort).toBe(HOST_CONTRACT.roles.streamer.port);
    expect(envFileOf('api')).toBe(`${HOST_CONTRACT.install.config_dir}/api.env`);
    expect(unitsOf('lb')).toEqual(HOST_CONTRACT.roles.lb.units.map((u) => `${u}.service`));
    // The upgrade's switch, as one exact line: the release's units stopped, `current` moved atomically, started.
    expect(switchScript('worker', '1.2.3-abc')).toBe(
      [
        `test -f '${HOST_CONTRACT.install.releases}/1.2.3-abc/VERSION' || { echo "release 1.2.3-abc is not installed on this host" >&2; exit 3; }`,
        `if [ ! -e /etc/systemd/system/cadfleet-worker.service ] && [ -f '${HOST_CONTRACT.install.releases}/1.2.3-abc/systemd/cadfleet-worker.service' ] && [ -f ${HOST_CONTRACT.install.config_dir}/worker.env ]; then ` +
          `sudo install -D -m 0644 '${HOST_CONTRACT.install.releases}/1.2.3-abc/systemd/cadfleet-worker.service' /etc/systemd/system/cadfleet-worker.service && sudo systemctl daemon-reload && sudo systemctl enable -q cadfleet-worker.service; fi`,
        'units=$(for u in cadfleet-worker; do systemctl cat "$u" >/dev/null 2>&1 && echo "$u"; done; true)',
        'if [ -n "$units" ]; then sudo systemctl stop $units; fi',
        `sudo ln -sfn '${HOST_CONTRACT.install.releases}/1.2.3-abc' ${HOST_CONTRACT.install.current}.next`,
        `sudo mv -Tf ${HOST_CONTRACT.install.current}.next ${HOST_CONTRACT.install.current}`,
        'if [ -n "$units" ]; then sudo systemctl start $units; fi',
      ].join(' && '),
    );
  });
});
