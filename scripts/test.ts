// The test tiers, arranged for a 2-core machine:
//
//   npm test                 every tier (below)
//   npm run test:fast        everything but the fleet: the toolkit, plans and app tiers
//   npm run test:toolkit     the toolkit tier alone
//   npm test -- --serial     every tier, one after the other (nothing beside the fleet tier)
//
// 1. dist/ is built once; the tiers' global setup sees CADFLEET_TEST_BUILT and does not build
//    it again (two vitest runs building into one folder at once would race).
// 2. typecheck and lint, side by side: each is one process on one core.
// 3. the toolkit tier: every test but the fleet's, the app's and the stacks' terraform plans,
//    on this machine's Node (the CLI, the playbooks, the viewer, the workflows, the stacks'
//    constructs and boot scripts).
// 4. the fleet tier (`vitest run test/fleet`: one fleet boot, its scenarios in sequence), and
//    beside it, one after the other, the app tier: the app's tests on the Node the release
//    bundles, the only Node the app runs on (scripts/test-node24.ts), then the plans tier: the
//    stacks' offline terraform plans (scripts/test-tiers.ts). The fleet tier leaves about a
//    third of the machine idle while it waits on its hosts; these run in that time, in the
//    background (BACKGROUND_NICE), from the end of the fleet's first deploy (its busiest
//    minute), their output kept and printed after the fleet tier's.
//
// A failed step stops the steps after it; the tiers of step 4 all run to their end.
// Each step's time is printed, and the whole run's at the end; a run that failed ends with the
// tests that failed, each with the first line of its error (from vitest's JSON report of each
// tier), since the last lines of a CI log are often the only ones read.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { FIRST_DEPLOY_ENDED, FLEET_SUITE, PLAN_SUITES, TOOLKIT_ARGS } from './test-tiers';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE24 = ['--import', 'tsx', path.join(ROOT, 'scripts/test-node24.ts')];
const VITEST = path.join(ROOT, 'node_modules/vitest/vitest.mjs');
/** The run's own files: each tier's JSON report, and the background tiers' output. */
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-test-'));
process.once('exit', () => fs.rmSync(WORK, { recursive: true, force: true }));
const reportOf = (tier: string): string => path.join(WORK, `${tier}.json`);
/** vitest's usual output, and a JSON report of each test for the digest of failures. */
const reporters = (tier: string): string[] => ['--reporter=default', '--reporter=json', `--outputFile.json=${reportOf(tier)}`];
const TIERS = {
  toolkit: [VITEST, 'run', ...TOOLKIT_ARGS, ...reporters('toolkit')],
  plans: [VITEST, 'run', ...PLAN_SUITES, ...reporters('plans')],
  node24: [...NODE24, ...reporters('node24')],
  fleet: [VITEST, 'run', FLEET_SUITE, ...reporters('fleet')],
};
/**
 * The app tier's priority beside the fleet tier, as a nice value for its whole session. The
 * scheduler groups a session's processes (autogroup) and weighs the groups against each other:
 * the fleet's hosts (their cgroups) and the fleet tier's session each weigh as one nice-0 task.
 * A plain `nice` would only rank the app tier against the fleet tier's own processes (measured:
 * the fleet tier's first deploy took 168 s instead of 105). At 5 the app tier's session weighs a
 * third of a nice-0 one: when the fleet keeps both cores busy it still gets about 14% of them,
 * so that its own services answer their health checks (at 19, 0.7%, an api under test found its
 * Redis too slow twice and answered 503); when the fleet waits on its hosts, it gets the rest.
 */
const BACKGROUND_NICE = 5;

/** Puts a session leader's whole session in the background; says how, for the log. */
function background(pid: number): string {
  try {
    fs.writeFileSync(`/proc/${pid}/autogroup`, String(BACKGROUND_NICE));
    return `its session at autogroup nice ${BACKGROUND_NICE}`;
  } catch {
    // No autogroup here (disabled, or not Linux): rank its processes at least.
    os.setPriority(pid, BACKGROUND_NICE);
    return `at nice ${BACKGROUND_NICE} (no autogroup here: the fleet tier's own processes come first, not the hosts)`;
  }
}

type Step = { name: string; seconds: number; ok: boolean };
const steps: Step[] = [];
const started = performance.now();
const env = { ...process.env, CADFLEET_TEST_BUILT: '1' };
const say = (line: string): void => void process.stderr.write(`test: ${line}\n`);
const seconds = (from: number): number => (performance.now() - from) / 1000;

/** One command with its output passed through; its result recorded as a step. */
async function run(name: string, file: string, args: string[]): Promise<boolean> {
  const from = performance.now();
  say(`${name}: ${[path.basename(file), ...args].join(' ')}`);
  const r = await execa(file, args, { cwd: ROOT, env, stdio: 'inherit', reject: false });
  return record(name, from, r.exitCode === 0);
}

function record(name: string, from: number, ok: boolean, took = seconds(from)): boolean {
  steps.push({ name, seconds: took, ok });
  say(`${name}: ${ok ? 'passed' : 'FAILED'} in ${took.toFixed(0)} s`);
  return ok;
}

/** Commands side by side, each one's output kept and printed whole when it ends, in order. */
async function beside(commands: Array<{ name: string; file: string; args: string[] }>): Promise<boolean> {
  const results = await Promise.all(
    commands.map(async (c) => {
      const from = performance.now();
      const r = await execa(c.file, c.args, { cwd: ROOT, env, all: true, reject: false });
      return { ...c, from, output: r.all ?? '', ok: r.exitCode === 0 };
    }),
  );
  for (const r of results) {
    say(`${r.name}: ${[path.basename(r.file), ...r.args].join(' ')}`);
    if (r.output) process.stdout.write(`${r.output}\n`);
    record(r.name, r.from, r.ok);
  }
  return results.every((r) => r.ok);
}

function summary(): void {
  if (!steps.length) return;
  const failed = steps.filter((s) => !s.ok).map((s) => s.name);
  say(`${steps.map((s) => `${s.name} ${s.seconds.toFixed(0)} s${s.ok ? '' : ' (failed)'}`).join(', ')}; in all ${seconds(started).toFixed(0)} s`);
  const alone = (step: string): string => `npm run ${['build', 'typecheck', 'lint'].includes(step) ? step : `test:${step}`}`;
  if (!failed.length) return;
  for (const step of failed) for (const line of failures(step)) say(`  ${line}`);
  say(`failed: ${failed.join(', ')}. Each runs alone: ${failed.map(alone).join(', ')}`);
}

/** The failed tests of a tier, one line each, from its JSON report. */
function failures(tier: string): string[] {
  if (!(tier in TIERS)) return [];
  interface Report {
    testResults: Array<{ name: string; status: string; message?: string; assertionResults: Array<{ fullName: string; status: string; failureMessages?: string[] }> }>;
  }
  let report: Report;
  try {
    report = JSON.parse(fs.readFileSync(reportOf(tier), 'utf8')) as Report;
  } catch {
    return [`${tier}: no report of its tests (it stopped before vitest wrote one): its output above says why`];
  }
  // eslint-disable-next-line no-control-regex
  const first = (text = ''): string => (text.replace(/\u001b\[[\d;]*m/g, '').split('\n').find((l) => l.trim()) ?? '').trim().slice(0, 300);
  const lines: string[] = [];
  for (const file of report.testResults) {
    const where = path.relative(ROOT, file.name);
    const failed = file.assertionResults.filter((a) => a.status === 'failed');
    for (const a of failed) lines.push(`${tier}: ${where} > ${a.fullName}: ${first(a.failureMessages?.[0])}`);
    // A file that failed outside its tests (an import, a hook).
    if (!failed.length && file.status === 'failed') lines.push(`${tier}: ${where}: ${first(file.message)}`);
  }
  return lines.length ? lines : [`${tier}: its tests passed, but vitest exited non-zero: its output above says why`];
}

async function main(): Promise<number> {
  const [mode = 'all', ...rest] = process.argv.slice(2).filter((a) => a !== '--serial');
  const serial = process.argv.includes('--serial');
  if (!['all', 'fast', 'toolkit'].includes(mode) || rest.length) {
    say(`unknown arguments: ${process.argv.slice(2).join(' ')}. Use: scripts/test.ts [all|fast|toolkit] [--serial]`);
    return 2;
  }
  const node = process.execPath;
  if (!(await run('build', node, [path.join(ROOT, 'scripts/build.mjs')]))) return 1;
  if (mode === 'all') {
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const eslint = path.join(ROOT, 'node_modules/eslint/bin/eslint.js');
    if (!(await beside([{ name: 'typecheck', file: node, args: [tsc, '--noEmit'] }, { name: 'lint', file: node, args: [eslint, '.'] }]))) return 1;
  }
  if (!(await run('toolkit', node, TIERS.toolkit))) return 1;
  if (mode === 'toolkit') return 0;
  if (mode === 'fast' || serial) {
    if (!(await run('plans', node, TIERS.plans))) return 1;
    if (!(await run('node24', node, TIERS.node24))) return 1;
    if (mode === 'fast') return 0;
    return (await run('fleet', node, TIERS.fleet)) ? 0 : 1;
  }
  // The fleet tier in front, its output passed through as it comes; beside it in the
  // background, from the end of the fleet's first deploy, the app tier and then the plans tier,
  // their output in files until the fleet tier has ended.
  const besides = [
    { name: 'node24', args: TIERS.node24 },
    { name: 'plans', args: TIERS.plans },
  ];
  type Beside = { name: string; log: string; started: number; ok: boolean; took: number };
  const runBeside = async (b: { name: string; args: string[] }): Promise<Beside> => {
    const log = path.join(WORK, `${b.name}.log`);
    const from = performance.now();
    const child = execa(node, b.args, { cwd: ROOT, env, reject: false, all: true, buffer: false, detached: true });
    say(`${b.name}: beside the fleet tier, ${background(child.pid!)}; its output in ${log} until the fleet tier ends`);
    const out = fs.createWriteStream(log);
    child.all?.pipe(out);
    const kill = (): void => {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // Already gone.
      }
    };
    process.once('exit', kill);
    const r = await child;
    process.removeListener('exit', kill);
    await new Promise<void>((resolve) => out.end(resolve));
    say(`${b.name}: ended (${r.exitCode === 0 ? 'passed' : `exit ${r.exitCode}`}) after ${seconds(from).toFixed(0)} s; its output follows the fleet tier's`);
    return { name: b.name, log, started: from, ok: r.exitCode === 0, took: seconds(from) };
  };
  let backgroundTiers: Promise<Beside[]> | undefined;
  const startBackground = (): void => {
    backgroundTiers ??= (async () => {
      const done: Beside[] = [];
      for (const b of besides) done.push(await runBeside(b));
      return done;
    })();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

  const from = performance.now();
  say(`fleet: vitest.mjs run ${FLEET_SUITE} (the app and plans tiers start beside it once the first deploy has ended)`);
  // The reliability report says what ran beside its scenarios (test/fleet/reliability-report.ts).
  const fleetEnv = { ...env, CADFLEET_TEST_BESIDE: "`npm test`'s app and plans tiers (the app's tests on Node 24, then the stacks' terraform plans, in the background, for about seven minutes from the end of the first deploy)" };
  const fleet = execa(node, TIERS.fleet, { cwd: ROOT, env: fleetEnv, reject: false, stdin: 'inherit', stderr: 'inherit', stdout: 'pipe', buffer: false });
  // The first deploy keeps both cores busy for a minute; after it the fleet waits on its hosts
  // often enough for the app tier, whose tests have deadlines of their own (tens of seconds).
  let tail = '';
  fleet.stdout?.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk);
    tail = (tail + chunk.toString()).slice(-4096);
    if (tail.includes(FIRST_DEPLOY_ENDED)) startBackground();
  });
  const fleetOk = record('fleet', from, (await fleet).exitCode === 0);
  // A fleet tier that ended before its first deploy did: the background tiers run after it.
  startBackground();
  const done = await backgroundTiers!;
  for (const b of done) {
    say(`${b.name}: run beside the fleet tier:`);
    process.stdout.write(fs.readFileSync(b.log, 'utf8'));
    record(b.name, b.started, b.ok, b.took);
  }
  return fleetOk && done.every((b) => b.ok) ? 0 : 1;
}

const code = await main();
summary();
process.exit(code);
