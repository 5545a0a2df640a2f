// operate benchmark: what an operator waits for.
//
//   - `npx cdktf synth` of the staging stack, as a user runs it (baseline: the same synth in
//     this process, without the CLI), then the offline `terraform init`, `validate` and `plan`
//     of it with the real AWS provider from the machine's filesystem mirror (test/stacks does
//     the same); nothing reaches AWS.
//   - the local fleet `cf` from nothing to serving: `local destroy`, then `local up`, the first
//     `deploy` and the api answering through the LB. The base image is cached (a `local up`
//     before the destroy builds it if its recipe changed; that is not timed), and so is the
//     release bundle of this tree when an earlier deploy built it.
//   - the same from an empty image cache: `local up` builds the base image from the recipe
//     first (the figure "without the prebuilt image"), then the first deploy.
//   - a scale-out: one more worker host through cloud-init (no deploy), boot to healthy: the
//     baseline the deploys are put against (the same release on the same fleet, the host running
//     its release's host.yml on itself, no push).
//   - a no-change redeploy (`deploy --env local` again; its JSON report says changed: 0): every
//     host's record says this deploy configured it, so site.yml leaves each one out.
//   - a full redeploy (`deploy --env local --full`): every role on every host again, changing
//     nothing; what a deploy that changes one setting costs at most.
//   - a rolling upgrade of the whole fleet to a new release name (built from the working tree).
//
// Destroys and rebuilds the default local fleet `cf` (never another: see fleet.ts); it is left
// up, running the upgraded release. Stacks are measured first, so a missing terraform or provider
// mirror stops the benchmark before the fleet is touched.
//
// Run alone: sudo node --import tsx bench/operate.ts   (BENCH_QUICK=1: one run of each)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { offlineTerraform, terraformVersion } from '../test/stacks/helpers/terraform';
import { FLEET, STATE, apiAnswersThroughLb, cadfleet, closeAgents, fleetAgents, fleetOutputs, param, requireFleetAccess, say, until } from './fleet';
import { type Row, type Section, median, spread } from './report';

const log = say('operate');
const ENV = 'staging';
const STATE_BUCKET = 'cadfleet-tfstate-example';

/** `npx cdktf synth` from the repository root with only what a user's shell would pass. */
function cdktfSynth(outdir: string): Promise<number> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CADFLEET_') && !k.startsWith('AWS_')));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['cdktf', 'synth', '--output', outdir], {
      env: { ...env, CHECKPOINT_DISABLE: '1', CADFLEET_ENV: ENV, CADFLEET_STATE_BUCKET: STATE_BUCKET, CADFLEET_STATE_REGION: 'us-east-1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) return resolve((performance.now() - t0) / 1000);
      // The CLI draws a spinner: keep the lines that say something.
      const said = output.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g'), '').split('\n').map((l) => l.trim()).filter((l) => l && !/Synthesizing|Starting/.test(l));
      reject(new Error(`npx cdktf synth failed (${code}): ${said.slice(-4).join(' / ')}`));
    });
  });
}

interface StackTimes {
  cli: number[];
  inProcess: number[];
  init: number[];
  validate: number[];
  plan: number[];
  /** terraform's version, or why the offline plan could not run here (no terraform). */
  terraform: { version: string } | { missing: string };
}

async function terraformHere(): Promise<StackTimes['terraform']> {
  try {
    return { version: await terraformVersion() };
  } catch (err) {
    return { missing: (err as Error).message };
  }
}

async function stacks(runs: number): Promise<StackTimes> {
  const terraform = await terraformHere();
  if ('missing' in terraform) log(`the offline plan is left out: ${terraform.missing}`);
  const { buildApp } = await import('../stacks/app');
  const times: StackTimes = { cli: [], inProcess: [], init: [], validate: [], plan: [], terraform };
  const exampleVars = path.resolve('terraform.tfvars.example');
  for (let run = 0; run < runs; run++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-bench-stacks-'));
    try {
      times.cli.push(await cdktfSynth(path.join(dir, 'cli.out')));
      const t0 = performance.now();
      buildApp(
        { environment: ENV, production: false, state: { kind: 's3', bucket: STATE_BUCKET, key: `cadfleet/${ENV}/terraform.tfstate`, region: 'us-east-1' } },
        { outdir: path.join(dir, 'app.out') },
      ).app.synth();
      times.inProcess.push((performance.now() - t0) / 1000);

      if ('missing' in terraform) {
        log(`stacks run ${run + 1}/${runs}: cdktf synth ${times.cli.at(-1)!.toFixed(1)} s (in process ${times.inProcess.at(-1)!.toFixed(1)} s)`);
        continue;
      }
      // The CLI's output, planned offline: data sources answered by variables, a local backend.
      const stackDir = path.join(dir, 'cli.out', 'stacks', `cadfleet-${ENV}`);
      const offlineVars = path.join(dir, 'offline.tfvars');
      fs.writeFileSync(offlineVars, 'ami_id = "ami-0123456789abcdef0"\navailability_zones = ["us-east-1a", "us-east-1b"]\ngithub_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"\n');
      const tf = offlineTerraform(stackDir, dir);
      times.init.push((await tf.ok(['init', '-input=false'])).seconds);
      times.validate.push((await tf.ok(['validate'])).seconds);
      times.plan.push((await tf.ok(['plan', '-input=false', '-lock=false', `-var-file=${exampleVars}`, `-var-file=${offlineVars}`, '-out=plan.bin'])).seconds);
      log(`stacks run ${run + 1}/${runs}: cdktf synth ${times.cli.at(-1)!.toFixed(1)} s (in process ${times.inProcess.at(-1)!.toFixed(1)} s), init ${times.init.at(-1)!.toFixed(1)} s, validate ${times.validate.at(-1)!.toFixed(1)} s, plan ${times.plan.at(-1)!.toFixed(1)} s`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return times;
}

interface DeployReport {
  ok: boolean;
  release: { version: string; reused: boolean };
  seconds: number;
  changed: number;
}

interface UpgradeReport {
  ok: boolean;
  version: string;
  previous: string | null;
  hosts: Array<{ host: string; result: string }>;
  seconds: number;
}

export async function benchOperate(): Promise<Section> {
  requireFleetAccess();
  const runs = param('OPERATE_RUNS', 3, 1);

  log(`cdktf synth and the offline terraform init + validate + plan of ${ENV}, ${runs} run(s)`);
  const tf = await stacks(runs);

  log(`fleet ${FLEET}: local up first, so the base image of the current recipe is cached (not timed)`);
  await cadfleet(['local', 'up']);
  const spec = JSON.parse(fs.readFileSync(path.join(STATE, 'fleet.json'), 'utf8')) as { name: string; subnet: string };
  if (spec.name !== FLEET) throw new Error(`${STATE}/fleet.json names fleet ${spec.name}, not ${FLEET}: refusing to destroy it`);

  // Without the prebuilt image: the same from-nothing run with an empty image cache, so that
  // `up` first builds the base image from the recipe (debootstrap + images/host-image.yml).
  log(`fleet ${FLEET}: destroy, then up with an empty image cache (the base image is built) + deploy`);
  await cadfleet(['local', 'destroy']);
  const freshCache = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-bench-images-'));
  let unbuilt: { total: number; up: number; build: number; deploy: number };
  try {
    const t = performance.now();
    const up = await cadfleet(['local', 'up', '--subnet', spec.subnet, '--json'], { env: { CADFLEET_IMAGE_CACHE: freshCache } });
    const built = (JSON.parse(up.stdout) as { baseImage: { built: boolean; seconds: number } }).baseImage;
    if (!built.built) throw new Error('local up with an empty image cache did not build the base image');
    const deployed = await cadfleet(['deploy', '--env', 'local', '--json']);
    unbuilt = { total: (performance.now() - t) / 1000, up: up.seconds, build: built.seconds, deploy: deployed.seconds };
    log(`without a prebuilt image: ${unbuilt.total.toFixed(1)} s (up ${up.seconds.toFixed(1)} s, of which the image build ${built.seconds.toFixed(1)} s; deploy ${deployed.seconds.toFixed(1)} s)`);
    await cadfleet(['local', 'destroy']);
  } finally {
    fs.rmSync(freshCache, { recursive: true, force: true });
  }

  log(`fleet ${FLEET}: destroy (its hosts, keys and network; the base image stays), then up + deploy from nothing on ${spec.subnet}`);

  const t0 = performance.now();
  const upped = await cadfleet(['local', 'up', '--subnet', spec.subnet, '--json']);
  const upReport = JSON.parse(upped.stdout) as { baseImage: { built: boolean }; started: string[] };
  if (upReport.baseImage.built) throw new Error('local up built the base image after the destroy: it was meant to be cached');
  const first = await cadfleet(['deploy', '--env', 'local', '--json']);
  const firstReport = JSON.parse(first.stdout) as DeployReport;
  const { lb } = await fleetOutputs();
  const agents = fleetAgents(false);
  const answered = await until('the api answering through the LB after the first deploy', () => apiAnswersThroughLb(lb, agents), 300_000, 250).finally(() => closeAgents(agents));
  const fromNothing = (performance.now() - t0) / 1000;
  log(`from nothing to serving in ${fromNothing.toFixed(1)} s: up ${upped.seconds.toFixed(1)} s (${upReport.started.length} hosts), deploy ${first.seconds.toFixed(1)} s (${firstReport.release.version}${firstReport.release.reused ? ', bundle cached' : ', bundle built'}), then ${answered.toFixed(1)} s until the api answered through the LB`);

  // The scale-out path: one more worker through cloud-init, from boot to healthy, no deploy.
  const scaled = await cadfleet(['local', 'scale-out', 'worker', '--json']);
  const scaledReport = JSON.parse(scaled.stdout) as { host: { name: string }; seconds: number };
  log(`scale-out: ${scaledReport.host.name} healthy through cloud-init in ${scaledReport.seconds.toFixed(1)} s (the command ${scaled.seconds.toFixed(1)} s)`);
  await cadfleet(['local', 'scale-in', 'worker']);

  const redeploys: number[] = [];
  const changed: number[] = [];
  for (let run = 0; run < runs; run++) {
    const r = await cadfleet(['deploy', '--env', 'local', '--json']);
    const report = JSON.parse(r.stdout) as DeployReport;
    redeploys.push(r.seconds);
    changed.push(report.changed);
    log(`no-change redeploy ${run + 1}/${runs}: ${r.seconds.toFixed(1)} s, ${report.changed} change(s)`);
  }

  const full = await cadfleet(['deploy', '--env', 'local', '--full', '--json']);
  const fullReport = JSON.parse(full.stdout) as DeployReport;
  log(`full redeploy (--full): ${full.seconds.toFixed(1)} s, ${fullReport.changed} change(s)`);

  const version = `${firstReport.release.version}-bench${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`;
  log(`rolling upgrade of every host to ${version} (built from the working tree first)`);
  const upgraded = await cadfleet(['upgrade', '--env', 'local', '--version', version, '--json']);
  const upgradeReport = JSON.parse(upgraded.stdout) as UpgradeReport;
  const upgradedHosts = upgradeReport.hosts.filter((h) => h.result === 'upgraded').length;
  log(`upgrade: ${upgraded.seconds.toFixed(1)} s (rolling part ${upgradeReport.seconds.toFixed(1)} s), ${upgradedHosts} of ${upgradeReport.hosts.length} hosts upgraded`);

  const firstDeploy = 'first deploy (8 fresh hosts)';
  const scaleOut = 'scale-out: one more worker through cloud-init, boot to healthy';
  const synthInProcess = 'synth in this process (the same app; no CLI, modules already loaded)';
  const rows: Row[] = [
    {
      name: 'local fleet from nothing to serving (base image cached)',
      median: fromNothing,
      unit: 's',
      note: `local up ${upped.seconds.toFixed(1)} s + first deploy ${first.seconds.toFixed(1)} s + ${answered.toFixed(1)} s until the api answered through the LB; release bundle ${firstReport.release.reused ? 'cached' : 'built in the deploy'}; one run; goal: under 90 s, ${fromNothing < 90 ? 'met' : 'missed'}`,
    },
    {
      name: 'local fleet from nothing to deployed, base image not prebuilt',
      median: unbuilt.total,
      unit: 's',
      baseline: 'local fleet from nothing to serving (base image cached)',
      ratio: unbuilt.total / fromNothing,
      note: `local up ${unbuilt.up.toFixed(1)} s, of which building the base image from the recipe ${unbuilt.build.toFixed(1)} s; first deploy ${unbuilt.deploy.toFixed(1)} s; one run`,
    },
    {
      name: scaleOut,
      median: scaledReport.seconds,
      unit: 's',
      note: `the stacks' user-data under cloud-init: settings from SSM (stand-in), the release from the bucket's pointer, then the release's host.yml run by the host on itself (the same roles, connection local; no push); the whole command ${scaled.seconds.toFixed(1)} s; one run`,
    },
    {
      name: firstDeploy,
      median: first.seconds,
      unit: 's',
      baseline: scaleOut,
      ratio: first.seconds / scaledReport.seconds,
      note: `${firstReport.changed} changes; release bundle ${firstReport.release.reused ? 'cached' : 'built in the deploy'}; one run; goal: under 60 s, ${first.seconds < 60 ? 'met' : 'missed'}`,
    },
    {
      name: 'no-change redeploy (deploy --env local again)',
      median: median(redeploys),
      unit: 's',
      spread: runs > 1 ? spread(redeploys, 1) : undefined,
      baseline: scaleOut,
      ratio: median(redeploys) / scaledReport.seconds,
      note: `changed: ${changed.join(', ')}; every host's record matched, so no role ran; goal: under 15 s, ${median(redeploys) < 15 ? 'met' : 'missed'}`,
    },
    {
      name: 'full redeploy (deploy --env local --full): every role on every host, nothing to change',
      median: full.seconds,
      unit: 's',
      baseline: scaleOut,
      ratio: full.seconds / scaledReport.seconds,
      note: `changed: ${fullReport.changed}; what a deploy that changes a setting costs at most; one run`,
    },
    {
      name: 'rolling upgrade of the whole fleet to a new release',
      median: upgraded.seconds,
      unit: 's',
      baseline: firstDeploy,
      ratio: upgraded.seconds / first.seconds,
      note: `building the release from the working tree, installing it everywhere, then ${upgradedHosts} hosts upgraded in batches of 1 per role, each drained and health-checked (the rolling part ${upgradeReport.seconds.toFixed(1)} s); one run`,
    },
    { name: synthInProcess, median: median(tf.inProcess), unit: 's', spread: runs > 1 ? spread(tf.inProcess, 1) : undefined },
    {
      name: `npx cdktf synth (${ENV})`,
      median: median(tf.cli),
      unit: 's',
      spread: runs > 1 ? spread(tf.cli, 1) : undefined,
      baseline: synthInProcess,
      ratio: median(tf.cli) / median(tf.inProcess),
    },
  ];
  if (!('missing' in tf.terraform)) {
    const total = tf.init.map((x, i) => x + tf.validate[i]! + tf.plan[i]!);
    rows.push({
      name: `terraform init + validate + plan, offline (${ENV})`,
      median: median(total),
      unit: 's',
      spread: runs > 1 ? spread(total, 1) : undefined,
      note: `init ${median(tf.init).toFixed(1)} s, validate ${median(tf.validate).toFixed(1)} s, plan ${median(tf.plan).toFixed(1)} s`,
    });
  }
  return {
    title: `operate: local fleet from nothing, redeploy, rolling upgrade; cdktf synth and the offline plan (${runs} run(s) where repeated)`,
    rows,
    notes: [
      `The local fleet ${FLEET}: 8 Debian 12 hosts under systemd-nspawn on this machine (lb, data, 2 api, 2 worker, 2 streamer), deployed by the Ansible playbooks over SSH. "From nothing" starts after \`local destroy\` (hosts, keys, network and state gone) with the base image cached; "not prebuilt" is the same with an empty image cache, so the image is built from the recipe first.`,
      `The benchmark leaves the fleet up, running the upgraded release; its earlier API keys went with the destroy.`,
      'missing' in tf.terraform
        ? `The offline terraform plan was not measured: ${tf.terraform.missing}`
        : `Synth and plan: the ${ENV} stack with terraform.tfvars.example, the real hashicorp/aws provider from a filesystem mirror, fake credentials and a local backend; terraform ${tf.terraform.version}.`,
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { table } = await import('./report');
  process.stdout.write(`${table(await benchOperate())}\n`);
}
