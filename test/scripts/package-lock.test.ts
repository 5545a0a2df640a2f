// What makes `npm ci` in scripts/setup.sh work on a fresh clone, print no unresolved install-script
// warning, and leave package-lock.json as it is.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
interface LockEntry {
  version?: string;
  hasInstallScript?: boolean;
  optionalDependencies?: Record<string, string>;
}
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string }; allowScripts: Record<string, boolean> };

/** Where npm resolves `name` from the package at `from`: its own node_modules, then each parent's. */
function resolves(from: string, name: string): boolean {
  for (let dir = from; ; dir = dir.includes('/node_modules/') ? dir.slice(0, dir.lastIndexOf('/node_modules/')) : '') {
    if (lock.packages[`${dir ? `${dir}/` : ''}node_modules/${name}`]) return true;
    if (dir === '') return false;
  }
}

describe('package-lock.json', () => {
  it("lists every platform's optional binaries, as npm install writes them anywhere: npm ci accepts it and setup leaves it untouched", () => {
    const missing = Object.entries(lock.packages).flatMap(([at, entry]) => Object.keys(entry.optionalDependencies ?? {}).filter((name) => !resolves(at, name)).map((name) => `${at} -> ${name}`));
    expect(missing).toEqual([]);
    expect(fs.readFileSync(path.join(ROOT, 'scripts/setup.sh'), 'utf8')).toMatch(/^\s+npm ci --no-audit --no-fund$/m);
  });

  it('has a decision in allowScripts for every dependency with an install script', () => {
    const withScripts = Object.entries(lock.packages)
      .filter(([, entry]) => entry.hasInstallScript)
      .map(([at]) => at.slice(at.lastIndexOf('node_modules/') + 'node_modules/'.length));
    expect(withScripts.length).toBeGreaterThan(0);
    expect([...new Set(withScripts)].sort()).toEqual(Object.keys(pkg.allowScripts).sort());
  });

  it('asks for a Node LTS line, 22 or 24', () => {
    expect(pkg.engines.node).toBe('>=22.12');
  });
});
