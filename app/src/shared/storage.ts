// Files in S3 through the AWS SDK v3 only. Locally the endpoint is an S3-compatible server
// (s3rver); the code path is the one production uses.
import { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Config } from './config';

/** Output files a conversion stores, per the converter contract. */
export const MODEL_FILES = ['model.glb', 'manifest.json', 'result.json'] as const;
export type ModelFile = (typeof MODEL_FILES)[number];

export const CONTENT_TYPES: Record<ModelFile, string> = {
  'model.glb': 'model/gltf-binary',
  'manifest.json': 'application/json',
  'result.json': 'application/json',
};

/** Object key layout. Names chosen by users never become keys. */
export const objectKeys = {
  input: (project: string, id: string, format: string) => `uploads/${project}/${id}/input.${format}`,
  outputPrefix: (project: string, id: string) => `models/${project}/${id}/`,
  output: (prefix: string, file: ModelFile) => `${prefix}${file}`,
};

export interface StoredObject {
  body: Readable;
  contentLength?: number;
  contentType?: string;
  etag?: string;
}

export interface Storage {
  readonly uploadsBucket: string;
  readonly modelsBucket: string;
  /** Streams `body` to S3 (multipart above 5 MiB); resolves with the bytes written. */
  putStream(bucket: string, key: string, body: Readable, contentType?: string): Promise<void>;
  putFile(bucket: string, key: string, body: Buffer | Uint8Array, contentType?: string): Promise<void>;
  get(bucket: string, key: string): Promise<StoredObject | undefined>;
  /** Bytes [start, end) of an object (an archive's central directory, read without the rest). */
  getRange(bucket: string, key: string, start: number, end: number): Promise<Readable>;
  head(bucket: string, key: string): Promise<{ size: number } | undefined>;
  deletePrefix(bucket: string, prefix: string): Promise<number>;
  deleteKeys(bucket: string, keys: string[]): Promise<void>;
  presignPut(bucket: string, key: string, size: number, expiresIn: number): Promise<string>;
  /** A GET link for one object, saved as `downloadName`. */
  presignGet(bucket: string, key: string, expiresIn: number, downloadName: string): Promise<string>;
  ping(): Promise<void>;
  close(): void;
}

const isNotFound = (err: unknown): boolean => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
};

function clientConfig(config: Config['s3'], endpoint: string | undefined): S3ClientConfig {
  return {
    region: config.region,
    endpoint,
    forcePathStyle: config.forcePathStyle,
    // Checksums only where S3 requires them: a presigned PUT signed with a default CRC32 of an
    // empty body is rejected by S3 when the client uploads the real file.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  };
}

export function createStorage(config: Config['s3']): Storage {
  const client = new S3Client(clientConfig(config, config.endpoint));
  const presigner = config.publicEndpoint ? new S3Client(clientConfig(config, config.publicEndpoint)) : client;
  return {
    uploadsBucket: config.uploadsBucket,
    modelsBucket: config.modelsBucket,
    async putStream(bucket, key, body, contentType) {
      const upload = new Upload({ client, params: { Bucket: bucket, Key: key, Body: body, ContentType: contentType }, queueSize: 2, leavePartsOnError: false });
      await upload.done();
    },
    async putFile(bucket, key, body, contentType) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
    },
    async get(bucket, key) {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return { body: out.Body as Readable, contentLength: out.ContentLength, contentType: out.ContentType, etag: out.ETag };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async getRange(bucket, key, start, end) {
      if (end <= start) return Readable.from([]);
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end - 1}` }));
      return out.Body as Readable;
    },
    async head(bucket, key) {
      try {
        const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return { size: out.ContentLength ?? 0 };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async deletePrefix(bucket, prefix) {
      let deleted = 0;
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : []));
        if (keys.length) await this.deleteKeys(bucket, keys);
        deleted += keys.length;
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return deleted;
    },
    async deleteKeys(bucket, keys) {
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
      }
    },
    presignPut(bucket, key, size, expiresIn) {
      return getSignedUrl(presigner, new PutObjectCommand({ Bucket: bucket, Key: key, ContentLength: size }), { expiresIn });
    },
    presignGet(bucket, key, expiresIn, downloadName) {
      const disposition = `attachment; filename="${downloadName.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(downloadName)}`;
      return getSignedUrl(presigner, new GetObjectCommand({ Bucket: bucket, Key: key, ResponseContentDisposition: disposition }), { expiresIn });
    },
    async ping() {
      await client.send(new HeadBucketCommand({ Bucket: config.uploadsBucket }));
      if (config.modelsBucket !== config.uploadsBucket) await client.send(new HeadBucketCommand({ Bucket: config.modelsBucket }));
    },
    close() {
      client.destroy();
      if (presigner !== client) presigner.destroy();
    },
  };
}
