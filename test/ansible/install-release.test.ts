// The release role's install script (ansible/roles/release/files/install-release.sh), run on this
// machine in a temporary release root: it installs a bundle whole or not at all, refuses one
// whose sha256 differs, and removes the releases beyond the ones kept for rollback, never the
// current one nor the one it installs.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const SCRIPT = path.resolve(import.meta.dirname, '../../ansible/roles/release/files/install-release.sh');

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-install-release-'));
  fs.mkdirSync(path.join(root, 'releases'));
  fs.mkdirSync(path.join(root, 'downloads'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** A bundle as the release builder makes it: one top folder with VERSION in it. */
function bundle(version: string, withVersionFile = true): { file: string; sha256: string } {
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-bundle-src-'));
  const top = path.join(src, `cadfleet-${version}`);
  fs.mkdirSync(path.join(top, 'app'), { recursive: true });
  fs.writeFileSync(path.join(top, 'app', 'main.js'), `// ${version}\n`);
  if (withVersionFile) fs.writeFileSync(path.join(top, 'VERSION'), `${version}\n`);
  const file = path.join(root, 'downloads', `cadfleet-${version}.tar.gz`);
  const tar = spawnSync('tar', ['-czf', file, '-C', src, `cadfleet-${version}`]);
  expect(tar.status, tar.stderr.toString()).toBe(0);
  fs.rmSync(src, { recursive: true, force: true });
  return { file, sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex') };
}

function install(version: string, b: { file: string; sha256: string }, keep?: number): { code: number; stderr: string } {
  const args = [SCRIPT, b.file, b.sha256, path.join(root, 'releases', version), ...(keep === undefined ? [] : [String(keep)])];
  const r = spawnSync('sh', args, { encoding: 'utf8' });
  return { code: r.status ?? -1, stderr: r.stderr };
}

const installed = (): string[] => fs.readdirSync(path.join(root, 'releases')).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('install-release.sh', () => {
  it('puts the release in place whole and removes the bundle', () => {
    const b = bundle('1.0.0');
    expect(install('1.0.0', b)).toMatchObject({ code: 0 });
    expect(fs.readFileSync(path.join(root, 'releases/1.0.0/VERSION'), 'utf8')).toBe('1.0.0\n');
    expect(fs.readFileSync(path.join(root, 'releases/1.0.0/app/main.js'), 'utf8')).toBe('// 1.0.0\n');
    expect(fs.existsSync(b.file)).toBe(false);
    expect(installed()).toEqual(['1.0.0']);
  });

  it('refuses a bundle whose sha256 differs, or one without VERSION, and leaves no release behind', () => {
    const b = bundle('1.0.0');
    const wrong = install('1.0.0', { ...b, sha256: '0'.repeat(64) });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`the release bundle's sha256 is ${b.sha256}, not ${'0'.repeat(64)}: refusing to install it`);
    const noVersion = bundle('2.0.0', false);
    const missing = install('2.0.0', noVersion);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('the release bundle has no VERSION file: refusing to install it');
    expect(installed()).toEqual([]);
  });

  it('keeps the KEEP most recently installed releases, never removing the current one nor the new one', async () => {
    for (const v of ['1', '2', '3']) {
      expect(install(v, bundle(v), 3).code).toBe(0);
      await sleep(20); // ctime tells the installs apart
    }
    // current points at the oldest (a rollback went back to it): it stays whatever its age.
    fs.symlinkSync(path.join(root, 'releases/1'), path.join(root, 'current'));
    expect(install('4', bundle('4'), 3).code).toBe(0);
    expect(installed()).toEqual(['1', '2', '3', '4']);
    await sleep(20);
    // A half-unpacked folder of another install that failed is not a release: neither counted nor removed.
    fs.mkdirSync(path.join(root, 'releases/9.partial'));
    expect(install('5', bundle('5'), 3).code).toBe(0);
    expect(installed()).toEqual(['1', '3', '4', '5', '9.partial']);
    // Without KEEP nothing is removed.
    await sleep(20);
    expect(install('6', bundle('6')).code).toBe(0);
    expect(installed()).toEqual(['1', '3', '4', '5', '6', '9.partial']);
  });
});
