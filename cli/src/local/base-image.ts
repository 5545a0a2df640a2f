import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { must, type Runner } from './exec';

export interface BaseImageOptions {
  /** The repository: images/host-image.yml and the roles it applies are the recipe. */
  recipeDir: string;
  /** Where built images are kept, one folder per recipe hash. */
  cacheDir: string;
  /** A Debian mirror URL; by default the one this machine's apt sources name. */
  mirror?: string;
  suite?: string;
  log?: (line: string) => void;
}

/** The image playbook, and the roles it applies: the whole recipe of the host image. */
export const RECIPE_PLAYBOOK = 'images/host-image.yml';
const RECIPE_CONFIG = 'images/ansible.cfg';
const RECIPE_ROLES = ['ansible/roles/common', 'ansible/roles/host_image'];

/**
 * The image's packages: `host_image_packages` of the host_image role's defaults (one YAML list
 * item per line). debootstrap installs them; the playbook then finds them there.
 */
export function recipePackages(recipeDir: string): string[] {
  const text = fs.readFileSync(path.join(recipeDir, 'ansible/roles/host_image/defaults/main.yml'), 'utf8');
  const block = /^host_image_packages:\n((?:\s+-\s+\S+\n|\s*#.*\n)+)/m.exec(text);
  if (!block) throw new Error('ansible/roles/host_image/defaults/main.yml has no host_image_packages list');
  return [...block[1]!.matchAll(/^\s+-\s+(\S+)$/gm)].map((m) => m[1]!);
}

function recipeFiles(recipeDir: string): string[] {
  const files = [RECIPE_PLAYBOOK, RECIPE_CONFIG];
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(recipeDir, rel), { withFileTypes: true })) {
      const file = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(file);
      else files.push(file);
    }
  };
  for (const role of RECIPE_ROLES) walk(role);
  return files.sort();
}

/** The image's identity: a change to the playbook or to a role it applies makes a new image. */
export function recipeHash(recipeDir: string, suite = 'bookworm'): string {
  const hash = createHash('sha256');
  hash.update(suite);
  for (const file of recipeFiles(recipeDir)) {
    hash.update(`\0${file}\0`);
    hash.update(fs.readFileSync(path.join(recipeDir, file)));
  }
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
  // Half-built images of a build that died (of this recipe or an older one): their pid is gone.
  for (const stale of fs.readdirSync(options.cacheDir).filter((f) => /\.building-\d+$/.test(f))) {
    const pid = Number(stale.split('.building-')[1]);
    if (pid !== process.pid && fs.existsSync(`/proc/${pid}`)) continue;
    fs.rmSync(path.join(options.cacheDir, stale), { recursive: true, force: true });
  }
  const packages = recipePackages(options.recipeDir);
  log(`building the base image (Debian ${options.suite ?? 'bookworm'}, ${packages.length} packages) into ${target}; about a minute`);
  await must(runner, ['debootstrap', '--variant=minbase', `--include=${packages.join(',')}`, options.suite ?? 'bookworm', building, mirror], {
    timeoutMs: 20 * 60_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  // The same playbook that builds the AMI, here through Ansible's chroot connection.
  log('applying images/host-image.yml to the image (Ansible, chroot connection)');
  await must(runner, ['ansible-playbook', '-i', `${building},`, '-c', 'community.general.chroot', '-e', 'host_image_target=local', path.join(options.recipeDir, RECIPE_PLAYBOOK)], {
    timeoutMs: 10 * 60_000,
    env: { ...process.env, ANSIBLE_CONFIG: path.join(options.recipeDir, RECIPE_CONFIG), ANSIBLE_NOCOLOR: '1', DEBIAN_FRONTEND: 'noninteractive' },
  });
  fs.writeFileSync(path.join(building, '.cadfleet-complete'), `${new Date().toISOString()}\n`);
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(building, target);
  return { path: target, built: true, seconds: (performance.now() - started) / 1000 };
}
