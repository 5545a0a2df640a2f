// The offline plan of one environment's stack, as CI runs it on every pull request:
//
//   node --import tsx scripts/offline-plan.ts --out DIR [--env staging] [--var-file F]... [--summary FILE]
//
// Synthesizes the stack as a shared environment is synthesized (S3 state, so that the parts
// that need remote state, such as the GitHub deploy role, are planned too), then runs the real
// terraform init, validate, plan and show with no AWS account: an override file in the
// synthesized copy gives fake credentials, the provider's skip flags and a local backend, and
// the lookups that would call AWS (AMI, zones) get fixed values. That is what test/stacks does;
// the provider comes from the registry, or from a mirror through TF_CLI_CONFIG_FILE.
// Writes plan.bin, plan.json and plan.txt into DIR and a Markdown summary to --summary
// (default: $GITHUB_STEP_SUMMARY, else stdout) — also when a step fails, saying which.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { buildApp } from '../stacks/app';
import { ENVIRONMENT_PATTERN, isProductionName, stackName, type StackConfig } from '../stacks/config';
import { planSummary, type PlanJson } from './plan-summary';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Stands in for the state bucket: only the backend block names it, and the override replaces that. */
export const PLACEHOLDER_STATE_BUCKET = 'cadfleet-offline-plan';

/** AWS's documented example keys: the provider needs some, and these can sign nothing. */
const overrideFile = (stateFile: string): Record<string, unknown> => ({
  provider: {
    aws: [
      {
        access_key: 'AKIAIOSFODNN7EXAMPLE',
        secret_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        skip_credentials_validation: true,
        skip_requesting_account_id: true,
        skip_metadata_api_check: true,
      },
    ],
  },
  terraform: { backend: { local: { path: stateFile } } },
});

/** The region the variables name (the fixed zones must be in it); the last file wins, as in terraform. */
export function regionOf(varFiles: readonly string[]): string {
  let region = 'us-east-1';
  for (const file of varFiles) {
    const m = /^\s*region\s*=\s*"([a-z0-9-]+)"/m.exec(fs.readFileSync(file, 'utf8'));
    if (m) region = m[1]!;
  }
  return region;
}

interface Options {
  env: string;
  varFile: string[];
  out: string;
  summary?: string;
}

function main(opts: Options): number {
  if (!ENVIRONMENT_PATTERN.test(opts.env)) throw new Error(`--env must be an environment name such as staging, got ${JSON.stringify(opts.env)}`);
  const out = path.resolve(opts.out);
  fs.mkdirSync(out, { recursive: true });
  const varFiles = (opts.varFile.length ? opts.varFile : [path.join(ROOT, 'terraform.tfvars.example')]).map((f) => path.resolve(f));
  const summaryFile = opts.summary ?? process.env.GITHUB_STEP_SUMMARY;
  const title = `Offline plan: ${stackName(opts.env)}`;
  const report = (markdown: string): void => {
    if (summaryFile) fs.appendFileSync(summaryFile, `${markdown}\n`);
    else process.stdout.write(`${markdown}\n`);
  };

  const region = regionOf(varFiles);
  const config: StackConfig = {
    environment: opts.env,
    production: isProductionName(opts.env),
    state: { kind: 's3', bucket: PLACEHOLDER_STATE_BUCKET, key: `cadfleet/${opts.env}/terraform.tfstate`, region },
  };
  buildApp(config, { outdir: path.join(out, 'cdktf.out') }).app.synth();
  const stackDir = path.join(out, 'cdktf.out', 'stacks', stackName(opts.env));
  fs.writeFileSync(path.join(stackDir, 'offline_override.tf.json'), JSON.stringify(overrideFile(path.join(out, 'terraform.tfstate')), null, 2));
  const offlineVars = path.join(out, 'offline.tfvars');
  // Data sources call AWS during plan: the AMI, the zones and the account's GitHub OIDC provider given instead.
  fs.writeFileSync(offlineVars, `ami_id = "ami-0123456789abcdef0"\navailability_zones = ["${region}a", "${region}b"]\ngithub_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"\n`);

  // Whatever AWS credentials this machine has must not reach the plan.
  const env: NodeJS.ProcessEnv = { ...process.env, TF_IN_AUTOMATION: '1', TF_INPUT: '0', CHECKPOINT_DISABLE: '1', AWS_EC2_METADATA_DISABLED: 'true' };
  for (const name of Object.keys(env)) if (/^AWS_(PROFILE|ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|WEB_IDENTITY_TOKEN_FILE|ROLE_ARN)$/.test(name)) delete env[name];
  const terraform = (args: string[], stdoutFile?: string): boolean => {
    process.stderr.write(`$ terraform ${args.join(' ')}\n`);
    const r = spawnSync('terraform', [`-chdir=${stackDir}`, ...args], { env, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
    if (stdoutFile) fs.writeFileSync(stdoutFile, r.stdout ?? '');
    else process.stderr.write(r.stdout ?? '');
    process.stderr.write(r.stderr ?? '');
    if (r.status === 0) return true;
    const tail = `${r.stderr ?? ''}${r.error ? `${r.error.message}\n` : ''}`.trim().split('\n').slice(-40).join('\n');
    report([`## ${title}`, '', `**Failed at \`terraform ${args[0]}\`.**`, '', '```', tail, '```', ''].join('\n'));
    return false;
  };

  const planFile = path.join(out, 'plan.bin');
  const steps: Array<[string[], string?]> = [
    [['init', '-input=false', '-no-color']],
    [['validate', '-no-color']],
    [['plan', '-input=false', '-lock=false', '-no-color', ...[...varFiles, offlineVars].map((f) => `-var-file=${f}`), `-out=${planFile}`]],
    [['show', '-json', planFile], path.join(out, 'plan.json')],
    [['show', '-no-color', planFile], path.join(out, 'plan.txt')],
  ];
  for (const [args, stdoutFile] of steps) if (!terraform(args, stdoutFile)) return 1;
  report(planSummary(JSON.parse(fs.readFileSync(path.join(out, 'plan.json'), 'utf8')) as PlanJson, title));
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opts = new Command('offline-plan')
    .description('Synthesize one environment and plan it with terraform, with no AWS account; write a Markdown summary.')
    .requiredOption('--out <dir>', 'where the synthesized stack, the plan and its JSON go')
    .option('--env <name>', 'the environment (its tfvars must say the same)', 'staging')
    .option('--var-file <file>', 'a variables file (repeatable; default terraform.tfvars.example)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--summary <file>', 'append the summary here (default $GITHUB_STEP_SUMMARY, else stdout)')
    .parse()
    .opts<Options>();
  try {
    process.exitCode = main(opts);
  } catch (err) {
    process.stderr.write(`offline-plan: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
