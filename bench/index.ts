import { benchApi } from './api';
import { benchConvert } from './convert';
import { benchOperate } from './operate';
import { benchPipeline } from './pipeline';
import { benchStream } from './stream';
import { benchThroughput } from './throughput';
import { table, writeReport, type Section } from './report';

/** Sub-benchmarks by name: `npm run bench -- convert`. Each runs against baselines measured in the same run. */
const BENCHMARKS: Record<string, () => Promise<Section>> = {
  convert: benchConvert,
  pipeline: benchPipeline,
  stream: benchStream,
  // These run on the local fleet (root): they bring it up and deploy it when needed.
  api: benchApi,
  throughput: benchThroughput,
  operate: benchOperate,
};

const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = asked.filter((name) => !(name in BENCHMARKS));
if (unknown.length) {
  process.stderr.write(`unknown benchmark: ${unknown.join(', ')}; choose from: ${Object.keys(BENCHMARKS).join(', ')}\n`);
  process.exit(2);
}
for (const name of asked.length ? asked : Object.keys(BENCHMARKS)) {
  process.stderr.write(`bench ${name}...\n`);
  const section = await BENCHMARKS[name]!();
  process.stdout.write(`${table(section)}\n\n`);
  writeReport('docs/benchmarks.md', name, section);
}
