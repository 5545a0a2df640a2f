import { execFileSync } from 'node:child_process';

/** The tests run the converter as users do, through bin/ and the bundle: build it once first. */
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}
