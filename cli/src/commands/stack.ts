import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline/promises';
import { Command } from 'commander';
import { execa } from 'execa';
import { confirmApply, describePlan, summarizePlan, type PlanJson } from '../aws/plan-summary';
import { applyArgv, awsEnvironment, destroyArgv, initArgv, planArgv, showPlanArgv, synthArgv, type AwsEnvironment } from '../aws/terraform';
import type { Argv } from '../local/commands';
import { ansibleDir } from '../deploy/deploy';

/**
 * Runs cdktf or terraform on this terminal: their progress, colours and prompts (destroy asks)
 * are theirs, so the output is not piped through us. Resolves to the exit code; 127 (having
 * said why) when the tool could not be started, 1 when a signal ended it.
 */
async function runInherit(argv: Argv, env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  // cleanup: false, as with a bare spawn: a Ctrl-C reaches terraform from the terminal, and
  // execa's cleanup would add a SIGTERM as we exit, which terraform counts as a second interrupt
  // ("Two interrupts received. Exiting immediately"): an apply cut short, its state not written.
  const r = await execa(argv[0]!, argv.slice(1), { stdio: 'inherit', env, cwd, reject: false, cleanup: false });
  if (r.exitCode !== undefined) return r.exitCode;
  if (r.signal) return 1;
  process.stderr.write(`${argv[0]}: ${r.originalMessage ?? r.shortMessage}\n`);
  return 127;
}

/** Synthesizes the environment's stack and initializes it; returns false (having said why) on failure. */
async function prepare(env: AwsEnvironment): Promise<boolean> {
  if (!fs.existsSync(env.varFile)) {
    process.stderr.write(`cadfleet: no variables for ${env.name} at ${env.varFile}; start from the example: mkdir -p environments && cp terraform.tfvars.example ${path.relative(process.cwd(), env.varFile)}\n`);
    return false;
  }
  process.stderr.write(`synthesizing stack cadfleet-${env.name}\n`);
  if ((await runInherit(synthArgv(), { CADFLEET_ENV: env.name }, env.repoRoot)) !== 0) return false;
  return (await runInherit(initArgv(env), {}, env.repoRoot)) === 0;
}

const repoRoot = (): string => path.dirname(ansibleDir());

/** One answer typed on the terminal. */
async function askOnTerminal(question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

function stackCommand(name: string, description: string, action: (env: AwsEnvironment, opts: { yes?: boolean }) => Promise<number>): Command {
  return new Command(name)
    .description(description)
    .requiredOption('--env <name>', 'an AWS environment (staging, prod, ...)')
    .option('--var-file <file>', 'its variables (default: environments/<env>.tfvars)')
    .option('-y, --yes', 'do not ask for confirmation')
    .addHelpText('after', `\nExample:\n  $ cadfleet ${name} --env staging`)
    .action(async (opts: { env: string; varFile?: string; yes?: boolean }) => {
      try {
        const env = awsEnvironment(opts.env, repoRoot(), opts.varFile);
        process.exitCode = (await prepare(env)) ? await action(env, opts) : 1;
      } catch (err) {
        process.stderr.write(`cadfleet ${name}: ${(err as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}

export function stackCommands(): Command[] {
  return [
    stackCommand('plan', 'Show what apply would change in an AWS environment (synthesize the stack, terraform plan).', (env) =>
      runInherit(planArgv(env), {}, env.repoRoot),
    ),
    stackCommand('apply', 'Create or update the AWS infrastructure of an environment: plan, show what it deletes or replaces, ask (unless --yes), then apply exactly that plan.', async (env, opts) => {
      const planFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-plan-')), 'tfplan');
      const planned = await runInherit(planArgv(env, planFile), {}, env.repoRoot);
      if (planned !== 0) return planned;
      const [show, ...showArgs] = showPlanArgv(env, planFile);
      const shown = await execa(show!, showArgs, { cwd: env.repoRoot, reject: false, maxBuffer: 512 * 1024 * 1024 });
      if (shown.exitCode !== 0) {
        process.stderr.write(`cadfleet apply: could not read the plan back (terraform show: ${shown.stderr.trim().split('\n').pop() ?? `exit ${shown.exitCode}`}); nothing applied\n`);
        return 1;
      }
      const summary = summarizePlan(JSON.parse(shown.stdout) as PlanJson);
      for (const line of describePlan(env.name, summary)) process.stderr.write(`${line}\n`);
      const decision = await confirmApply(env.name, summary, { yes: !!opts.yes, interactive: !!process.stdin.isTTY, ask: askOnTerminal });
      if (decision.message) process.stderr.write(`${decision.message}\n`);
      return decision.apply ? runInherit(applyArgv(env, planFile), {}, env.repoRoot) : decision.code;
    }),
    stackCommand('destroy', 'Delete all AWS infrastructure of an environment (asks first unless --yes).', async (env, opts) => {
      if (!opts.yes && !process.stdin.isTTY) {
        process.stderr.write(`cadfleet destroy: refusing to destroy ${env.name} without confirmation; run it in a terminal, or pass --yes\n`);
        return 2;
      }
      return runInherit(destroyArgv(env, !!opts.yes), {}, env.repoRoot);
    }),
  ];
}
