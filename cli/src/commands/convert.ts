import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { positiveInt } from './arguments';
import { createConverter } from '../../../app/src/converter/index';
import { QUALITIES, type ConvertResult, type Quality } from '../../../app/src/converter/types';

/** A folder name for each input that cannot collide when two inputs share a base name. */
export function outputFolders(inputs: string[], outDir: string): string[] {
  const used = new Set<string>();
  return inputs.map((input) => {
    const base = path.basename(input).replace(/[^\w.-]+/g, '_');
    let name = base;
    for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
    used.add(name);
    return path.join(outDir, name);
  });
}

/** `cadfleet convert`: many files through the warm converter pool, on this machine. */
export function convertCommand(): Command {
  return new Command('convert')
    .description('Convert CAD files on this machine with the warm converter pool (what a worker host runs).')
    .argument('<files...>', 'CAD or mesh files')
    .requiredOption('-o, --out <dir>', 'one sub-folder per input is written here')
    .addOption(new Option('-q, --quality <preset>', 'tessellation preset').choices(QUALITIES).default('normal'))
    .addOption(new Option('-j, --jobs <n>', 'warm converter processes').argParser(positiveInt).default(Math.max(1, Math.min(4, os.availableParallelism()))))
    .option('--json', 'print one JSON line per file instead of a table')
    .addHelpText('after', '\nExample:\n  $ cadfleet convert samples/*.stp --out out/ --jobs 2')
    .action(async (files: string[], opts: { out: string; quality: Quality; jobs: number; json?: boolean }) => {
      const missing = files.filter((f) => !fs.existsSync(f));
      if (missing.length) {
        process.stderr.write(`cadfleet convert: no such file: ${missing.join(', ')}\n`);
        process.exitCode = 2;
        return;
      }
      const folders = outputFolders(files, opts.out);
      const converter = createConverter({ mode: 'pool', poolSize: Math.min(opts.jobs, files.length), onOutput: () => undefined });
      let failed = 0;
      try {
        await Promise.all(
          files.map(async (input, i) => {
            const result: ConvertResult = await converter.convert({ input, outputDir: folders[i]!, quality: opts.quality });
            if (!result.ok) failed++;
            if (opts.json) {
              process.stdout.write(JSON.stringify({ input, outputDir: folders[i], ...result }) + '\n');
            } else {
              const s = result.stats;
              const what = result.ok ? `${s.parts} part${s.parts === 1 ? "" : "s"}, ${s.triangles} triangles, ${s.outputBytes} bytes in ${s.seconds} s` : `FAILED: ${result.error}`;
              process.stdout.write(`${result.ok ? 'ok  ' : 'fail'} ${input} -> ${folders[i]}  ${what}\n`);
            }
          }),
        );
      } finally {
        await converter.close();
      }
      if (failed) {
        process.stderr.write(`${failed} of ${files.length} conversions failed; each folder's result.json says why.\n`);
        process.exitCode = 1;
      }
    });
}
