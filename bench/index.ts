import { benchApi } from './api';
import { benchConvert } from './convert';
import { QUICK, requireFleetAccess } from './fleet';
import { benchLbLocal } from './lb-local';
import { benchLists } from './lists';
import { benchOperate } from './operate';
import { benchPipeline } from './pipeline';
import { benchScale } from './scale';
import { benchStream } from './stream';
import { benchThroughput } from './throughput';
import { table, writeReport, type Section } from './report';

/** Sub-benchmarks by name: `npm run bench -- convert`. Each runs against baselines measured in the same run. */
const BENCHMARKS: Record<string, () => Promise<Section | Section[]>> = {
  convert: benchConvert,
  // Assemblies of 100 to 5,000 parts against native OpenCASCADE (bench/scale.ts).
  scale: benchScale,
  pipeline: benchPipeline,
  stream: benchStream,
  // The LB's nginx.conf as a private nginx on 127.0.0.1, no fleet (the fleet's LB: `api`).
  'lb-local': benchLbLocal,
  // These run on the local fleet `cf` (root): they bring it up and deploy it when needed.
  // api: throughput through the LB, then list latency at 10^4..10^6 models (bench/lists.ts).
  api: async () => [await benchApi(), await benchLists()],
  throughput: benchThroughput,
  // Last: it destroys and rebuilds the fleet.
  operate: benchOperate,
};
const FLEET_BENCHMARKS = new Set(['api', 'throughput', 'operate']);

const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = asked.filter((name) => !(name in BENCHMARKS));
if (unknown.length) {
  process.stderr.write(`unknown benchmark: ${unknown.join(', ')}; choose from: ${Object.keys(BENCHMARKS).join(', ')}\n`);
  process.exit(2);
}
const chosen = asked.length ? asked : Object.keys(BENCHMARKS);
// Checked before anything runs, so a long run does not fail at its end.
if (chosen.some((name) => FLEET_BENCHMARKS.has(name))) {
  try {
    requireFleetAccess();
  } catch (err) {
    const others = chosen.filter((name) => !FLEET_BENCHMARKS.has(name));
    process.stderr.write(`bench: ${(err as Error).message}${others.length ? `\n(without root: npm run bench -- ${others.join(' ')})` : ''}\n`);
    process.exit(1);
  }
}
for (const name of chosen) {
  process.stderr.write(`bench ${name}...\n`);
  let sections: Section[];
  try {
    sections = [await BENCHMARKS[name]!()].flat();
  } catch (err) {
    process.stderr.write(`bench ${name} failed: ${(err as Error).message}\n`);
    process.exit(1);
  }
  // A benchmark's first section is its report block; the others follow as <name>-2, <name>-3.
  sections.forEach((section, i) => {
    if (QUICK) section.title += ' — quick run (BENCH_QUICK=1): for checking the benchmark, not for comparison';
    process.stdout.write(`${table(section)}\n\n`);
    writeReport('docs/benchmarks.md', i === 0 ? name : `${name}-${i + 1}`, section);
  });
}
// Keep-alive sockets and timers of the fleet benchmarks must not hold the process open.
process.exit(0);
