// The releases bucket as the CLI writes it and hosts read it, against a real S3-compatible
// server (s3rver): bundles, SHA256SUMS that `sha256sum -c` accepts, and the pointer.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseStore, type ReleaseStore } from '../../../cli/src/release/store';
import { startS3, type S3Instance } from '../../../scripts/local-services';
import { RELEASE_POINTER_KEY, releaseBundleKey, releaseSumsKey } from '../../../stacks/contract';
import { tempDir } from '../../helpers/convert';

let s3: S3Instance;
let store: ReleaseStore;
const dir = tempDir('cadfleet-store-');
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

function fakeRelease(version: string, content: string) {
  const tarball = path.join(dir, `cadfleet-${version}-linux-x64.tar.gz`);
  fs.writeFileSync(tarball, content);
  const sha256 = createHash('sha256').update(content).digest('hex');
  const sums = `${tarball}.SHA256SUMS`;
  fs.writeFileSync(sums, `${sha256}  ${path.basename(tarball)}\n`);
  return { version, tarball, sums, sha256 };
}

beforeAll(async () => {
  s3 = await startS3({ dir: path.join(dir, 's3'), buckets: ['cadfleet-releases'] });
  store = releaseStore({ bucket: 'cadfleet-releases', endpoint: s3.endpoint, credentials });
}, 60_000);

afterAll(async () => {
  store?.close();
  await s3?.stop();
});

describe('the releases bucket', () => {
  it('has no pointer before the first publish, and refuses to point at a release it does not hold', async () => {
    expect(await store.readPointer()).toBeNull();
    await expect(store.writePointer('9.9.9')).rejects.toThrow(/release 9\.9\.9 is not in s3:\/\/cadfleet-releases .*publish it before pointing hosts at it/);
    expect(await store.readPointer()).toBeNull();
  });

  it('publishes a bundle once, with sums that sha256sum checks under the bundle\'s own name, then points at it', async () => {
    const release = fakeRelease('1.0.0-abc', 'bundle one');
    expect(await store.publish(release)).toBe('uploaded');
    expect(await store.publish(release)).toBe('present');
    await store.writePointer(release.version);
    expect(await store.readPointer()).toBe('1.0.0-abc');

    // What a booting host downloads, checked as the boot script checks it.
    const client = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials });
    const get = async (key: string): Promise<Buffer> => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: 'cadfleet-releases', Key: key }))).Body!.transformToByteArray());
    const host = tempDir('cadfleet-host-');
    fs.writeFileSync(path.join(host, path.basename(releaseBundleKey('1.0.0-abc'))), await get(releaseBundleKey('1.0.0-abc')));
    fs.writeFileSync(path.join(host, 'SHA256SUMS'), await get(releaseSumsKey('1.0.0-abc')));
    expect(execFileSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: host, encoding: 'utf8' })).toContain(': OK');
    expect((await get(RELEASE_POINTER_KEY)).toString()).toBe('1.0.0-abc\n');
    client.destroy();
  });

  it('uploads a version again when the bucket holds other bytes under its name', async () => {
    expect(await store.publish(fakeRelease('1.0.0-abc', 'bundle one, rebuilt differently'))).toBe('uploaded');
  });

  it('says which bucket and server it could not reach', async () => {
    const nowhere = releaseStore({ bucket: 'cadfleet-releases', endpoint: 'http://127.0.0.1:9', credentials });
    try {
      await expect(nowhere.readPointer()).rejects.toThrow(/cannot read releases\/current in s3:\/\/cadfleet-releases on http:\/\/127\.0\.0\.1:9/);
    } finally {
      nowhere.close();
    }
  });
});
