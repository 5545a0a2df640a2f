import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { execaSync } from 'execa';
import { targetNamed, type Check } from '../target';

export type { Check };

type Probe = (argv: string[]) => { ok: boolean; out: string };

// Synchronous: the checks are a plain function of their probe, which tests replace.
const probe: Probe = (argv) => {
  const r = execaSync(argv[0]!, argv.slice(1), { reject: false, timeout: 10_000 });
  return { ok: r.exitCode === 0, out: `${r.stdout}${r.stderr}`.trim() };
};

const version = (text: string): string => /\d+\.\d+(\.\d+)?/.exec(text)?.[0] ?? '';
const atLeast = (found: string, wanted: [number, number]): boolean => {
  const [major = 0, minor = 0] = found.split('.').map(Number);
  return major > wanted[0] || (major === wanted[0] && minor >= wanted[1]);
};

/** Node 22 or 24 (package.json's engines); Node 20, past end of life, still runs the CLI, with a warning. */
function nodeCheck(found: string): Check {
  const check: Check = { name: 'node', for: 'the CLI', ok: atLeast(found, [22, 12]), optional: false, found, fix: '' };
  if (check.ok) return check;
  if (atLeast(found, [20, 19])) return { ...check, optional: true, fix: 'Node 20 is past end of life (April 2026): install Node.js 22 or 24 (LTS)' };
  return { ...check, fix: 'install Node.js 22 or 24 (LTS)' };
}

/** The operator machine's prerequisites, each with how to fix it. Pure given its probe. */
export function runChecks(run: Probe = probe, env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0, nodeVersion = process.versions.node): Check[] {
  const tool = (name: string, argv: string[], purpose: string, wanted: [number, number] | null, fix: string, optional = false): Check => {
    const r = run(argv);
    const v = version(r.out);
    const ok = r.ok && (!wanted || atLeast(v, wanted));
    return { name, for: purpose, ok, optional, found: r.ok ? v || 'yes' : 'not found', fix: ok ? '' : fix };
  };
  const awsCreds = !!(env.AWS_ACCESS_KEY_ID || env.AWS_PROFILE || env.AWS_WEB_IDENTITY_TOKEN_FILE || fs.existsSync(path.join(os.homedir(), '.aws', 'credentials')));
  return [
    nodeCheck(nodeVersion),
    tool('ssh', ['ssh', '-V'], 'reaching hosts (ssh, logs, deploy)', null, 'apt-get install openssh-client'),
    tool('ansible-playbook', ['ansible-playbook', '--version'], 'deploy', [2, 14], 'apt-get install ansible, or pipx install ansible-core (2.14 or newer)'),
    tool('terraform', ['terraform', 'version'], 'plan, apply, destroy (AWS)', [1, 10], 'bash scripts/setup.sh (it installs HashiCorp\'s release, verified, into .cadfleet/tools), or install Terraform 1.10 or newer on PATH'),
    { name: 'AWS credentials', for: 'plan, apply, destroy (AWS)', ok: awsCreds, optional: true, found: awsCreds ? 'yes' : 'none', fix: awsCreds ? '' : 'aws configure sso (or set AWS_PROFILE); not needed for the local fleet' },
    // AWS hosts are listed by Ansible's aws_ec2 inventory (boto3 in Ansible's own Python) and reached inside Session Manager.
    tool(
      'boto3 (for Ansible)',
      ['sh', '-c', 'py=$(ansible --version 2>/dev/null | sed -n "s/^ *python version = .*(\\(\\/[^)]*\\))$/\\1/p"); "$py" -c "import boto3; print(boto3.__version__)"'],
      'listing the hosts of an AWS environment',
      null,
      'apt-get install python3-boto3 (or pip install boto3 beside a pipx Ansible: pipx inject ansible-core boto3)',
      true,
    ),
    tool('AWS CLI', ['aws', '--version'], 'the one-time steps of docs/aws.md (parameters, the account\'s GitHub OIDC provider)', null, 'apt-get install awscli (Debian 12 has AWS CLI v2; scripts/setup.sh installs it), or AWS\'s own installer', true),
    // ansible-galaxy says nothing useful on its exit code: the collection's own line is the answer.
    tool(
      'amazon.aws (Ansible collection)',
      ['sh', '-c', 'ansible-galaxy collection list amazon.aws 2>/dev/null | grep -E "^amazon\\.aws +[0-9]"'],
      "the aws_ec2 inventory: status, ssh, logs, upgrade on AWS",
      [5, 0],
      "apt-get install ansible (Debian's package carries it), or ansible-galaxy collection install 'amazon.aws>=5.0'",
      true,
    ),
    tool(
      'community.general, ansible.posix (Ansible collections)',
      ['sh', '-c', 'ansible-galaxy collection list community.general 2>/dev/null | grep -qE "^community\\.general +[0-9]" && ansible-galaxy collection list ansible.posix 2>/dev/null | grep -E "^ansible\\.posix +[0-9]"'],
      'building the host image (images/, Packer runs the host_image role)',
      null,
      "apt-get install ansible (Debian's package carries both), or ansible-galaxy collection install community.general ansible.posix",
      true,
    ),
    tool('packer', ['packer', 'version'], 'building the host image (images/; optional: hosts boot from Debian\'s AMI without it)', null, "install HashiCorp's Packer (developer.hashicorp.com/packer/install); Debian has none", true),
    tool(
      'session-manager-plugin',
      ['session-manager-plugin', '--version'],
      'ssh, logs, exec, upgrade on AWS (ssh inside Session Manager)',
      null,
      "install the AWS CLI's Session Manager plugin (docs.aws.amazon.com: session-manager-working-with-install-plugin), or set CADFLEET_HOST_ROUTE=bastion",
      true,
    ),
    { name: 'root', for: 'the local fleet', ok: uid === 0, optional: true, found: uid === 0 ? 'yes' : `uid ${uid}`, fix: uid === 0 ? '' : 'run cadfleet local ... with sudo' },
    tool('systemd-nspawn', ['systemd-nspawn', '--version'], 'the local fleet', null, 'apt-get install systemd-container', true),
    tool('debootstrap', ['sh', '-c', 'command -v debootstrap'], 'the local fleet\'s base image', null, 'apt-get install debootstrap', true),
  ];
}

/**
 * The checks for one environment: for `local`, the fleet's own prerequisites (tools, overlay
 * file system, cgroups, network namespaces), the ones `cadfleet local up` checks before anything
 * boots, all required; for an AWS environment, its credentials and host access are required.
 */
export async function checksFor(env: string | undefined, machine: Check[] = runChecks()): Promise<Check[]> {
  return env === undefined ? machine : targetNamed(env).doctorChecks(machine);
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('Check what cadfleet needs on this machine, and say how to fix what is missing. Exit 1 if a required piece is missing.')
    .option('--env <name>', "check for one environment: local (the fleet's tools and kernel features, checked before anything boots) or an AWS environment (its credentials and host access required)")
    .option('--json', 'JSON')
    .addHelpText('after', "\nExamples:\n  $ cadfleet doctor\n  $ cadfleet doctor --env local\n  $ cadfleet doctor --json | jq '.[] | select(.ok | not)'")
    .action(async (opts: { env?: string; json?: boolean }) => {
      const checks = await checksFor(opts.env);
      if (opts.json) process.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
      else {
        for (const c of checks) {
          const mark = c.ok ? 'ok  ' : c.optional ? 'warn' : 'FAIL';
          process.stdout.write(`${mark}  ${c.name.padEnd(19)} ${c.found.padEnd(12)} ${c.for}${c.fix ? ` -> ${c.fix}` : ''}\n`);
        }
      }
      if (checks.some((c) => !c.ok && !c.optional)) process.exitCode = 1;
    });
}
