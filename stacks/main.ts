// Entry point of `cdktf synth` (cdktf.json "app"). The environment and its state location
// come from CADFLEET_ENV and CADFLEET_STATE_* (see stacks/config.ts and docs/aws.md).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from './app';
import { loadStackConfig, stackName } from './config';
import { PropsError } from './validate';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

try {
  const config = loadStackConfig(process.env, repoRoot);
  if (config.state.kind === 'local') {
    console.error(
      `cadfleet: CADFLEET_STATE_BUCKET is not set, so ${stackName(config.environment)} keeps its state in ${path.relative(repoRoot, config.state.path)} ` +
        'on this machine. Set it for any environment someone else may apply (docs/aws.md).',
    );
  }
  buildApp(config).app.synth();
} catch (error) {
  if (!(error instanceof PropsError)) throw error;
  console.error(`cadfleet: ${error.message}`);
  process.exit(2);
}
