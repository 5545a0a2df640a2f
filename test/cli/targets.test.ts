// The two targets (cli/src/target/): what differs between the local fleet and an AWS
// environment is asked of the target, and nothing else in the CLI branches on which one it is.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { targetNamed, targetOf } from '../../cli/src/target';
import type { Outputs } from '../../cli/src/contract';

const ROOT = path.join(__dirname, '../..');
/** The target modules, and the modules of one target only (the local fleet's machinery, AWS's). */
const TARGET_DIRS = ['cli/src/target/', 'cli/src/local/', 'cli/src/aws/'];
/** A comparison with an environment's name or kind. */
const BRANCH = /[!=]==?\s*'(local|aws)'|'(local|aws)'\s*[!=]==?|provider\s*[!=]==?|[!=]==?\s*LOCAL\b|\bLOCAL(_ENVIRONMENT)?\s*[!=]==?|\.kind\s*[!=]==?/;

describe('the targets', () => {
  it('are the only place that tells local from AWS: no other module of the CLI compares an environment with either', () => {
    const files = execFileSync('git', ['ls-files', '-z', 'cli/src'], { cwd: ROOT, encoding: 'utf8' })
      .split('\0')
      .filter((f) => f.endsWith('.ts') && !TARGET_DIRS.some((d) => f.startsWith(d)) && fs.existsSync(path.join(ROOT, f)));
    expect(files.length).toBeGreaterThan(25);
    const branches = files.flatMap((f) =>
      fs.readFileSync(path.join(ROOT, f), 'utf8').split('\n').flatMap((line, i) => (BRANCH.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(branches).toEqual([]);
  });

  it('say what differs: deploy, the pointer file, the hint for a silent host, what this machine needs', async () => {
    const local = targetNamed('local');
    const aws = targetNamed('staging');
    expect([local.kind, aws.kind]).toEqual(['local', 'aws']);
    expect(local.deployRefusal).toBeUndefined();
    expect(aws.deployRefusal).toContain('cadfleet upgrade --env staging');
    expect(local.publishesAfterDeploy && !aws.publishesAfterDeploy).toBe(true);
    expect(local.pointerFile('/w')).toBe('/w/release-pointer');
    expect(aws.pointerFile('/w')).toBeUndefined();
    const host = { name: 'i-0abc', role: 'api' as const, index: 1, address: '10.0.1.5' };
    expect(aws.runningHint(host)).toContain('Values=i-0abc');
    expect(local.runningHint(host)).toContain('cadfleet local status');
    expect(aws.secrets('/nowhere')).toBeNull();
    const machine = [
      { name: 'AWS credentials', for: 'AWS', ok: false, optional: true, found: 'none', fix: 'aws configure' },
      { name: 'packer', for: 'the host image', ok: false, optional: true, found: 'no', fix: 'apt-get install packer' },
      { name: 'systemd-nspawn', for: 'the local fleet', ok: true, optional: true, found: 'yes', fix: '' },
    ];
    expect((await aws.doctorChecks(machine)).map((c) => [c.name, c.optional])).toEqual([
      ['AWS credentials', false],
      ['packer', true],
    ]);
  });

  it("follow an environment's outputs, whatever its name", () => {
    const outputs = (provider: 'local' | 'aws') => ({ environment: 'x', provider }) as Outputs;
    expect(targetOf({ name: 'local', outputs: outputs('local') }).kind).toBe('local');
    expect(targetOf({ name: 'prod', outputs: outputs('aws') }).kind).toBe('aws');
  });
});
