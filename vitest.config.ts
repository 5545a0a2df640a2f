import { defineConfig } from 'vitest/config';
import { withProjectTools } from './cli/src/tools';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Converter tests spawn real processes that each use a core; two cores here.
    maxWorkers: 2,
    // The AWS SDK's notice that its 2027 releases need Node 22 (the CLI silences it too, in cli/src/main.ts).
    // terraform from .cadfleet/tools when setup installed it there (scripts/ensure-terraform.sh), as the CLI finds it.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '1', PATH: withProjectTools(process.env.PATH, import.meta.dirname) },
  },
});
