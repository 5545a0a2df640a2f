// One deploy, upgrade or rollback of an environment at a time. The local fleet's lock is a file
// in its state folder (./lock.ts); an AWS environment's is an object in its releases bucket,
// created only when absent (S3 conditional writes, If-None-Match: *), so two machines (a laptop
// and a GitHub runner) exclude each other, and the GitHub workflow's concurrency group does not
// have to be the only guard.
import fs from 'node:fs';
import os from 'node:os';
import { DeleteObjectCommand, GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { DEPLOY_LOCK_KEY } from '../../../stacks/contract';
import { acquireLock, LockHeldError, readLock, type LockRecord } from './lock';

export interface EnvLock {
  /** Where the lock lives, for messages. */
  where: string;
  /** Takes the lock (waiting up to waitMs for another holder) and returns its release. */
  acquire(action: string, options?: { version?: string; waitMs?: number; pollMs?: number }): Promise<() => Promise<void>>;
  read(): Promise<LockRecord | null>;
  /** Removes the lock whoever holds it (a run that died); returns who held it. */
  remove(): Promise<LockRecord | null>;
}

export function fileLock(file: string): EnvLock {
  return {
    where: file,
    async acquire(action, options) {
      const unlock = await acquireLock(file, action, options);
      return async () => unlock();
    },
    async read() {
      return readLock(file);
    },
    async remove() {
      const holder = readLock(file);
      fs.rmSync(file, { force: true });
      return holder;
    },
  };
}

export interface S3LockOptions {
  bucket: string;
  region?: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  key?: string;
  /** A client to use instead of one per call (tests watch its requests); not destroyed here. */
  client?: S3Client;
}

const status = (err: unknown): number | undefined => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

export function s3Lock(o: S3LockOptions): EnvLock {
  const config: S3ClientConfig = { region: o.region ?? 'us-east-1', maxAttempts: 4 };
  if (o.endpoint) Object.assign(config, { endpoint: o.endpoint, forcePathStyle: true });
  if (o.credentials) config.credentials = o.credentials;
  const key = o.key ?? DEPLOY_LOCK_KEY;
  const where = `s3://${o.bucket}/${key}`;
  const own = !o.client;
  const client = (): S3Client => o.client ?? new S3Client(config);
  const done = (s3: S3Client): void => {
    if (own) s3.destroy();
  };

  const read = async (s3: S3Client): Promise<LockRecord | null> => {
    try {
      const got = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }));
      return JSON.parse((await got.Body?.transformToString()) ?? 'null') as LockRecord | null;
    } catch (err) {
      if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey' || status(err) === 404) return null;
      throw new Error(`cannot read the deploy lock ${where}: ${(err as Error).message}`);
    }
  };

  return {
    where,
    async acquire(action, options = {}) {
      const record: LockRecord = { who: os.userInfo().username, host: os.hostname(), pid: process.pid, action, ...(options.version ? { version: options.version } : {}), since: new Date().toISOString() };
      const body = JSON.stringify(record);
      const deadline = Date.now() + (options.waitMs ?? 0);
      const s3 = client();
      try {
        for (;;) {
          try {
            await s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: key, Body: body, ContentType: 'application/json', IfNoneMatch: '*' }));
            break;
          } catch (err) {
            // 412: the object exists (someone holds the lock); 409: a concurrent conditional write won.
            if (status(err) !== 412 && status(err) !== 409) throw new Error(`cannot take the deploy lock ${where}: ${(err as Error).message}`);
          }
          const holder = await read(s3);
          if (holder && Date.now() >= deadline) throw new LockHeldError(holder);
          await new Promise((r) => setTimeout(r, options.pollMs ?? 5000));
        }
      } finally {
        done(s3);
      }
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        const s3b = client();
        try {
          // Only our own record: a lock removed by `lock release` and taken by another run stays theirs.
          const now = await read(s3b);
          if (now?.since === record.since && now.host === record.host && now.pid === record.pid) await s3b.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: key }));
        } finally {
          done(s3b);
        }
      };
    },
    async read() {
      const s3 = client();
      try {
        return await read(s3);
      } finally {
        done(s3);
      }
    },
    async remove() {
      const s3 = client();
      try {
        const holder = await read(s3);
        await s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: key }));
        return holder;
      } finally {
        done(s3);
      }
    },
  };
}
