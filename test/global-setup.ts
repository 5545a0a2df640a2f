import { execFileSync } from 'node:child_process';

/**
 * The tests run the converter as users do, through bin/ and the bundle: build it once first.
 * `npm test` (scripts/test.ts) builds it before its tiers, two of which run at once, and sets
 * CADFLEET_TEST_BUILT so that they do not build into dist/ at the same time.
 */
export default function setup(): void {
  if (process.env.CADFLEET_TEST_BUILT === '1') return;
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}
