// runPlaybook against a stand-in ansible-playbook on PATH: what the deploy reads of a run (lines
// as they come, stdout and stderr both, the log, the recap) and what it says when there is none.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ansibleDir, deployDigest, digestedVars, runPlaybook } from '../../../cli/src/deploy/deploy';
import type { Environment } from '../../../cli/src/environment';
import { systemRunner } from '../../../cli/src/local/exec';
import type { Release } from '../../../cli/src/release/bundle';
import { stagingOutputs } from '../../helpers/aws-outputs';
import { tempDir } from '../../helpers/convert';

const release: Release = { version: '0.1.0-test', tarball: '/nowhere.tar.gz', sums: '/nowhere.SHA256SUMS', sha256: 'ab'.repeat(32), bytes: 1, reused: true };

describe('runPlaybook', () => {
  const saved = { ...process.env };
  let dir: string;
  let env: Environment;
  beforeEach(() => {
    dir = tempDir('cadfleet-playbook-');
    // The release's presigned URL is signed here, never sent.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example' });
    env = { name: 'staging', outputs: stagingOutputs('eu-west-1'), hosts: [], inventory: path.join(dir, 'aws_ec2.yml') };
  });
  afterEach(() => {
    process.env = { ...saved };
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('hands over each line as it comes, stderr too, and reads the recap of what it wrote', async () => {
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, 'ansible-playbook'),
      [
        '#!/bin/sh',
        'echo "TASK [Ensure the release is installed.] cwd=$(pwd) nocolor=$ANSIBLE_NOCOLOR args=$*"',
        'sleep 0.1; echo "[WARNING]: a warning" >&2; sleep 0.1',
        'echo \'fatal: [api-1]: FAILED! => {"msg": "no space left"}\'',
        'echo "api-1                      : ok=3    changed=1    unreachable=0    failed=1    skipped=0"',
        'printf "no newline at the end"',
        'exit 2',
      ].join('\n'),
      { mode: 0o755 },
    );
    process.env.PATH = `${bin}${path.delimiter}${process.env.PATH ?? ''}`;
    const lines: string[] = [];
    const r = await runPlaybook({ env, stateRoot: dir, runner: systemRunner, onLine: (l) => lines.push(l) }, release, 'playbooks/release-install.yml');
    // Its argv is ansible.test.ts's subject; here: run in the Ansible folder, with its environment.
    expect(lines[0]).toMatch(/^TASK \[Ensure the release is installed\.\] /);
    expect(lines[0]).toContain(` cwd=${ansibleDir()} nocolor=1 args=`);
    expect(lines[0]).toMatch(/ playbooks\/release-install\.yml$/);
    expect(lines.slice(1)).toEqual(['[WARNING]: a warning', 'fatal: [api-1]: FAILED! => {"msg": "no space left"}', expect.stringMatching(/^api-1 +: ok=3/), 'no newline at the end']);
    expect(r.ok).toBe(false);
    expect(r.recap).toEqual([{ host: 'api-1', ok: 3, changed: 1, unreachable: 0, failed: 1 }]);
    expect(r.changed).toBe(1);
    expect(r.failures).toEqual([{ host: 'api-1', task: 'Ensure the release is installed.', message: 'no space left' }]);
    expect(fs.readFileSync(r.log, 'utf8')).toBe(`${lines.join('\n')}\n`);
    expect(fs.statSync(r.log).mode & 0o777).toBe(0o600);
  });

  it('says how to install Ansible when ansible-playbook is not there', async () => {
    process.env.PATH = path.join(dir, 'empty');
    const r = await runPlaybook({ env, stateRoot: dir, runner: systemRunner }, release, 'playbooks/site.yml');
    expect(r.ok).toBe(false);
    expect(r.failures).toEqual([{ host: 'this machine', task: 'start ansible-playbook', message: expect.stringMatching(/^ansible-playbook is not installed: apt-get install ansible/) }]);
    expect(fs.readFileSync(r.log, 'utf8')).toMatch(/ansible-playbook could not be started: spawn ansible-playbook ENOENT/);
  });
});

describe('deployDigest', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('cadfleet-digest-');
    fs.mkdirSync(path.join(dir, 'roles/x/templates'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'ansible.cfg'), '[defaults]\n');
    fs.writeFileSync(path.join(dir, 'roles/x/templates/a.j2'), 'A={{ a }}\n');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('changes with any file of the Ansible content, the variables or the inventory, and only then', () => {
    const base = deployDigest(dir, '{"a":1}', 'inventory');
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(deployDigest(dir, '{"a":1}', 'inventory')).toBe(base);
    expect(deployDigest(dir, '{"a":2}', 'inventory')).not.toBe(base);
    expect(deployDigest(dir, '{"a":1}', 'inventory 2')).not.toBe(base);
    fs.writeFileSync(path.join(dir, 'roles/x/templates/a.j2'), 'A={{ a }} \n');
    expect(deployDigest(dir, '{"a":1}', 'inventory')).not.toBe(base);
  });

  it('takes the variables but the app settings and a presigned release URL, which is signed anew on every run', () => {
    const aws = (url: string, sha = 'a'.repeat(64)) => ({ release_version: '1.4.0', release_sha256: sha, release_url: url });
    const signed = 'https://releases.s3.amazonaws.com/releases/cadfleet-1.4.0-linux-x64.tar.gz?X-Amz-Date=20261206T060000Z&X-Amz-Signature=';
    expect(digestedVars(aws(`${signed}1`))).toBe(digestedVars(aws(`${signed}2`)));
    expect(digestedVars(aws(`${signed}1`, 'b'.repeat(64)))).not.toBe(digestedVars(aws(`${signed}1`)));
    expect(digestedVars({ release_version: '1.4.0', cadfleet_service_env_common: { A: '1' } })).toBe(digestedVars({ release_version: '1.4.0', cadfleet_service_env_common: { A: '2' } }));
    expect(digestedVars({ release_version: '1.4.0', release_tarball: '/a' })).not.toBe(digestedVars({ release_version: '1.4.0', release_tarball: '/b' }));
  });

  it('covers the real Ansible content', () => {
    expect(deployDigest(ansibleDir(), '{}', '')).toBe(deployDigest(ansibleDir(), '{}', ''));
  });
});
