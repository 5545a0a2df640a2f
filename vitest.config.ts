import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Converter tests spawn real processes that each use a core; two cores here.
    maxWorkers: 2,
    // The AWS SDK's notice that its 2027 releases need Node 22 (the CLI silences it too, in cli/src/main.ts).
    // terraform from .cadfleet/tools when setup installed it there (scripts/ensure-terraform.sh),
    // first on PATH as the CLI puts it (cli/src/tools.ts; not imported: the config loads alone).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1', PATH: [path.join(import.meta.dirname, '.cadfleet', 'tools', 'bin'), process.env.PATH].join(path.delimiter) },
  },
});
