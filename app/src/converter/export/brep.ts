// B-rep targets (STEP, IGES) from a B-rep input, written by OpenCASCADE itself: Debian's
// occt-draw (OCCT 7.6, native) reads the input into an XDE document and writes it out, so a
// STEP keeps its assembly tree, part names and colours. Chosen over a WebAssembly OCCT from npm
// (replicad-opencascadejs: 22 MB of WebAssembly whose build reads STEP without XDE, flattening
// assemblies, and has no IGES writer at all); measured here: as1-oc-214.stp to STEP and IGES in
// 0.36 s. The worker hosts get the package from the host image (images/host-image.yml).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export type BrepTarget = 'step' | 'iges';
export type BrepSource = 'step' | 'iges' | 'brep';

const LIB_DIR = '/usr/lib/x86_64-linux-gnu';

/** Where occt-draw is, or undefined. */
export function occtDraw(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v occt-draw'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() || undefined : undefined;
}

/**
 * Debian's occt-draw loads its plugins by the unversioned libTK*.so names, which only the -dev
 * package provides: a folder of symlinks on LD_LIBRARY_PATH stands in for it (made once).
 */
export function occtLibraryLinks(cacheDir: string): string {
  const dir = path.join(cacheDir, 'occt-libs');
  if (fs.existsSync(path.join(dir, '.complete'))) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const libs = fs.existsSync(LIB_DIR) ? fs.readdirSync(LIB_DIR).filter((f) => /^libTK\w+\.so\.\d+$/.test(f)) : [];
  for (const lib of libs) {
    const link = path.join(dir, lib.replace(/\.\d+$/, ''));
    if (!fs.existsSync(link)) fs.symlinkSync(path.join(LIB_DIR, lib), link);
  }
  fs.writeFileSync(path.join(dir, '.complete'), '');
  return dir;
}

/** Tcl braces quote a path for DRAW; a path with braces or a newline is refused. */
function tclPath(file: string): string {
  if (/[{}\n\r\\]/.test(file)) throw new Error(`a path DRAW cannot be given: ${JSON.stringify(file)}`);
  return `{${file}}`;
}

/** The DRAW script that reads `input` and writes `output`. */
export function drawScript(source: BrepSource, input: string, target: BrepTarget, output: string): string {
  const read =
    source === 'step'
      ? [`ReadStep D ${tclPath(input)}`]
      : source === 'iges'
        ? [`ReadIges D ${tclPath(input)}`]
        : [`restore ${tclPath(input)} s`, 'XNewDoc D', 'XAddShape D s'];
  const write = target === 'step' ? `WriteStep D ${tclPath(output)}` : `WriteIges D ${tclPath(output)}`;
  // A failing command makes DRAW's batch mode go on; `exit 3` on a missing output says it failed.
  return ['pload XDE OCAF MODELING', ...read, write, `if {![file exists ${tclPath(output)}]} { exit 3 }`, 'exit 0', ''].join('\n');
}
