import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pkg from '../../package.json' with { type: 'json' };

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
