import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pkg from '../../../package.json' with { type: 'json' };

/**
 * The release's VERSION file (`<release>/VERSION`, beside `app/` where the bundle runs from).
 * Reading it from the release itself means switching `current` is enough to change what a
 * node reports: no environment file to rewrite during a rolling upgrade.
 */
function releaseVersion(): string | undefined {
  try {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'VERSION');
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The release version every node reports in the registry and on /status. */
export const VERSION: string = process.env.CADFLEET_VERSION_OVERRIDE ?? releaseVersion() ?? pkg.version;

/**
 * What converted a model, for reuse by content: outputs are shared only between models that the
 * same converter made. The release's version, plus a digest of an operator's command template
 * when one replaces cadfleet-convert.
 */
export function converterVersion(command: string | undefined): string {
  return command ? `${VERSION}+cmd.${createHash('sha256').update(command).digest('hex').slice(0, 12)}` : VERSION;
}
