// The viewer's streaming session (docs/streaming.md): open the stream URL, say hello with the
// parts already held, process frames as they come and acknowledge them, and resume through the
// api when the streamer drains, dies or the connection drops.
import { CLOSE, type CompleteMessage, type FrameHeader, type ManifestMessage, PROTOCOL_VERSION, type ServerMessage, decodeFrame } from '../../app/src/streamer/protocol';
import { ApiError, api, webSocketUrl } from './api';

export type StreamState = 'connecting' | 'streaming' | 'resuming' | 'complete' | 'error' | 'closed';

export interface StreamHandlers {
  manifest(message: ManifestMessage): void;
  /** Must process the frame synchronously; its acknowledgement follows. */
  frame(header: FrameHeader, body: Uint8Array): void;
  /** Parts whose frames came only partly before a connection ended: drop what they drew. */
  discard(parts: string[]): void;
  complete(message: CompleteMessage): void;
  state(state: StreamState, detail: string): void;
}

const MAX_RESUMES = 8;
/** A longer Retry-After is cut to this: a viewer that waits minutes looks broken. */
const MAX_RETRY_AFTER_MS = 30_000;
/**
 * A connection that brings nothing for this long while the viewer waits on the streamer is
 * dead: the streamer's host or the LB vanished without closing it (a crashed host sends no
 * FIN) and the browser would wait on it for many minutes. The viewer acknowledges every frame
 * at once, so after the manifest the streamer always has something to send; before it, the
 * streamer may still be cutting a large model into frames. Found by the fleet's LB-host kill.
 */
export const SILENCE_LIMIT_MS = { beforeManifest: 120_000, afterManifest: 45_000 };

export class ModelStream {
  sessionId?: string;
  node?: string;
  private ws?: WebSocket;
  private stopped = false;
  private resumes = 0;
  /** Chunks received per part, for the parts not yet whole. */
  private partial = new Map<string, Set<number>>();
  readonly have = new Set<string>();

  constructor(
    readonly modelId: string,
    private readonly handlers: StreamHandlers,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.ws?.close(1000, 'viewer closed');
  }

  private async connect(): Promise<void> {
    let session;
    try {
      session = await api.openSession(this.modelId, this.sessionId);
    } catch (err) {
      // An expired session starts afresh; the parts already held are still sent as `have`.
      if (err instanceof ApiError && err.code === 'session_not_found' && this.sessionId) {
        this.sessionId = undefined;
        return this.connect();
      }
      // A 429 (the LB's session rate) or 503 (no streamer free, a dependency down) says when to
      // come back: that wait, not the backoff's.
      if (err instanceof ApiError && (err.status === 429 || err.status === 503 || err.status === 0) && this.resumes < MAX_RESUMES) return this.retry(`${err.message}`, err.retryAfterMs);
      this.handlers.state('error', err instanceof Error ? err.message : String(err));
      return;
    }
    if (this.stopped) return;
    this.sessionId = session.sessionId;
    this.node = session.node;
    this.handlers.state(this.resumes ? 'resuming' : 'connecting', `session ${session.sessionId.slice(0, 8)} on ${session.node}`);
    const ws = new WebSocket(webSocketUrl(session.streamUrl));
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let processed = 0;
    let refusal: { code: string; message: string; resume: boolean } | undefined;
    let lastWord = Date.now();
    let manifested = false;
    const dropPartial = (): void => {
      if (this.partial.size) {
        this.handlers.discard([...this.partial.keys()]);
        this.partial.clear();
      }
    };
    const watchdog = setInterval(() => {
      const limit = manifested ? SILENCE_LIMIT_MS.afterManifest : SILENCE_LIMIT_MS.beforeManifest;
      if (this.ws !== ws || this.stopped || Date.now() - lastWord < limit) return;
      // Given up on: its close event, whenever the browser gets to it, is ignored.
      clearInterval(watchdog);
      this.ws = undefined;
      ws.close();
      dropPartial();
      void this.retry(`no word from the streamer for ${limit / 1000} s`);
    }, 1000);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, have: [...this.have] }));
    ws.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
      lastWord = Date.now();
      if (typeof event.data === 'string') {
        const message = JSON.parse(event.data) as ServerMessage;
        if (message.type === 'manifest') {
          manifested = true;
          this.handlers.manifest(message);
          this.handlers.state('streaming', `${message.sending.length} parts from ${message.node}`);
        } else if (message.type === 'complete') {
          this.handlers.complete(message);
        } else if (message.type === 'error') {
          refusal = message;
        }
        return;
      }
      const { header, body } = decodeFrame(new Uint8Array(event.data));
      this.handlers.frame(header, body);
      const got = this.partial.get(header.part) ?? new Set<number>();
      got.add(header.chunk);
      if (got.size === header.chunks) {
        this.partial.delete(header.part);
        this.have.add(header.part);
      } else this.partial.set(header.part, got);
      processed++;
      ws.send(JSON.stringify({ type: 'ack', frames: processed }));
    };
    ws.onclose = (event) => {
      clearInterval(watchdog);
      if (this.ws !== ws) return;
      dropPartial();
      if (this.stopped) return this.handlers.state('closed', 'closed');
      if (event.code === CLOSE.complete) return this.handlers.state('complete', 'complete');
      const why = refusal ? `${refusal.code}: ${refusal.message}` : `connection closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`;
      const resumable = refusal ? refusal.resume : event.code !== CLOSE.protocol && event.code !== CLOSE.failed;
      if (event.code === CLOSE.sessionGone) this.sessionId = undefined;
      if (resumable || event.code === CLOSE.sessionGone) return void this.retry(why);
      this.handlers.state('error', why);
    };
  }

  private async retry(why: string, retryAfterMs?: number): Promise<void> {
    if (this.stopped) return;
    if (++this.resumes > MAX_RESUMES) return this.handlers.state('error', `gave up after ${MAX_RESUMES} attempts: ${why}`);
    const wait = retryAfterMs === undefined ? Math.min(4000, 250 * 2 ** (this.resumes - 1)) : Math.min(MAX_RETRY_AFTER_MS, retryAfterMs);
    this.handlers.state('resuming', retryAfterMs === undefined ? `${why}; resuming` : `${why}; resuming in ${Math.ceil(wait / 1000)} s`);
    await new Promise((r) => setTimeout(r, wait));
    await this.connect();
  }
}
