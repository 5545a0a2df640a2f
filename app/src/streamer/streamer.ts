// The streamer as a service that never touches the process: WebSocket upgrades on
// /stream/<node>/<session>, the open connections, and the drain. process.ts gives it a socket
// and signals.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Logger } from '../shared/logger';
import { type Connection, type ConnectionEvents, type ConnectionSettings, type LiveSession, serveConnection } from './connection';
import type { ModelStore } from './model-cache';
import type { SessionStore } from '../shared/stream-sessions';

export interface StreamerOptions {
  nodeId: string;
  settings: ConnectionSettings;
  sessions: SessionStore;
  store: ModelStore;
  log: Logger;
  events: ConnectionEvents;
  /** Called whenever the number of open sessions changes. */
  onCount?: (count: number) => void;
}

export interface Streamer {
  /** For the HTTP server's 'upgrade' event. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  count(): number;
  /** The open sessions, oldest first. */
  live(): LiveSession[];
  draining(): boolean;
  /**
   * Refuses new sessions from now on, waits up to `timeoutMs` for the open ones to finish, then
   * tells the rest to resume elsewhere and waits for their sockets to close.
   */
  drain(timeoutMs: number): Promise<{ finished: number; moved: number }>;
  close(): void;
}

/** `/stream/<node>/<session>` -> its parts, or undefined for any other path. */
export function parseStreamPath(url: string | undefined): { node: string; sessionId: string; token: string | null } | undefined {
  if (!url) return undefined;
  const parsed = new URL(url, 'http://streamer.invalid');
  const match = /^\/stream\/([^/]+)\/([^/]+)\/?$/.exec(parsed.pathname);
  if (!match) return undefined;
  try {
    return { node: decodeURIComponent(match[1]!), sessionId: decodeURIComponent(match[2]!), token: parsed.searchParams.get('token') };
  } catch {
    return undefined;
  }
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({ statusCode: status, code: status === 404 ? 'not_found' : 'bad_request', message: text });
  socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

export function createStreamer(options: StreamerOptions): Streamer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, perMessageDeflate: false, clientTracking: false });
  let draining = false;
  const active = new Set<Connection>();
  const bySession = new Map<string, Connection>();
  const hub = {
    nodeId: options.nodeId,
    settings: options.settings,
    sessions: options.sessions,
    store: options.store,
    log: options.log,
    events: options.events,
    draining: () => draining,
    active,
    bySession,
    countChanged: () => options.onCount?.(active.size),
  };
  return {
    handleUpgrade(request, socket, head) {
      socket.on('error', () => undefined);
      const target = parseStreamPath(request.url);
      if (!target) return rejectUpgrade(socket, 404, 'WebSocket sessions live at /stream/<node>/<session>?token=...');
      wss.handleUpgrade(request, socket, head, (ws) => serveConnection(hub, ws, request, target));
    },
    count: () => active.size,
    live: () => [...active].map((c) => c.info()).sort((a, b) => a.startedAt - b.startedAt),
    draining: () => draining,
    async drain(timeoutMs) {
      draining = true;
      const open = [...active];
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.all(open.map((c) => c.closed)).then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      const remaining = [...active];
      if (timedOut) for (const c of remaining) c.end('draining');
      // Their close handshakes (bounded inside each connection).
      await Promise.all(remaining.map((c) => c.closed));
      return { finished: open.length - remaining.length, moved: remaining.length };
    },
    close() {
      wss.close();
    },
  };
}
