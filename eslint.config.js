import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
);
