import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's ansible/ folder, found upward from the CLI (its source, or its bundle in dist/). */
export function ansibleDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'ansible', 'playbooks', 'site.yml'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find ansible/playbooks/site.yml above the CLI');
    dir = parent;
  }
  return path.join(dir, 'ansible');
}
