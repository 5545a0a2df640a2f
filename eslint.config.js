import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const PROCESSES = ['api', 'worker', 'streamer', 'lb-sync', 'admin'];

/** One block per folder of app/src: the folders its files must not import from. */
function processBoundaries() {
  const forbidden = {
    ...Object.fromEntries(PROCESSES.map((p) => [p, PROCESSES.filter((q) => q !== p)])),
    shared: PROCESSES,
    converter: [...PROCESSES, 'shared'],
  };
  return Object.entries(forbidden).map(([folder, others]) => ({
    files: [`app/src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // A relative path that climbs to app/src and goes into another folder of it.
              regex: `^(\\.\\./)+(${others.join('|')})(/|$)`,
              message: `app/src/${folder} must not import from ${others.map((o) => `app/src/${o}`).join(', ')}: share code through app/src/shared (or the converter library)`,
            },
            { group: ['cdktf', '@cdktf/*', 'cdktn', '@cdktn/*'], message: 'import the CDK from stacks/cdk.ts and the AWS bindings from stacks/aws.ts' },
          ],
        },
      ],
    },
  }));
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'cdktf.out/', '.scratch/', 'coverage/', '**/.terraform/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', fetch: 'readonly', FormData: 'readonly', Blob: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // The CDK and its AWS bindings come in through stacks/cdk.ts and stacks/aws.ts only, so a
    // move to CDK Terrain (cdktn) changes those two files (docs/aws.md, "CDK Terrain").
    files: ['**/*.ts'],
    ignores: ['stacks/cdk.ts', 'stacks/aws.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['cdktf', '@cdktf/*', 'cdktn', '@cdktn/*'], message: 'import the CDK from stacks/cdk.ts and the AWS bindings from stacks/aws.ts' }] }],
    },
  },
  // The service's processes (app/src/<process>/) share code through app/src/shared/ and the
  // converter library (app/src/converter/), never through each other: a worker does not load the
  // api's routes, a streamer neither BullMQ nor PostgreSQL code it has no use for
  // (docs/architecture.md, "The service's code"). main.ts, the entry point, picks one. After
  // the CDK block: the last block that sets a rule for a file is the one that counts.
  ...processBoundaries(),
);
