// The converter licence: read once by the worker (from SSM on AWS), handed to converter
// processes in their environment only. The SSM read itself needs AWS; what is ours is tested
// here: the hand-over to a real converter process, and the errors that say what to do.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../app/src/shared/config';
import { createConverter, type ManagedConverter } from '../../app/src/converter/index';
import { LICENSE_ENV, converterEnvironment, type LicenseSource } from '../../app/src/worker/converter-license';
import { BIN, tempDir } from '../helpers/convert';
import { stlSample } from '../helpers/samples';

let converter: ManagedConverter | undefined;
afterEach(async () => {
  await converter?.close();
  converter = undefined;
});

const source = (read: () => Promise<string>): LicenseSource => ({ parameter: '/cadfleet/test/converter-license', read });

/** An operator's converter that runs only with its licence, and records the command line it got. */
function licensedConverter(dir: string): string {
  const script = path.join(dir, 'licensed-converter.sh');
  fs.writeFileSync(
    script,
    `#!/bin/sh\necho "$*" > "${dir}/argv"\n[ "$${LICENSE_ENV}" = "LIC-2026-abc" ] || { echo "licence missing or wrong" >&2; exit 3; }\nexec "${process.execPath}" "${BIN}" "$@"\n`,
    { mode: 0o755 },
  );
  return script;
}

describe('the converter licence', () => {
  it('reaches the converter process through its environment, not its command line', async () => {
    const dir = tempDir();
    const template = `${licensedConverter(dir)} --input {input} --output-dir {outputDir}`;
    converter = createConverter({ commandTemplate: template, env: await converterEnvironment(source(async () => 'LIC-2026-abc')), onOutput: () => undefined });
    const result = await converter.convert({ input: stlSample('box_2x3x4.stl'), outputDir: path.join(dir, 'out') });
    expect(result.ok, result.error).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'argv'), 'utf8')).not.toContain('LIC-2026');
    await converter.close();

    // Without it the same converter refuses: the environment is what carried it.
    converter = createConverter({ commandTemplate: template, env: await converterEnvironment(undefined), onOutput: () => undefined });
    const refused = await converter.convert({ input: stlSample('box_2x3x4.stl'), outputDir: path.join(dir, 'out2') });
    expect(refused.ok).toBe(false);
  });

  it('stops the worker at start with what to do when the parameter is missing, unreadable or empty', async () => {
    const failing = (name: string) =>
      source(async () => {
        throw Object.assign(new Error(`${name} happened`), { name });
      });
    await expect(converterEnvironment(failing('ParameterNotFound'))).rejects.toThrow(
      /\/cadfleet\/test\/converter-license does not exist: create it \(aws ssm put-parameter --type SecureString/,
    );
    await expect(converterEnvironment(failing('AccessDeniedException'))).rejects.toThrow(/only the worker role may/);
    await expect(converterEnvironment(failing('ThrottlingException'))).rejects.toThrow(/cannot read the converter licence parameter .*ThrottlingException happened/);
    await expect(converterEnvironment(source(async () => '  \n'))).rejects.toThrow(/is empty/);
  });

  it('takes the parameter from the environment file the stack writes, where empty means none', () => {
    const base = { CADFLEET_ROLE: 'worker', CADFLEET_DATABASE_URL: 'postgres://u:p@db/cadfleet', CADFLEET_REDIS_URL: 'redis://r:6379', CADFLEET_S3_UPLOADS_BUCKET: 'cadfleet-uploads', CADFLEET_S3_MODELS_BUCKET: 'cadfleet-models' };
    expect(loadConfig({ ...base, CADFLEET_CONVERTER_LICENSE_PARAMETER: '/cadfleet/prod/converter-license' }).worker.licenseParameter).toBe('/cadfleet/prod/converter-license');
    expect(loadConfig({ ...base, CADFLEET_CONVERTER_LICENSE_PARAMETER: '' }).worker.licenseParameter).toBeUndefined();
    expect(() => loadConfig({ ...base, CADFLEET_CONVERTER_LICENSE_PARAMETER: 'converter-license' })).toThrow(/CADFLEET_CONVERTER_LICENSE_PARAMETER must be an SSM parameter name starting with "\/"/);
  });
});
