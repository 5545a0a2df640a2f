// A streaming client for the tests and the benchmark, written on `ws` straight from
// docs/streaming.md (not the viewer's client), so the protocol is checked by two implementations.
import { MeshoptDecoder } from 'meshoptimizer';
import WebSocket from 'ws';
import {
  COMPONENT_BYTES,
  type CompleteMessage,
  type ErrorMessage,
  type FrameHeader,
  type ManifestMessage,
  PROTOCOL_VERSION,
  type ResumeMessage,
  type ServerMessage,
  decodeFrame,
} from '../../app/src/streamer/protocol';

/** Await before decoding frames (the decoder is WebAssembly). */
export const decoderReady: Promise<void> = MeshoptDecoder.ready;

export interface ReceivedFrame {
  header: FrameHeader;
  bytes: number;
  /** Triangles decoded from the frame's buffers (checked: indices in range). */
  triangles: number;
  /** ms since the client started connecting */
  at: number;
}

export interface StreamClient {
  ws: WebSocket;
  /** Every server message and frame in arrival order. */
  events: Array<{ kind: 'message'; message: ServerMessage; at: number } | { kind: 'frame'; frame: ReceivedFrame }>;
  manifest?: ManifestMessage;
  frames: ReceivedFrame[];
  complete?: CompleteMessage;
  error?: ErrorMessage;
  resume?: ResumeMessage;
  close?: { code: number; reason: string; at: number };
  /** Acknowledges every frame received so far. */
  ack(): void;
  /** Parts of which every chunk has arrived. */
  completeParts(): string[];
  closed: Promise<{ code: number; reason: string }>;
  opened: Promise<void>;
  waitFor(what: string, check: () => boolean, timeoutMs?: number): Promise<void>;
  terminate(): void;
}

/** Decodes a frame's buffers as a viewer would, and checks them. Returns the triangle count. */
export function decodeGeometry(frame: Uint8Array): { header: FrameHeader; triangles: number } {
  const { header, body } = decodeFrame(frame);
  let triangles = 0;
  for (const prim of header.prims) {
    const stride = prim.position.comps * COMPONENT_BYTES[prim.position.type];
    const positions = new Uint8Array(prim.vertices * stride);
    MeshoptDecoder.decodeGltfBuffer(positions, prim.vertices, stride, body.subarray(prim.position.offset, prim.position.offset + prim.position.length), 'ATTRIBUTES');
    if (prim.normal) {
      const nstride = prim.normal.comps * COMPONENT_BYTES[prim.normal.type];
      const normals = new Uint8Array(prim.vertices * nstride);
      MeshoptDecoder.decodeGltfBuffer(normals, prim.vertices, nstride, body.subarray(prim.normal.offset, prim.normal.offset + prim.normal.length), 'ATTRIBUTES');
    }
    const size = prim.index.type === 'u16' ? 2 : 4;
    const raw = new Uint8Array(prim.indices * size);
    MeshoptDecoder.decodeGltfBuffer(raw, prim.indices, size, body.subarray(prim.index.offset, prim.index.offset + prim.index.length), 'TRIANGLES');
    const indices = size === 2 ? new Uint16Array(raw.buffer) : new Uint32Array(raw.buffer);
    for (const i of indices) if (i >= prim.vertices) throw new Error(`frame ${header.part}/${header.chunk}: index ${i} out of ${prim.vertices} vertices`);
    triangles += prim.indices / 3;
  }
  if (triangles !== header.triangles) throw new Error(`frame ${header.part}/${header.chunk} says ${header.triangles} triangles, holds ${triangles}`);
  return { header, triangles };
}

export interface OpenOptions {
  have?: string[];
  window?: number;
  /** Acknowledge each frame as soon as it is decoded (a viewer does). @default true */
  autoAck?: boolean;
  /** Skip decoding (the benchmark's many-sessions run). */
  decode?: boolean;
  /** Send no hello (tests of the hello timeout and of refusals that come first). */
  noHello?: boolean;
  onFrame?: (frame: ReceivedFrame, client: StreamClient) => void;
  /** PEM CA that signed the server's certificate (wss:// through the fleet's LB). */
  ca?: string | Buffer;
}

export function openStream(url: string, options: OpenOptions = {}): StreamClient {
  const t0 = performance.now();
  const ws = new WebSocket(url, { perMessageDeflate: false, ...(options.ca ? { ca: options.ca } : {}) });
  ws.binaryType = 'nodebuffer';
  let received = 0;
  let resolveClosed!: (v: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => (resolveClosed = r));
  const client: StreamClient = {
    ws,
    events: [],
    frames: [],
    closed,
    opened: new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} instead of a WebSocket`)));
    }),
    ack() {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'ack', frames: received }));
    },
    completeParts() {
      const counts = new Map<string, number>();
      for (const f of client.frames) counts.set(f.header.part, (counts.get(f.header.part) ?? 0) + 1);
      return [...counts].filter(([part, n]) => n === client.frames.find((f) => f.header.part === part)!.header.chunks).map(([part]) => part);
    },
    async waitFor(what, check, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${what}; close ${JSON.stringify(client.close)}, error ${JSON.stringify(client.error)}, frames ${client.frames.length}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    terminate() {
      terminated = true;
      ws.terminate();
    },
  };
  client.opened.catch(() => undefined);
  ws.on('open', () => {
    if (!options.noHello) ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, have: options.have ?? [], ...(options.window ? { window: options.window } : {}) }));
  });
  let terminated = false;
  ws.on('message', (data: Buffer, isBinary) => {
    // A client that cut its connection processes nothing that was still in its buffers.
    if (terminated) return;
    const at = performance.now() - t0;
    if (!isBinary) {
      const message = JSON.parse(data.toString('utf8')) as ServerMessage;
      client.events.push({ kind: 'message', message, at });
      if (message.type === 'manifest') client.manifest = message;
      else if (message.type === 'complete') client.complete = message;
      else if (message.type === 'error') client.error = message;
      else if (message.type === 'resume') client.resume = message;
      return;
    }
    const frame: ReceivedFrame =
      options.decode === false
        ? { header: decodeFrame(data).header, bytes: data.length, triangles: 0, at }
        : { ...decodeGeometry(data), bytes: data.length, at };
    received++;
    client.frames.push(frame);
    client.events.push({ kind: 'frame', frame });
    options.onFrame?.(frame, client);
    if (options.autoAck !== false) client.ack();
  });
  ws.on('error', () => undefined);
  ws.on('close', (code, reason) => {
    client.close = { code, reason: reason.toString(), at: performance.now() - t0 };
    resolveClosed({ code, reason: reason.toString() });
  });
  return client;
}
