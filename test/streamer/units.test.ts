// The streamer's pure parts and its cache, without processes: tokens, the choice of streamer,
// stream URLs and paths, the pack (order, chunks, geometry), the disk cache's cap, the config.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Document, NodeIO } from '@gltf-transform/core';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadStreamerConfig } from '../../app/src/shared/config';
import { draftParts, finishManifest } from '../../app/src/converter/manifest';
import type { NodeRecord } from '../../app/src/shared/registry';
import { createModelStore } from '../../app/src/streamer/model-cache';
import { buildPack, frameBudget, spatialOrder, streamingOrder } from '../../app/src/streamer/pack';
import { pickStreamer, streamUrl } from '../../app/src/api/stream-pick';
import { parseStreamPath } from '../../app/src/streamer/streamer';
import { signStreamToken, verifyStreamToken } from '../../app/src/shared/stream-token';
import { decodeGeometry, decoderReady } from './client';

const SECRET = 'unit-test-secret-unit-test-secret-0123';

describe('stream tokens', () => {
  const claims = { sid: 's1', mid: 'm1', prj: 'p', nod: 'n1', exp: 2_000 };
  const token = signStreamToken(SECRET, claims);

  it('accepts its own token for the session and node it names, until it expires', () => {
    expect(verifyStreamToken(SECRET, token, { sessionId: 's1', node: 'n1' }, 1_999)).toEqual({ ok: true, claims });
    expect(verifyStreamToken(SECRET, token, { sessionId: 's1', node: 'n1' }, 2_000)).toMatchObject({ ok: false, code: 'token_expired' });
  });

  it('refuses other sessions, other nodes, other secrets, edits and junk', () => {
    const at = { sessionId: 's1', node: 'n1' };
    expect(verifyStreamToken(SECRET, token, { sessionId: 's2', node: 'n1' }, 0)).toMatchObject({ code: 'token_mismatch' });
    expect(verifyStreamToken(SECRET, token, { sessionId: 's1', node: 'n2' }, 0)).toMatchObject({ code: 'token_mismatch' });
    expect(verifyStreamToken(`${SECRET}x`, token, at, 0)).toMatchObject({ code: 'token_invalid' });
    const [v, , sig] = token.split('.');
    const edited = `${v}.${Buffer.from(JSON.stringify({ ...claims, exp: 9e15 })).toString('base64url')}.${sig}`;
    expect(verifyStreamToken(SECRET, edited, at, 0)).toMatchObject({ code: 'token_invalid' });
    for (const junk of ['', 'v1', 'v2.a.b', 'v1.a.b.c', `${token}x`]) expect(verifyStreamToken(SECRET, junk, at, 0).ok).toBe(false);
    expect(verifyStreamToken(SECRET, undefined, at, 0)).toMatchObject({ code: 'token_missing' });
  });

  it('accepts a token signed with the key before a rotation while that key is still listed, and not after', () => {
    const at = { sessionId: 's1', node: 'n1' };
    const rotated = 'rotated-secret-rotated-secret-0123456789';
    // The streamer after a rotation: the new key current, the old one previous.
    expect(verifyStreamToken([rotated, SECRET], token, at, 0)).toEqual({ ok: true, claims });
    expect(verifyStreamToken([rotated, SECRET], signStreamToken(rotated, claims), at, 0)).toEqual({ ok: true, claims });
    // The old key retired: its tokens no longer open a stream.
    expect(verifyStreamToken([rotated], token, at, 0)).toMatchObject({ code: 'token_invalid' });
    expect(verifyStreamToken([], token, at, 0)).toMatchObject({ code: 'token_invalid' });
  });
});

describe('choosing a streamer', () => {
  const node = (id: string, extra: Record<string, string>, state: 'active' | 'draining' = 'active', role = 'streamer'): NodeRecord => ({
    id,
    role,
    version: '1',
    host: 'h',
    pid: 1,
    address: `http://10.0.0.${id.length}:8090`,
    state,
    startedAt: 0,
    heartbeatAt: 0,
    extra,
  });

  it('takes the least-loaded active streamer below its limit', () => {
    const nodes = [
      node('api-1', {}, 'active', 'api'),
      node('s-busy', { sessions: '40', maxSessions: '50', load: '0.8' }),
      node('s-draining', { sessions: '0', maxSessions: '50', load: '0' }, 'draining'),
      node('s-full', { sessions: '10', maxSessions: '10', load: '1' }),
      node('s-light', { sessions: '5', maxSessions: '50', load: '0.1' }),
    ];
    expect(pickStreamer(nodes)?.id).toBe('s-light');
    expect(pickStreamer(nodes.filter((n) => n.id !== 's-light' && n.id !== 's-busy'))).toBeUndefined();
  });

  it('picks only streamers the LB routes to, at the address it routes to, when the LB says', () => {
    const nodes = [node('s-new', { sessions: '0', maxSessions: '9', load: '0' }), node('s-old', { sessions: '5', maxSessions: '9', load: '0.5' })];
    // s-new joined a moment ago: the LB has not reloaded with it yet.
    expect(pickStreamer(nodes, Math.random, new Map([['s-old', '10.0.0.5:8090']]))?.id).toBe('s-old');
    // s-new restarted at another address than the one the LB still routes.
    expect(pickStreamer(nodes, Math.random, new Map([['s-new', '10.0.0.99:8090']]))).toBeUndefined();
    expect(pickStreamer(nodes, Math.random, new Map([['s-new', '10.0.0.5:8090'], ['s-old', '10.0.0.5:8090']]))?.id).toBe('s-new');
    // No word from an LB: every live streamer may be picked.
    expect(pickStreamer(nodes, Math.random, undefined)?.id).toBe('s-new');
  });

  it('sends a resume to another streamer than the one the client lost, when another can take it', () => {
    // s-dead stopped beating a moment ago: until its TTL runs out it looks the least loaded.
    const nodes = [node('s-dead', { sessions: '1', maxSessions: '9', load: '0.1' }), node('s-live', { sessions: '6', maxSessions: '9', load: '0.7' })];
    expect(pickStreamer(nodes)?.id).toBe('s-dead');
    expect(pickStreamer(nodes, Math.random, undefined, 's-dead')?.id).toBe('s-live');
    // Alone (or the others full), the same node serves the resume.
    expect(pickStreamer(nodes.slice(0, 1), Math.random, undefined, 's-dead')?.id).toBe('s-dead');
    expect(pickStreamer([nodes[0]!, node('s-full', { sessions: '9', maxSessions: '9', load: '1' })], Math.random, undefined, 's-dead')?.id).toBe('s-dead');
  });

  it('spreads ties', () => {
    const nodes = [node('a', { sessions: '0', maxSessions: '9', load: '0' }), node('b', { sessions: '0', maxSessions: '9', load: '0' })];
    expect(pickStreamer(nodes, () => 0)?.id).toBe('a');
    expect(pickStreamer(nodes, () => 0.99)?.id).toBe('b');
  });

  it('names the node in the stream URL, as an LB path or the node address', () => {
    const n = node('cf-streamer-1', {});
    expect(streamUrl(n, 'sid', 'v1.a+b', 'path')).toBe('/stream/cf-streamer-1/sid?token=v1.a%2Bb');
    expect(streamUrl({ ...n, address: 'http://10.0.0.5:8090' }, 'sid', 't', 'direct')).toBe('ws://10.0.0.5:8090/stream/cf-streamer-1/sid?token=t');
    expect(streamUrl({ ...n, address: 'https://s.example:443' }, 'sid', 't', 'direct')).toBe('wss://s.example/stream/cf-streamer-1/sid?token=t');
    expect(parseStreamPath('/stream/cf-streamer-1/sid?token=v1.a%2Bb')).toEqual({ node: 'cf-streamer-1', sessionId: 'sid', token: 'v1.a+b' });
    for (const other of ['/stream/x', '/stream/x/y/z', '/status', '/streamx/a/b']) expect(parseStreamPath(other)).toBeUndefined();
  });
});

/** A model of boxes of different sizes, as a converter would leave it (scene tree, manifest). */
async function boxesModel(sizes: number[], trianglesPerBox = 12): Promise<{ glb: Uint8Array; manifest: ReturnType<typeof finishManifest> }> {
  const doc = new Document();
  const buffer = doc.createBuffer();
  const scene = doc.createScene();
  const root = doc.createNode('assembly');
  scene.addChild(root);
  sizes.forEach((size, i) => {
    // A strip of quads: `trianglesPerBox` triangles spread along x.
    const quads = trianglesPerBox / 2;
    const positions: number[] = [];
    const indices: number[] = [];
    for (let q = 0; q < quads; q++) {
      const x = (q / quads) * size;
      const w = size / quads;
      const base = positions.length / 3;
      positions.push(x, 0, 0, x + w, 0, 0, x + w, size, 0, x, size, 0);
      indices.push(base, base + 1, base + 2, base, base + 2, base + 3);
    }
    const prim = doc
      .createPrimitive()
      .setAttribute('POSITION', doc.createAccessor().setType('VEC3').setArray(new Float32Array(positions)).setBuffer(buffer))
      .setIndices(doc.createAccessor().setType('SCALAR').setArray(new Uint32Array(indices)).setBuffer(buffer))
      .setMaterial(doc.createMaterial().setBaseColorFactor([i / sizes.length, 0.5, 0.2, 1]));
    root.addChild(doc.createNode(`box ${i}`).setMesh(doc.createMesh().addPrimitive(prim)).setTranslation([i * 10, 0, 0]));
  });
  const draft = draftParts(doc);
  const manifest = finishManifest(doc, draft, { source: { name: 'boxes.glb', format: 'glb', bytes: 0 }, quality: 'normal', units: 'millimeter' });
  return { glb: await new NodeIO().writeBinary(doc), manifest };
}

describe('stream packs', () => {
  beforeAll(() => decoderReady);

  it('orders parts largest first and splits big ones into frames of at most the budget', async () => {
    const { glb, manifest } = await boxesModel([1, 5, 3], 40);
    const pack = await buildPack(glb, manifest, { chunkTriangles: 16 });
    const names = new Map(manifest.parts.map((p) => [p.id, p.name]));
    expect(pack.index.order.map((id) => names.get(id))).toEqual(['box 1', 'box 2', 'box 0']);
    expect(streamingOrder(manifest).map((p) => p.id)).toEqual(pack.index.order);
    // 40 triangles at 16 per frame: 3 frames per box.
    expect(Object.values(pack.index.chunks)).toEqual([3, 3, 3]);
    let triangles = 0;
    for (const f of pack.index.frames) {
      const { header, triangles: t } = decodeGeometry(pack.data.subarray(f.offset, f.offset + f.length));
      expect(t).toBeLessThanOrEqual(16);
      expect(header.part).toBe(f.part);
      triangles += t;
    }
    expect(triangles).toBe(manifest.triangles);
    // Each part's placement travels with its frames.
    const first = decodeGeometry(pack.data.subarray(0, pack.index.frames[0]!.length)).header;
    expect(first.matrix.slice(12, 15)).toEqual([10, 0, 0]);
  });

  it('starts with small frames so a big part shows early, then grows them to the cap', async () => {
    expect([0, 1, 2, 3, 4, 20].map((i) => frameBudget(8192, i))).toEqual([1024, 2048, 4096, 8192, 8192, 8192]);
    expect([0, 1, 5].map((i) => frameBudget(100, i))).toEqual([100, 100, 100]);
    const { glb, manifest } = await boxesModel([1], 4000);
    const pack = await buildPack(glb, manifest, { chunkTriangles: 2048 });
    expect(pack.index.frames.map((f) => f.triangles)).toEqual([256, 512, 1024, 2048, 160]);
  });

  it('reorders triangles spatially without losing any', () => {
    // Three triangles whose vertices sit at 9, 0 and 5 on every axis: sorted by place, 0, 5, 9.
    const indices = Uint32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const at = (v: number): number[] => [v, v, v];
    const array = Float32Array.from([...at(9), ...at(9), ...at(9), ...at(0), ...at(0), ...at(0), ...at(5), ...at(5), ...at(5)]);
    const sorted = spatialOrder(indices, { array, itemSize: 3, type: 'f32', normalized: false });
    expect([...sorted]).toEqual([3, 4, 5, 6, 7, 8, 0, 1, 2]);
  });
});

describe('the model cache', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-cache-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('serves memory, then disk, then S3, and keeps the disk under its cap', async () => {
    const small = await boxesModel([1, 2], 2000);
    const objects = new Map<string, Buffer>();
    for (const prefix of ['models/p/a/', 'models/p/b/']) {
      objects.set(`${prefix}model.glb`, Buffer.from(small.glb));
      objects.set(`${prefix}manifest.json`, Buffer.from(JSON.stringify(small.manifest)));
    }
    const gets: string[] = [];
    const storage = {
      modelsBucket: 'models',
      async get(_bucket: string, key: string) {
        gets.push(key);
        const body = objects.get(key);
        return body ? { body: Readable.from([body]) } : undefined;
      },
    };
    const log = pino({ level: 'silent' });
    const options = { storage, dir, maxMemoryBytes: 0, chunkTriangles: 500, log };
    const packBytes = (await buildPack(small.glb, small.manifest, { chunkTriangles: 500 })).data.length;
    // Room for one model on disk, not two.
    const store = createModelStore({ ...options, maxDiskBytes: packBytes * 1.5 });

    const a1 = await store.open('models/p/a/');
    expect(a1.source).toBe('s3');
    const a2 = await store.open('models/p/a/');
    expect(a2.source).toBe('memory');
    expect(a2.pack).toBe(a1.pack);
    a1.release();
    a2.release();
    expect(store.stats().packs).toBe(0); // no idle memory allowed

    const again = createModelStore({ ...options, maxDiskBytes: packBytes * 1.5 });
    const a3 = await again.open('models/p/a/');
    expect(a3.source).toBe('disk');
    a3.release();
    const b = await again.open('models/p/b/');
    expect(b.source).toBe('s3');
    b.release();
    // b's arrival pushed a out of the disk cache.
    expect(fs.readdirSync(dir)).toHaveLength(1);
    expect((await again.open('models/p/a/')).source).toBe('s3');
    expect(gets.filter((k) => k.endsWith('model.glb'))).toEqual(['models/p/a/model.glb', 'models/p/b/model.glb', 'models/p/a/model.glb']);

    await expect(again.open('models/p/missing/')).rejects.toThrow(/missing from storage/);
  });
});

describe('streamer configuration', () => {
  const BASE = {
    CADFLEET_REDIS_URL: 'redis://127.0.0.1:6379',
    CADFLEET_S3_MODELS_BUCKET: 'cadfleet-models',
    CADFLEET_STREAM_TOKEN_SECRET: SECRET,
  };

  it('needs no database, listens on 8090 and reads every timeout', () => {
    const c = loadStreamerConfig({ ...BASE, CADFLEET_DRAIN_TIMEOUT_MS: '1500', CADFLEET_STREAM_MAX_SESSIONS: '7' });
    expect(c.http.port).toBe(8090);
    expect(c.stream).toMatchObject({ drainTimeoutMs: 1500, maxSessions: 7, tokenSecret: SECRET, windowBytes: 1024 * 1024 });
  });

  it('names the variable and hides the secret', () => {
    expect(() => loadStreamerConfig({ ...BASE, CADFLEET_STREAM_TOKEN_SECRET: 'short-secret' })).toThrow(ConfigError);
    try {
      loadStreamerConfig({ ...BASE, CADFLEET_STREAM_TOKEN_SECRET: 'short-secret', CADFLEET_STREAM_PORT: 'x' });
    } catch (err) {
      expect((err as Error).message).toContain('CADFLEET_STREAM_TOKEN_SECRET must be at least 32 characters, got [REDACTED]');
      expect((err as Error).message).toContain('CADFLEET_STREAM_PORT must be a number');
      expect((err as Error).message).not.toContain('short-secret');
    }
  });
});
