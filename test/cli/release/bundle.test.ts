import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildRelease, renderLbSyncUnit, renderServiceUnit, tarballName, validateVersion } from '../../../cli/src/release/bundle';
import { tempDir } from '../../helpers/convert';
import { cax } from '../../helpers/samples';

/** The host contract, as the playbooks load it (group_vars): the roles' defaults take their values from it. */
const CONTRACT = path.resolve('ansible/playbooks/group_vars/all/host_contract.json');

describe('release bundle', () => {
  const outDir = tempDir('cadfleet-releases-');

  it('carries each role\'s systemd unit exactly as the deploy\'s Ansible role renders it, for hosts no deploy touches', () => {
    const out = tempDir('cadfleet-units-');
    const playbook = path.join(out, 'render.yml');
    const role = path.resolve('ansible/roles/cadfleet_service');
    fs.writeFileSync(
      playbook,
      `- hosts: localhost\n  connection: local\n  gather_facts: false\n  vars_files: [${role}/defaults/main.yml]\n  tasks:\n    - ansible.builtin.template: { src: ${role}/templates/cadfleet.service.j2, dest: "${out}/{{ cadfleet_service_role }}.service" }\n`,
    );
    for (const name of ['api', 'worker', 'streamer'] as const) {
      execFileSync('ansible-playbook', ['-i', 'localhost,', playbook, '-e', `cadfleet_service_role=${name}`, '-e', `@${CONTRACT}`], { stdio: 'pipe', env: { ...process.env, ANSIBLE_NOCOLOR: '1' } });
      const unit = renderServiceUnit(process.cwd(), name);
      expect(unit, name).toBe(fs.readFileSync(path.join(out, `${name}.service`), 'utf8'));
      expect(unit).toContain(`ExecStart=/opt/cadfleet/current/bin/cadfleet-service ${name}\n`);
      expect(unit).toContain(`MemoryMax=${name === 'worker' ? '3G' : '1G'}\n`);
    }
    // The LB's unit too, from the nginx_lb role's template and defaults.
    const lbRole = path.resolve('ansible/roles/nginx_lb');
    const lbPlaybook = path.join(out, 'render-lb.yml');
    fs.writeFileSync(
      lbPlaybook,
      `- hosts: localhost\n  connection: local\n  gather_facts: false\n  vars_files: [${lbRole}/defaults/main.yml]\n  tasks:\n    - ansible.builtin.template: { src: ${lbRole}/templates/cadfleet-lb-sync.service.j2, dest: "${out}/lb-sync.service" }\n`,
    );
    execFileSync('ansible-playbook', ['-i', 'localhost,', lbPlaybook, '-e', `@${CONTRACT}`], { stdio: 'pipe', env: { ...process.env, ANSIBLE_NOCOLOR: '1' } });
    expect(renderLbSyncUnit(process.cwd())).toBe(fs.readFileSync(path.join(out, 'lb-sync.service'), 'utf8'));
    expect(renderLbSyncUnit(process.cwd())).toContain('ExecStart=/opt/cadfleet/current/bin/cadfleet-lb-sync\n');
  }, 60_000);

  it('packs its own Node, the service, the converter and the Ansible content; the same tree gives the same bundle', async () => {
    const first = await buildRelease({ repoRoot: process.cwd(), outDir });
    expect(first.version).toMatch(/^\d+\.\d+\.\d+-[0-9a-f]{10}$/);
    expect(path.basename(first.tarball)).toBe(tarballName(first.version));
    expect(fs.readFileSync(first.sums, 'utf8')).toBe(`${createHash('sha256').update(fs.readFileSync(first.tarball)).digest('hex')}  ${path.basename(first.tarball)}\n`);

    const listing = execFileSync('tar', ['-tzf', first.tarball], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).split('\n');
    const top = `cadfleet-${first.version}/`;
    for (const file of ['node/bin/node', 'app/service.js', 'app/cadfleet-convert.js', 'app/s3-server.cjs', 'app/node_modules/occt-import-js/dist/occt-import-js.wasm', 'app/node_modules/web-ifc/web-ifc-node.wasm', 'app/migrations/', 'bin/cadfleet-convert', 'bin/cadfleet-convert.js', 'ansible/playbooks/site.yml', 'ansible/playbooks/host.yml', 'ansible/pull.cfg', 'systemd/cadfleet-lb-sync.service', 'systemd/cadfleet-worker.service', 'systemd/cadfleet-streamer.service', 'systemd/cadfleet-api.service', 'VERSION']) {
      expect(listing, file).toContain(top + file);
    }
    expect(listing.every((entry) => entry === '' || entry.startsWith(top))).toBe(true);

    const again = await buildRelease({ repoRoot: process.cwd(), outDir });
    expect(again).toMatchObject({ version: first.version, sha256: first.sha256, reused: true });
  }, 180_000);

  it('runs its converter on its own runtime', async () => {
    const release = await buildRelease({ repoRoot: process.cwd(), outDir });
    const root = tempDir('cadfleet-unpacked-');
    execFileSync('tar', ['-xzf', release.tarball, '-C', root]);
    const home = path.join(root, `cadfleet-${release.version}`);
    expect(execFileSync(path.join(home, 'node/bin/node'), ['--version'], { encoding: 'utf8' })).toMatch(/^v24\./);
    const out = path.join(root, 'out');
    const run = spawnSync(path.join(home, 'bin/cadfleet-convert'), ['--input', cax('as1-oc-214.stp'), '--output-dir', out], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8'))).toMatchObject({ ok: true, stats: { parts: 18, triangles: 5040 } });
    const service = spawnSync(path.join(home, 'bin/cadfleet-service'), ['--help'], { encoding: 'utf8' });
    expect(service.status, service.stderr).toBe(0);
  }, 180_000);

  it('never lets one version name two contents', async () => {
    const release = await buildRelease({ repoRoot: process.cwd(), outDir });
    fs.writeFileSync(`${release.tarball}.content-hash`, 'something else\n');
    await expect(buildRelease({ repoRoot: process.cwd(), outDir, version: release.version })).rejects.toThrow(/already exists with other content .*new version/);
  }, 180_000);

  it('refuses a version that could not be a file name', () => {
    expect(validateVersion('2.3.0-rc.1')).toBe('2.3.0-rc.1');
    expect(() => validateVersion('../../etc')).toThrow(/letters, digits, dots and dashes/);
    expect(() => validateVersion('v 2')).toThrow(/got "v 2"/);
  });
});
