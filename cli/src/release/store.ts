import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, NoSuchKey, NotFound, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { RELEASE_POINTER_KEY, releaseBundleKey, releaseSumsKey } from '../../../stacks/contract';
import type { Release } from './bundle';

/**
 * The releases bucket as hosts read it (DESIGN "Release bundle"): each bundle and its
 * SHA256SUMS under `releases/`, and `releases/current` naming the version that a new host
 * installs at boot (the stacks' user-data). On AWS it is the environment's releases bucket;
 * on the local fleet, the same bucket on the data host's S3 server.
 */
export interface ReleaseStoreOptions {
  bucket: string;
  region?: string;
  /** An S3-compatible server (the local fleet's); path-style addressing. @default AWS S3 */
  endpoint?: string;
  /** Static credentials (the local S3 server's); by default the SDK's chain (OIDC role, profile). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** A CA bundle to trust for the endpoint (the local fleet's CA). */
  caFile?: string;
}

export interface ReleaseStore {
  /** Uploads the bundle and its SHA256SUMS unless the bucket already holds this version's bundle with the same sum. */
  publish(release: Pick<Release, 'version' | 'tarball' | 'sums' | 'sha256'>): Promise<'uploaded' | 'present'>;
  /** The version `releases/current` names, or null when there is none yet. */
  readPointer(): Promise<string | null>;
  /** Points new hosts at a published version (refuses one whose bundle is not in the bucket). */
  writePointer(version: string): Promise<void>;
  close(): void;
}

export function releaseStore(o: ReleaseStoreOptions): ReleaseStore {
  const config: S3ClientConfig = { region: o.region ?? 'us-east-1', maxAttempts: 4 };
  if (o.endpoint) Object.assign(config, { endpoint: o.endpoint, forcePathStyle: true });
  if (o.credentials) config.credentials = o.credentials;
  if (o.caFile) config.requestHandler = { httpsAgent: new https.Agent({ ca: fs.readFileSync(o.caFile), keepAlive: true }) };
  const s3 = new S3Client(config);
  const where = `s3://${o.bucket}${o.endpoint ? ` on ${o.endpoint}` : ''}`;

  const bundleSum = async (version: string): Promise<string | null> => {
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: o.bucket, Key: releaseBundleKey(version) }));
      return head.Metadata?.sha256 ?? '';
    } catch (err) {
      if (err instanceof NotFound || (err as { name?: string }).name === 'NotFound' || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
      throw new Error(`cannot read ${releaseBundleKey(version)} in ${where}: ${(err as Error).message}`);
    }
  };

  return {
    async publish(release) {
      if ((await bundleSum(release.version)) === release.sha256) return 'present';
      try {
        await s3.send(
          new PutObjectCommand({
            Bucket: o.bucket,
            Key: releaseBundleKey(release.version),
            Body: fs.readFileSync(release.tarball),
            ContentType: 'application/gzip',
            Metadata: { sha256: release.sha256 },
          }),
        );
        // The boot script checks the bundle against this file with `sha256sum -c`, under the bundle's own name.
        const sums = `${release.sha256}  ${path.basename(releaseBundleKey(release.version))}\n`;
        await s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: releaseSumsKey(release.version), Body: sums, ContentType: 'text/plain' }));
      } catch (err) {
        throw new Error(`cannot upload release ${release.version} to ${where}: ${(err as Error).message}`);
      }
      return 'uploaded';
    },
    async readPointer() {
      try {
        const got = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: RELEASE_POINTER_KEY }));
        const text = (await got.Body?.transformToString())?.trim();
        return text || null;
      } catch (err) {
        if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return null;
        throw new Error(`cannot read ${RELEASE_POINTER_KEY} in ${where}: ${(err as Error).message}`);
      }
    },
    async writePointer(version) {
      if ((await bundleSum(version)) === null) {
        throw new Error(`release ${version} is not in ${where} (no ${releaseBundleKey(version)}): publish it before pointing hosts at it`);
      }
      try {
        await s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: RELEASE_POINTER_KEY, Body: `${version}\n`, ContentType: 'text/plain' }));
      } catch (err) {
        throw new Error(`cannot write ${RELEASE_POINTER_KEY} in ${where}: ${(err as Error).message}`);
      }
    },
    close() {
      s3.destroy();
    },
  };
}
