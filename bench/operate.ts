// operate benchmark: what an operator waits for. The local fleet from nothing to serving
// (base image cached), a no-change redeploy, a rolling upgrade of the whole fleet; cdktf synth
// and the offline terraform init+validate+plan of the staging stack (the AWS provider from
// the machine's filesystem mirror). Destroys and rebuilds the default local fleet `cf`.
//
// Run alone: sudo node --import tsx bench/operate.ts
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../stacks/app';
import { offlineTerraform } from '../test/stacks/helpers/terraform';
import { cadfleet, requireRoot } from './fleet';
import { type Row, type Section, median, spread } from './report';

const REDEPLOYS = Number(process.env.BENCH_OPERATE_REDEPLOYS ?? 3);

async function stacks(): Promise<{ synth: number[]; plan: number[] }> {
  const synth: number[] = [];
  const plan: number[] = [];
  for (let i = 0; i < 3; i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-bench-stacks-'));
    try {
      let t0 = performance.now();
      // S3 state as an environment with a GitHub deploy role needs (the example sets one); the
      // offline run swaps in a local backend, as test/stacks does.
      buildApp({ environment: 'staging', production: false, state: { kind: 's3', bucket: 'cadfleet-tfstate-example', key: 'cadfleet/staging/terraform.tfstate', region: 'us-east-1' } }, { outdir: path.join(dir, 'cdktf.out') }).app.synth();
      synth.push((performance.now() - t0) / 1000);
      const stackDir = path.join(dir, 'cdktf.out', 'stacks', 'cadfleet-staging');
      const vars = path.join(dir, 'offline.tfvars');
      fs.writeFileSync(vars, 'ami_id = "ami-0123456789abcdef0"\navailability_zones = ["us-east-1a", "us-east-1b"]\n');
      const tf = offlineTerraform(stackDir, dir, { backend: 'local' });
      t0 = performance.now();
      await tf.ok(['init', '-input=false']);
      await tf.ok(['validate']);
      await tf.ok(['plan', '-input=false', '-lock=false', `-var-file=${path.resolve('terraform.tfvars.example')}`, `-var-file=${vars}`, '-out=plan.bin']);
      plan.push((performance.now() - t0) / 1000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return { synth, plan };
}

export async function benchOperate(): Promise<Section> {
  const log = (line: string) => process.stderr.write(`bench operate: ${line}\n`);
  requireRoot();
  log('cdktf synth and the offline plan, 3 times');
  const tf = await stacks();

  log('the local fleet from nothing: destroy, then up and deploy (base image cached)');
  cadfleet(['local', 'up']); // builds the base image first if the recipe changed: not part of the figure
  cadfleet(['local', 'destroy']);
  const up = cadfleet(['local', 'up']).seconds;
  const deploy = cadfleet(['deploy', '--env', 'local']).seconds;

  log(`${REDEPLOYS} no-change redeploys`);
  const redeploys: number[] = [];
  for (let i = 0; i < REDEPLOYS; i++) {
    const r = cadfleet(['deploy', '--env', 'local', '--json']);
    const report = JSON.parse(r.stdout) as { changed: number };
    if (report.changed !== 0) throw new Error(`a redeploy of an unchanged tree changed ${report.changed} thing(s)`);
    redeploys.push(r.seconds);
  }

  log('a rolling upgrade of every host to another build name of this tree');
  const version = `${JSON.parse(cadfleet(['deploy', '--env', 'local', '--json']).stdout).release.version as string}-bench${Date.now().toString(36)}`;
  const upgrade = cadfleet(['upgrade', '--env', 'local', '--version', version]).seconds;
  cadfleet(['rollback', '--env', 'local']);

  const rows: Row[] = [
    { name: 'local fleet from nothing to serving (up + first deploy, image cached)', median: up + deploy, unit: 's', note: `up ${up.toFixed(1)} s + deploy ${deploy.toFixed(1)} s; goal: under 180 s` },
    { name: 'no-change redeploy of the whole fleet (8 hosts)', median: median(redeploys), unit: 's', spread: spread(redeploys, 1), note: 'goal: under 30 s' },
    { name: 'rolling upgrade of the whole fleet (install, then worker, streamer, api, lb in batches)', median: upgrade, unit: 's', note: 'one run' },
    { name: 'cdktf synth (staging)', median: median(tf.synth), unit: 's', spread: spread(tf.synth, 2) },
    { name: 'offline terraform init + validate + plan (staging)', median: median(tf.plan), unit: 's', spread: spread(tf.plan, 1) },
  ];
  return { title: 'operate: what an operator waits for', rows, notes: ['The fleet runs on this machine: 8 Debian 12 hosts under systemd-nspawn; Ansible over SSH with pipelining and ControlPersist.'] };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(JSON.stringify(await benchOperate(), null, 2));
