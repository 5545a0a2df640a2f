import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { must, type Runner } from './exec';

export interface BaseImageOptions {
  /** Folder of the recipe: packages.txt and customize.sh. */
  recipeDir: string;
  /** Where built images are kept, one folder per recipe hash. */
  cacheDir: string;
  /** A Debian mirror URL; by default the one this machine's apt sources name. */
  mirror?: string;
  suite?: string;
  log?: (line: string) => void;
}

export function recipePackages(recipeDir: string): string[] {
  return fs
    .readFileSync(path.join(recipeDir, 'packages.txt'), 'utf8')
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/** The image's identity: a change to the package list or the customize script makes a new image. */
export function recipeHash(recipeDir: string, suite = 'bookworm'): string {
  const hash = createHash('sha256');
  hash.update(suite);
  for (const file of ['packages.txt', 'customize.sh']) hash.update(fs.readFileSync(path.join(recipeDir, file)));
  return hash.digest('hex').slice(0, 16);
}

/** The Debian mirror from this machine's apt sources (deb822 or one-line format). */
export function debianMirror(sources: string[]): string | undefined {
  for (const text of sources) {
    const deb822 = /^URIs:\s*(\S+)/m.exec(text);
    if (deb822 && /debian\/?$/.test(deb822[1]!)) return deb822[1];
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian\/?)\s/m.exec(text);
    if (line) return line[1];
  }
  return undefined;
}

function readAptSources(): string[] {
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (fs.existsSync(dir)) files.push(...fs.readdirSync(dir).map((f) => path.join(dir, f)));
  return files.filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8'));
}

export function baseImagePath(options: BaseImageOptions): string {
  return path.join(options.cacheDir, `base-${options.suite ?? 'bookworm'}-${recipeHash(options.recipeDir, options.suite)}`);
}

/**
 * Returns the cached base rootfs for the recipe, building it first if needed: debootstrap into
 * a temporary folder, run customize.sh in it, then rename into place, so a half-built image is
 * never used and a crashed build is simply redone.
 */
export async function ensureBaseImage(runner: Runner, options: BaseImageOptions): Promise<{ path: string; built: boolean; seconds: number }> {
  const target = baseImagePath(options);
  if (fs.existsSync(path.join(target, '.cadfleet-complete'))) return { path: target, built: false, seconds: 0 };
  const started = performance.now();
  const log = options.log ?? (() => undefined);
  const mirror = options.mirror ?? process.env.CADFLEET_DEBIAN_MIRROR ?? debianMirror(readAptSources());
  if (!mirror) {
    throw new Error('cannot tell which Debian mirror to build the base image from: this machine\'s apt sources name none; set CADFLEET_DEBIAN_MIRROR');
  }
  fs.mkdirSync(options.cacheDir, { recursive: true });
  const building = `${target}.building-${process.pid}`;
  fs.rmSync(building, { recursive: true, force: true });
  for (const stale of fs.readdirSync(options.cacheDir).filter((f) => f.startsWith(`${path.basename(target)}.building-`))) {
    fs.rmSync(path.join(options.cacheDir, stale), { recursive: true, force: true });
  }
  const packages = recipePackages(options.recipeDir);
  log(`building the base image (Debian ${options.suite ?? 'bookworm'}, ${packages.length} packages) into ${target}; about a minute`);
  await must(runner, ['debootstrap', '--variant=minbase', `--include=${packages.join(',')}`, options.suite ?? 'bookworm', building, mirror], {
    timeoutMs: 20 * 60_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  fs.copyFileSync(path.join(options.recipeDir, 'customize.sh'), path.join(building, 'tmp/customize.sh'));
  await must(runner, ['chroot', building, '/bin/sh', '/tmp/customize.sh'], { timeoutMs: 10 * 60_000 });
  fs.rmSync(path.join(building, 'tmp/customize.sh'));
  fs.writeFileSync(path.join(building, '.cadfleet-complete'), `${new Date().toISOString()}\n`);
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(building, target);
  return { path: target, built: true, seconds: (performance.now() - started) / 1000 };
}
