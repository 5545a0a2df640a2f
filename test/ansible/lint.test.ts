import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('ansible content', () => {
  it('passes ansible-lint with the production profile', () => {
    const r = spawnSync('ansible-lint', ['playbooks/site.yml', 'playbooks/host.yml', 'playbooks/release-install.yml', 'roles/', '../images/host-image.yml'], { cwd: 'ansible', encoding: 'utf8', env: { ...process.env, ANSIBLE_NOCOLOR: '1', NO_COLOR: '1' } });
    if (r.error) throw new Error(`ansible-lint is not installed: apt-get install ansible-lint (${r.error.message})`);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  }, 180_000);

  it.each(['site.yml', 'host.yml', 'release-install.yml'])('parses playbooks/%s', (playbook) => {
    const r = spawnSync('ansible-playbook', ['--syntax-check', '-i', 'localhost,', `playbooks/${playbook}`], { cwd: 'ansible', encoding: 'utf8' });
    if (r.error) throw new Error(`ansible-playbook is not installed: apt-get install ansible (${r.error.message})`);
    expect(r.status, r.stderr).toBe(0);
  });
});
