// The lint rule that keeps the service's processes apart (eslint.config.js, processBoundaries):
// it must refuse an import across folders of app/src, and let through what goes by shared/.
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: path.join(__dirname, '../..') });

async function restricted(file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path.join(__dirname, '../..', file) });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe("app/src's process boundaries", () => {
  it('refuses an import from another process, from shared/ into a process, and from the converter into shared/', async () => {
    expect((await restricted('app/src/api/routes/x.ts', "import { runWorker } from '../../worker/process';\nexport const x = runWorker;\n"))[0]).toContain(
      'app/src/api must not import from app/src/worker',
    );
    expect(await restricted('app/src/worker/x.ts', "export { createSessionStore } from '../streamer/streamer';\n")).toHaveLength(1);
    expect(await restricted('app/src/shared/webhooks/x.ts', "import { buildApp } from '../../api/app';\nexport const x = buildApp;\n")).toHaveLength(1);
    expect(await restricted('app/src/converter/x.ts', "import { loadConfig } from '../shared/config';\nexport const x = loadConfig;\n")).toHaveLength(1);
  });

  it('lets through what goes by shared/ or the converter library, and anything main.ts picks', async () => {
    expect(await restricted('app/src/api/routes/x.ts', "import { loadConfig } from '../../shared/config';\nimport { TARGETS } from '../../converter/export/index';\nexport const x = [loadConfig, TARGETS];\n")).toEqual([]);
    expect(await restricted('app/src/streamer/x.ts', "import { hostPort } from '../shared/registry';\nexport const x = hostPort;\n")).toEqual([]);
    expect(await restricted('app/src/main.ts', "import { runWorker } from './worker/process';\nimport { runApi } from './api/process';\nexport const x = [runWorker, runApi];\n")).toEqual([]);
  });
});
