// The host image recipe: one playbook (images/host-image.yml) for the local fleet's base image
// (built and booted by test/fleet in CI) and the AWS AMI (images/aws/cadfleet-host.pkr.hcl,
// which cannot be built here: no AWS, and Debian's packer 1.6.6 predates its plugin blocks).
// What can be checked here is checked: the recipe's identity, the playbook as Ansible reads
// it for each target, and the Packer template against the stacks' own constants.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RECIPE_PLAYBOOK, recipeHash, recipePackages } from '../../cli/src/local/base-image';
import { DEBIAN_AMI_OWNER, DEFAULT_ROOT_DEVICE } from '../../stacks/cadfleet-stack';
import { hostImageParameterName } from '../../stacks/contract';

const ROOT = path.resolve(import.meta.dirname, '../..');

function listTasks(target: 'local' | 'aws'): string {
  const r = spawnSync('ansible-playbook', ['-i', 'image,', '--list-tasks', '-e', `host_image_target=${target}`, RECIPE_PLAYBOOK], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_CONFIG: path.join(ROOT, 'images/ansible.cfg') },
  });
  if (r.error) throw new Error(`ansible-playbook is needed: apt-get install ansible (${r.error.message})`);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('the host image recipe', () => {
  it('installs, at image time, every package the roles would install at deploy time', () => {
    const packages = recipePackages(ROOT);
    for (const p of ['openssh-server', 'python3', 'sudo', 'nginx', 'postgresql', 'redis-server', 'unattended-upgrades']) expect(packages).toContain(p);
    const rolesDir = path.join(ROOT, 'ansible/roles');
    for (const role of ['nginx_lb', 'postgresql_local', 'redis_local']) {
      const tasks = fs.readdirSync(path.join(rolesDir, role, 'tasks')).map((f) => fs.readFileSync(path.join(rolesDir, role, 'tasks', f), 'utf8')).join('\n');
      const names = [...tasks.matchAll(/ansible\.builtin\.apt:\n\s+name:\s+(.+)/g)].flatMap((m) => m[1]!.replace(/[[\]"]/g, '').split(',').map((n) => n.trim()));
      expect(names.length, role).toBeGreaterThan(0);
      for (const name of names) expect(packages, `${role} installs ${name}`).toContain(name);
    }
  });

  it('is a new image whenever the playbook or a role it applies changes', () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-recipe-'));
    try {
      for (const dir of ['images', 'ansible/roles/common', 'ansible/roles/host_image']) fs.cpSync(path.join(ROOT, dir), path.join(copy, dir), { recursive: true });
      const before = recipeHash(copy);
      expect(recipeHash(copy)).toBe(before);
      fs.appendFileSync(path.join(copy, 'ansible/roles/common/defaults/main.yml'), '\n# changed\n');
      const afterCommon = recipeHash(copy);
      expect(afterCommon).not.toBe(before);
      fs.appendFileSync(path.join(copy, RECIPE_PLAYBOOK), '\n# changed\n');
      expect(recipeHash(copy)).not.toBe(afterCommon);
      // Another role's change (one the image does not apply) is not a new image.
      fs.mkdirSync(path.join(copy, 'ansible/roles/nginx_lb'), { recursive: true });
      fs.writeFileSync(path.join(copy, 'ansible/roles/nginx_lb/x.yml'), 'x');
      expect(recipeHash(copy)).toBe(recipeHash(copy));
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('adds the SSM agent and the AWS CLI to the AMI only, and hardens both images alike', () => {
    const local = listTasks('local');
    const aws = listTasks('aws');
    for (const tasks of [local, aws]) {
      // Included task files are listed by their include; the role's own tasks by name.
      expect(tasks).toContain('common : Harden SSH.');
      expect(tasks).toContain("host_image : Remove the build machine's identity.");
    }
    // --list-tasks lists conditional tasks for both; the condition is what differs.
    const role = fs.readFileSync(path.join(ROOT, 'ansible/roles/host_image/tasks/main.yml'), 'utf8');
    expect(role).toMatch(/Ensure the SSM agent is installed \(AWS images\)\.\n[\s\S]*?when: host_image_ssm_agent \| bool/);
    const defaults = fs.readFileSync(path.join(ROOT, 'ansible/roles/host_image/defaults/main.yml'), 'utf8');
    expect(defaults).toContain("host_image_ssm_agent: \"{{ host_image_target == 'aws' }}\"");
    expect(role).toContain("host_image_packages + (host_image_aws_packages if host_image_target == 'aws' else [])");
  });

  it('builds the AMI from Debian 12 with the same playbook and publishes it where the stacks look', () => {
    const template = fs.readFileSync(path.join(ROOT, 'images/aws/cadfleet-host.pkr.hcl'), 'utf8');
    expect(template).toContain('playbook_file    = "${path.root}/../host-image.yml"');
    expect(template).toContain('"-e", "host_image_target=aws"');
    expect(template).toContain(`owners      = ["${DEBIAN_AMI_OWNER}"]`);
    expect(template).toContain('name                = "debian-12-amd64-*"');
    expect(template).toContain(`device_name           = "${DEFAULT_ROOT_DEVICE}"`);
    expect(template).toMatch(/http_tokens\s+= "required"/);
    expect(template).toMatch(/encrypt_boot\s+= true/);
    // The build's temporary SSH key is not left in the image's authorized_keys.
    expect(template).toMatch(/ssh_clear_authorized_keys\s+= true/);
    // The parameter the image is published in is the one the stacks read (use_host_image).
    const published = /ami_parameter = "([^"]+)"/.exec(template)![1]!;
    expect(published.replace('${var.environment}', 'staging')).toBe(hostImageParameterName('staging'));
    expect(template).toContain('--data-type aws:ec2:image');
  });
});
