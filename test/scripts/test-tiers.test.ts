// `npm test`'s tiers (scripts/test-tiers.ts) against vitest's own listing of the test files:
// every file runs in exactly one tier, so a new folder of tests cannot fall between them or run
// twice.
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { APP_SUITES, FLEET_SUITE, PLAN_SUITES, TOOLKIT_ARGS } from '../../scripts/test-tiers';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The files `vitest run <args>` would run (vitest list --filesOnly), relative to the root. */
function files(args: string[]): string[] {
  const out = execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vitest/vitest.mjs'), 'list', ...args, '--filesOnly', '--json'], { cwd: ROOT, encoding: 'utf8' });
  return (JSON.parse(out) as Array<{ file: string }>).map((f) => path.relative(ROOT, f.file)).sort();
}

describe('the test tiers', () => {
  it('run every test file exactly once: the toolkit tier, the plans tier, the app tier (on Node 24) or the fleet tier', () => {
    const all = files([]);
    const toolkit = files(TOOLKIT_ARGS);
    const plans = files(PLAN_SUITES);
    const app = files(APP_SUITES);
    const fleet = files([FLEET_SUITE]);
    expect(all.length).toBeGreaterThan(60);
    for (const suite of APP_SUITES) expect(app.filter((f) => f.startsWith(`${suite}/`)).length, `${suite} has no test file`).toBeGreaterThan(0);
    expect(fleet).toEqual(['test/fleet/local-fleet.test.ts']);
    expect(plans).toEqual([...PLAN_SUITES].sort());
    expect([...toolkit, ...plans, ...app, ...fleet].sort()).toEqual(all);
    // The toolkit tier runs on this machine's Node: none of the app's suites, nothing of the fleet.
    expect(toolkit.filter((f) => APP_SUITES.some((s) => f.startsWith(`${s}/`)) || f.startsWith(`${FLEET_SUITE}/`))).toEqual([]);
    expect(toolkit).toContain('test/stacks/constructs.test.ts');
  });

  it('refuses an argument it does not know, saying what it takes, before it runs anything', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/test.ts'), 'fleet-only'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown arguments: fleet-only. Use: scripts/test.ts [all|fast|toolkit] [--serial]');
    expect(r.stderr).not.toContain('build:');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
