// The streaming wire protocol (docs/streaming.md), shared by the streamer, the viewer and the
// tests. It must stay free of Node and DOM imports: the viewer bundles this file for the browser.
//
// Text frames carry JSON messages; binary frames carry geometry. A geometry frame is
//   "CFS1" | u32 LE header length | header JSON (UTF-8) | zero padding to 4 | body
// and every section of the body starts on a 4-byte boundary. Vertex and index sections are
// meshopt-encoded (EXT_meshopt_compression's ATTRIBUTES and TRIANGLES modes, codec version 0).

export const PROTOCOL_VERSION = 1;
export const FRAME_MAGIC = 'CFS1';

/** WebSocket close codes the streamer uses; `resume` means: ask the api for a new stream URL and resume. */
export const CLOSE = {
  /** Every part the client lacked has been sent. */
  complete: 1000,
  /** Resume through the api (the node drains, shuts down, the client stalled, or the session moved). */
  resume: 4000,
  /** The client broke the protocol (no hello in time, bad JSON). */
  protocol: 4400,
  /** No, forged, expired or mismatched token: ask the api for a new stream URL. */
  unauthorized: 4401,
  /** The session is unknown or expired: create a new one. */
  sessionGone: 4404,
  /** This node is at its session limit: ask the api again (it picks another node). */
  full: 4429,
  /** The model could not be loaded. */
  failed: 4500,
} as const;

export type ErrorCode =
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'token_mismatch'
  | 'session_not_found'
  | 'wrong_node'
  | 'session_limit'
  | 'draining'
  | 'hello_timeout'
  | 'bad_message'
  | 'stalled'
  | 'replaced'
  | 'model_unavailable';

// ---------------------------------------------------------------------------------------------
// Messages

/** Client -> server, first message after the WebSocket opens. */
export interface HelloMessage {
  type: 'hello';
  protocol: number;
  /** Part ids the client already holds completely (on resume); those are not sent again. */
  have?: string[];
  /** Unacknowledged bytes the client accepts; the server uses the smaller of this and its own limit. */
  window?: number;
}

/** Client -> server after it has processed geometry frames: `frames` counts every frame of this connection done so far. */
export interface AckMessage {
  type: 'ack';
  frames: number;
}

export type ClientMessage = HelloMessage | AckMessage;

export interface ManifestPartLike {
  id: string;
  name: string;
  parent: string | null;
  children: string[];
  meshes: number[];
  node: number;
  color: string | null;
  triangles: number;
  bbox: { min: [number, number, number]; max: [number, number, number] } | null;
}

export interface ManifestLike {
  version: number;
  units: string;
  triangles: number;
  bbox: { min: [number, number, number]; max: [number, number, number] } | null;
  roots: string[];
  parts: ManifestPartLike[];
  [key: string]: unknown;
}

/** Server -> client, first message after the hello. */
export interface ManifestMessage {
  type: 'manifest';
  protocol: number;
  sessionId: string;
  node: string;
  modelId: string;
  resumed: boolean;
  manifest: ManifestLike;
  /** Geometry parts in the order the server streams them (all of them, whatever the client has). */
  order: string[];
  /** Frames per geometry part. */
  chunks: Record<string, number>;
  /** The parts this connection will send, in order: `order` minus what the client holds. */
  sending: string[];
  frames: number;
  bytes: number;
  /** The window the server uses (bytes). */
  window: number;
}

/** Server -> client after the last geometry frame; the server then closes with CLOSE.complete. */
export interface CompleteMessage {
  type: 'complete';
  parts: number;
  frames: number;
  bytes: number;
}

/** Server -> client before it closes with CLOSE.resume: resume elsewhere through the api. */
export interface ResumeMessage {
  type: 'resume';
  reason: 'draining' | 'stalled' | 'replaced';
  message: string;
}

/** Server -> client before a refusal close. */
export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** True when asking the api to resume the session may succeed. */
  resume: boolean;
}

export type ServerMessage = ManifestMessage | CompleteMessage | ResumeMessage | ErrorMessage;

// ---------------------------------------------------------------------------------------------
// Geometry frames

export type ComponentType = 'i8' | 'u8' | 'i16' | 'u16' | 'u32' | 'f32';

export const COMPONENT_BYTES: Record<ComponentType, number> = { i8: 1, u8: 1, i16: 2, u16: 2, u32: 4, f32: 4 };

export interface VertexSection {
  type: ComponentType;
  /** Components stored per vertex (padded so a vertex is a multiple of 4 bytes). */
  comps: number;
  /** Components in use (3 for positions and normals). */
  size: number;
  normalized: boolean;
  offset: number;
  length: number;
}

export interface IndexSection {
  type: 'u16' | 'u32';
  offset: number;
  length: number;
}

export interface FramePrimitive {
  /** Linear RGBA base colour (glTF baseColorFactor). */
  color: [number, number, number, number];
  doubleSided: boolean;
  vertices: number;
  indices: number;
  position: VertexSection;
  normal: VertexSection | null;
  index: IndexSection;
}

export interface FrameHeader {
  part: string;
  chunk: number;
  chunks: number;
  triangles: number;
  /** Column-major 4x4 world matrix of the part (it also undoes the positions' quantization). */
  matrix: number[];
  prims: FramePrimitive[];
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Lays out a frame (header + sections); the section offsets in `header` are relative to the body. */
export function encodeFrame(header: FrameHeader, body: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const bodyStart = align4(8 + json.length);
  const out = new Uint8Array(bodyStart + body.length);
  out.set(new TextEncoder().encode(FRAME_MAGIC), 0);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(4, json.length, true);
  out.set(json, 8);
  out.set(body, bodyStart);
  return out;
}

export class FrameError extends Error {
  override name = 'FrameError';
}

/** Splits a frame into its header and body; the body's sections are decoded by the client. */
export function decodeFrame(frame: Uint8Array): { header: FrameHeader; body: Uint8Array } {
  if (frame.length < 8 || new TextDecoder().decode(frame.subarray(0, 4)) !== FRAME_MAGIC) throw new FrameError('not a cadfleet geometry frame');
  const length = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(4, true);
  if (8 + length > frame.length) throw new FrameError('frame header runs past the frame');
  const header = JSON.parse(new TextDecoder().decode(frame.subarray(8, 8 + length))) as FrameHeader;
  return { header, body: frame.subarray(align4(8 + length)) };
}

/** The decoded client-side view of a vertex or index section. */
export function sectionBytes(body: Uint8Array, section: { offset: number; length: number }): Uint8Array {
  return body.subarray(section.offset, section.offset + section.length);
}
