// The deploy lock of an AWS environment, an object in its releases bucket, against a real
// S3-compatible server (s3rver). What s3rver cannot show: it ignores If-None-Match on PUT, so
// that a second taker is refused is AWS S3's conditional write (August 2024), checked here only
// as far as the request carrying `If-None-Match: *`.
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Lock } from '../../../cli/src/upgrade/env-lock';
import { startS3, type S3Instance } from '../../../scripts/local-services';
import { DEPLOY_LOCK_KEY } from '../../../stacks/contract';
import { tempDir } from '../../helpers/convert';

let s3: S3Instance;
let client: S3Client;
const puts: Array<{ key: string; ifNoneMatch: string | undefined }> = [];

beforeAll(async () => {
  s3 = await startS3({ dir: path.join(tempDir('cadfleet-lock-'), 's3'), buckets: ['cadfleet-releases'] });
  client = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { method?: string; path?: string; headers?: Record<string, string> };
      if (req.method === 'PUT') puts.push({ key: decodeURIComponent(req.path ?? '').replace(/^\/cadfleet-releases\//, ''), ifNoneMatch: req.headers?.['if-none-match'] });
      return next(args);
    },
    { step: 'finalizeRequest', name: 'watchPuts' },
  );
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await s3?.stop();
});

describe('the deploy lock in the releases bucket', () => {
  it('is created only if absent, says who holds it, and its holder removes it', async () => {
    const lock = s3Lock({ bucket: 'cadfleet-releases', client });
    expect(lock.where).toBe(`s3://cadfleet-releases/${DEPLOY_LOCK_KEY}`);
    expect(await lock.read()).toBeNull();
    const unlock = await lock.acquire('upgrade', { version: '1.2.0' });
    expect(puts.at(-1)).toEqual({ key: DEPLOY_LOCK_KEY, ifNoneMatch: '*' });
    expect(await lock.read()).toMatchObject({ action: 'upgrade', version: '1.2.0', pid: process.pid });
    await unlock();
    expect(await lock.read()).toBeNull();
  });

  it('leaves a lock that is no longer its own (released by hand and taken by another run)', async () => {
    const lock = s3Lock({ bucket: 'cadfleet-releases', client });
    const unlock = await lock.acquire('upgrade');
    expect((await lock.remove())?.action).toBe('upgrade');
    const other = { who: 'runner', host: 'gh-runner', pid: 4242, action: 'rollback', since: new Date().toISOString() };
    await client.send(new PutObjectCommand({ Bucket: 'cadfleet-releases', Key: DEPLOY_LOCK_KEY, Body: JSON.stringify(other) }));
    await unlock();
    expect(await lock.read()).toEqual(other);
    expect(await lock.remove()).toEqual(other);
    expect(await lock.read()).toBeNull();
  });

  it('says where it could not be taken, for a bucket that does not exist', async () => {
    const lock = s3Lock({ bucket: 'no-such-bucket', client });
    await expect(lock.acquire('upgrade')).rejects.toThrow(/cannot take the deploy lock s3:\/\/no-such-bucket\/releases\/\.deploy-lock\.json/);
  });
});
