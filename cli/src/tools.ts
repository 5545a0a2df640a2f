// Tools that scripts/setup.sh installs into the checkout when the machine has none fit for use
// (terraform, by scripts/ensure-terraform.sh, into .cadfleet/tools/bin). That folder goes first
// on PATH: setup fills it only when the machine's own tool was missing or too old.
import path from 'node:path';

export const projectToolsBin = (repoRoot: string): string => path.join(repoRoot, '.cadfleet', 'tools', 'bin');

/** `PATH` with the checkout's tools folder first (once, however often it is applied). */
export function withProjectTools(pathValue: string | undefined, repoRoot: string): string {
  const bin = projectToolsBin(repoRoot);
  return [bin, ...(pathValue ?? '').split(path.delimiter).filter((p) => p !== '' && p !== bin)].join(path.delimiter);
}
