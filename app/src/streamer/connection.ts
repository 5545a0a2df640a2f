// One WebSocket connection of a streaming session, from the token check to the last frame:
// refuse clearly, wait for the hello, send the manifest, then the frames the client lacks with
// two brakes: the client's acknowledged window (a browser's WebSocket reads everything it is
// sent, so TCP back-pressure alone would pile frames up in the viewer's memory) and the socket's
// own send buffer.
import type { IncomingMessage } from 'node:http';
import type WebSocket from 'ws';
import type { Logger } from '../shared/logger';
import type { ModelStore, PackLease } from './model-cache';
import { ModelUnavailableError } from './model-cache';
import { CLOSE, type ClientMessage, type ErrorCode, type ErrorMessage, type ManifestMessage, PROTOCOL_VERSION, type ResumeMessage } from './protocol';
import type { SessionStore } from '../shared/stream-sessions';
import { verifyStreamToken } from '../shared/stream-token';

export interface ConnectionSettings {
  tokenSecret: string;
  /** Accepted too: the key before a rotation of the stream-token secret. */
  previousTokenSecret?: string;
  maxSessions: number;
  idleTimeoutMs: number;
  helloTimeoutMs: number;
  windowBytes: number;
  sendBufferBytes: number;
  /** A WebSocket ping on every open connection this often (0: none). @default 5000 */
  pingIntervalMs?: number;
}

export interface ConnectionEvents {
  refused(code: ErrorCode): void;
  firstFrame(ms: number): void;
  frame(bytes: number): void;
  finished(outcome: 'complete' | 'resume' | 'closed' | 'failed'): void;
}

/** What every connection of one streamer shares. */
export interface ConnectionHub {
  nodeId: string;
  settings: ConnectionSettings;
  sessions: SessionStore;
  store: ModelStore;
  log: Logger;
  events: ConnectionEvents;
  draining(): boolean;
  /** Open connections (counted from the moment one passes the checks that need no I/O). */
  active: Set<Connection>;
  /** The connection currently serving each session on this node. */
  bySession: Map<string, Connection>;
  countChanged(): void;
}

/** What /status shows of an open session (through the registry heartbeat). */
export interface LiveSession {
  session: string;
  model: string;
  startedAt: number;
  framesSent: number;
  frames: number;
}

export interface Connection {
  readonly sessionId: string;
  info(): LiveSession;
  /** Tells the client to resume elsewhere and closes. */
  end(reason: ResumeMessage['reason']): void;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  readonly streaming: boolean;
}

const resumeText: Record<ResumeMessage['reason'], string> = {
  draining: 'this streaming node is shutting down; ask the api to resume the session (POST /api/v1/models/:id/sessions {"resume": sessionId})',
  stalled: 'the client acknowledged nothing for too long; resume the session through the api when ready',
  replaced: 'another connection took this session over',
};

function send(ws: WebSocket, message: object): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
}

function refuse(hub: ConnectionHub, ws: WebSocket, code: ErrorCode, close: number, message: string, resume: boolean): void {
  hub.events.refused(code);
  const body: ErrorMessage = { type: 'error', code, message, resume };
  send(ws, body);
  ws.close(close, code);
}

/** Serves one connection on `/stream/<node>/<session>?token=...`. */
export function serveConnection(hub: ConnectionHub, ws: WebSocket, request: IncomingMessage, target: { node: string; sessionId: string; token: string | null }): void {
  const { settings } = hub;
  const started = performance.now();
  if (hub.draining()) return refuse(hub, ws, 'draining', CLOSE.resume, resumeText.draining, true);
  if (target.node !== hub.nodeId) return refuse(hub, ws, 'wrong_node', CLOSE.resume, `this is node ${hub.nodeId}, not ${target.node}; ask the api to resume the session`, true);
  const check = verifyStreamToken([settings.tokenSecret, ...(settings.previousTokenSecret ? [settings.previousTokenSecret] : [])], target.token, { sessionId: target.sessionId, node: hub.nodeId });
  if (!check.ok) return refuse(hub, ws, check.code, CLOSE.unauthorized, check.message, check.code === 'token_expired' || check.code === 'token_mismatch');
  if (hub.active.size >= settings.maxSessions) {
    return refuse(hub, ws, 'session_limit', CLOSE.full, `this streaming node holds its limit of ${settings.maxSessions} sessions; ask the api to resume the session on another node`, true);
  }
  const claims = check.claims;
  const log = hub.log.child({ session: target.sessionId, model: claims.mid });

  let closed = false;
  let streaming = false;
  let stopReason: ResumeMessage['reason'] | undefined;
  let waiter: (() => void) | undefined;
  const wake = (): void => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  let resolveClosed!: () => void;
  const closedPromise = new Promise<void>((r) => (resolveClosed = r));
  let hello: ((m: ClientMessage & { type: 'hello' }) => void) | undefined;
  let acked = 0;
  const live: LiveSession = { session: target.sessionId, model: claims.mid, startedAt: Date.now(), framesSent: 0, frames: 0 };

  const connection: Connection = {
    sessionId: target.sessionId,
    info: () => ({ ...live }),
    closed: closedPromise,
    get streaming() {
      return streaming;
    },
    end(reason) {
      if (closed || stopReason) return;
      stopReason = reason;
      const message: ResumeMessage = { type: 'resume', reason, message: resumeText[reason] };
      send(ws, message);
      ws.close(CLOSE.resume, reason);
      wake();
    },
  };
  hub.active.add(connection);
  hub.countChanged();

  // Pings keep bytes flowing to the LB while the session waits (for the hello, the pack, an
  // ack), so that the LB can cut viewers of a streamer whose host vanished without a word (a
  // crashed host sends no FIN) after a short silence (nginx_lb_stream_read_timeout) and they
  // resume elsewhere. Found by the fleet's streamer-host kill: they waited on a dead socket.
  const pingMs = settings.pingIntervalMs ?? 5000;
  const pinger = pingMs > 0 ? setInterval(() => ws.readyState === ws.OPEN && ws.ping(), pingMs) : undefined;
  pinger?.unref();

  ws.on('close', () => {
    clearInterval(pinger);
    closed = true;
    resolveClosed();
    wake();
  });
  ws.on('error', (err) => log.debug({ err }, 'socket error'));
  ws.on('message', (data, isBinary) => {
    let message: ClientMessage;
    try {
      if (isBinary) throw new Error('binary');
      message = JSON.parse(data.toString()) as ClientMessage;
    } catch {
      return refuse(hub, ws, 'bad_message', CLOSE.protocol, 'client messages are JSON text: {"type":"hello",...} or {"type":"ack",...}', false);
    }
    if (message.type === 'hello' && hello) {
      const h = hello;
      hello = undefined;
      h(message);
    } else if (message.type === 'ack' && Number.isInteger(message.frames) && message.frames > acked) {
      acked = message.frames;
      wake();
    }
  });

  const waitHello = new Promise<(ClientMessage & { type: 'hello' }) | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), settings.helloTimeoutMs);
    hello = (m) => {
      clearTimeout(timer);
      resolve(m);
    };
    void closedPromise.then(() => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });

  void (async () => {
    let lease: PackLease | undefined;
    let outcome: 'complete' | 'resume' | 'closed' | 'failed' = 'closed';
    try {
      const record = await hub.sessions.get(target.sessionId);
      if (closed) return;
      if (!record) return refuse(hub, ws, 'session_not_found', CLOSE.sessionGone, 'the session is unknown or expired; create a new one', false);
      if (record.model !== claims.mid || record.project !== claims.prj) return refuse(hub, ws, 'token_mismatch', CLOSE.unauthorized, 'the token belongs to another model', false);
      if (record.node !== hub.nodeId) {
        return refuse(hub, ws, 'wrong_node', CLOSE.resume, 'the session was moved to another streaming node; ask the api to resume it', true);
      }
      hub.bySession.get(target.sessionId)?.end('replaced');
      hub.bySession.set(target.sessionId, connection);

      // The model loads while the client composes its hello.
      const opening = hub.store.open(record.prefix);
      opening.catch(() => undefined);
      const h = await waitHello;
      if (closed || stopReason) {
        void opening.then((l) => l.release(), () => undefined);
        return;
      }
      if (!h || h.protocol !== PROTOCOL_VERSION || (h.have !== undefined && !Array.isArray(h.have))) {
        void opening.then((l) => l.release(), () => undefined);
        return h
          ? refuse(hub, ws, 'bad_message', CLOSE.protocol, `the hello must name protocol ${PROTOCOL_VERSION} and list held parts in "have"`, false)
          : refuse(hub, ws, 'hello_timeout', CLOSE.protocol, `no hello within ${settings.helloTimeoutMs} ms`, true);
      }
      try {
        lease = await opening;
      } catch (err) {
        outcome = 'failed';
        log.error({ err }, 'could not load the model');
        const message = err instanceof ModelUnavailableError ? err.message : 'the model could not be loaded; try again later';
        return refuse(hub, ws, 'model_unavailable', CLOSE.failed, message, !(err instanceof ModelUnavailableError));
      }
      if (closed || stopReason) return;
      await hub.sessions.connected(target.sessionId).catch((err: unknown) => log.warn({ err }, 'could not record the connection'));

      const { index, data } = lease.pack;
      const have = new Set((h.have ?? []).filter((id): id is string => typeof id === 'string'));
      const frames = index.frames.filter((f) => !have.has(f.part));
      const window = Math.max(16 * 1024, Math.min(settings.windowBytes, Number.isFinite(h.window) && h.window! > 0 ? h.window! : settings.windowBytes));
      const manifest: ManifestMessage = {
        type: 'manifest',
        protocol: PROTOCOL_VERSION,
        sessionId: target.sessionId,
        node: hub.nodeId,
        modelId: record.model,
        resumed: record.connections > 0,
        manifest: index.manifest as unknown as ManifestMessage['manifest'],
        order: index.order,
        chunks: index.chunks,
        sending: index.order.filter((id) => !have.has(id)),
        frames: frames.length,
        bytes: frames.reduce((n, f) => n + f.length, 0),
        window,
      };
      send(ws, manifest);
      streaming = true;
      live.frames = frames.length;
      log.info({ source: lease.source, frames: frames.length, have: have.size, resumed: manifest.resumed, ip: request.socket.remoteAddress }, 'streaming');

      // Frames go out while the unacknowledged bytes fit the window (one frame always may) and
      // the socket's queue is below its mark; otherwise wait for an ack or a flushed send.
      const sizes = frames.map((f) => f.length);
      let sent = 0;
      let unacked = 0;
      let ackedUpTo = 0;
      let lastProgress = performance.now();
      for (const frame of frames) {
        for (;;) {
          while (ackedUpTo < Math.min(acked, sent)) unacked -= sizes[ackedUpTo++]!;
          if (closed || stopReason) break;
          const windowOk = sent === ackedUpTo || unacked + frame.length <= window;
          if (windowOk && ws.bufferedAmount <= settings.sendBufferBytes) break;
          const idleFor = performance.now() - lastProgress;
          if (idleFor >= settings.idleTimeoutMs) {
            connection.end('stalled');
            break;
          }
          const before = { acked, buffered: ws.bufferedAmount };
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(settings.idleTimeoutMs - idleFor, 1000));
            waiter = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          if (acked > before.acked || ws.bufferedAmount < before.buffered) lastProgress = performance.now();
        }
        if (closed || stopReason) break;
        ws.send(data.subarray(frame.offset, frame.offset + frame.length), { binary: true }, () => wake());
        if (sent === 0) hub.events.firstFrame(performance.now() - started);
        sent++;
        live.framesSent = sent;
        unacked += frame.length;
        hub.events.frame(frame.length);
      }
      if (closed) return;
      if (stopReason) {
        outcome = 'resume';
        return;
      }
      send(ws, { type: 'complete', parts: manifest.sending.length, frames: sent, bytes: manifest.bytes });
      ws.close(CLOSE.complete, 'complete');
      outcome = 'complete';
      await hub.sessions.completed(target.sessionId).catch((err: unknown) => log.warn({ err }, 'could not record the completion'));
      log.info({ frames: sent, ms: Math.round(performance.now() - started) }, 'session complete');
    } catch (err) {
      outcome = 'failed';
      log.error({ err }, 'session failed');
      if (!closed) refuse(hub, ws, 'model_unavailable', CLOSE.failed, 'the session failed on the streaming node; try again', true);
    } finally {
      lease?.release();
      streaming = false;
      // Resolved once the client has answered the close (or the socket is cut): until then the session still counts.
      await Promise.race([closedPromise, new Promise((r) => setTimeout(r, 5000).unref())]);
      if (!closed) ws.terminate();
      hub.active.delete(connection);
      if (hub.bySession.get(target.sessionId) === connection) hub.bySession.delete(target.sessionId);
      hub.countChanged();
      hub.events.finished(stopReason ? 'resume' : outcome);
    }
  })();
}
