// Keep-alive clients of the LB that behave as docs/architecture.md ("LB keep-alive") says a
// client must, counting what happened: requests, failures, the retries the rules allowed, and
// TLS handshakes (new connections), so that a test can tell connection reuse from reconnecting.
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface ClientStats {
  requests: number;
  failures: number;
  /** Requests sent again under the client's rule (the first try never reached a backend). */
  retries: number;
  /** New TLS connections (HTTP/2: sessions). */
  handshakes: number;
  /** Of those, the ones that resumed a TLS session. */
  resumed: number;
  /** HTTP/2: sessions by the protocol ALPN agreed on (`h2`; `h2c` without TLS; `none`: no ALPN). */
  alpn: Record<string, number>;
  /** HTTP/2: GOAWAY frames received. */
  goaways: number;
  /** The first few failures, for the test's message. */
  errors: string[];
}

export interface LbClient {
  stats: ClientStats;
  request(method: 'GET' | 'POST', path: string, headers?: Record<string, string>, body?: string): Promise<Answer>;
  close(): void;
}

const newStats = (): ClientStats => ({ requests: 0, failures: 0, retries: 0, handshakes: 0, resumed: 0, alpn: {}, goaways: 0, errors: [] });

function fail(stats: ClientStats, err: Error): never {
  stats.failures++;
  if (stats.errors.length < 5) stats.errors.push(`${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`.trim());
  throw err;
}

/** The error a request on a reused HTTP/1.1 connection gets when the server had closed it (idle) first. */
const CLOSED_IDLE = new Set(['ECONNRESET', 'EPIPE']);

/**
 * HTTP/1.1 over node:http(s) with a keep-alive agent (or a connection per request). The rule, as
 * browsers apply it and Node's docs show (`request.reusedSocket`): a request whose *reused*
 * connection fails before any byte of the answer is sent once more, on a new connection (not
 * another idle one from the pool: the same reload closes those too). Only
 * requests the caller marks as safe to repeat are (`retry`): GET always; a POST only when the
 * caller accepts that a failure other than a reload (a crashed LB) could repeat it.
 */
export function h1Client(options: { origin: string; ca?: Buffer; keepAlive: boolean; maxSockets: number; retryPosts?: boolean }): LbClient {
  const url = new URL(options.origin);
  const secure = url.protocol === 'https:';
  const agent = secure
    ? new https.Agent({ ca: options.ca, keepAlive: options.keepAlive, maxSockets: options.maxSockets })
    : new http.Agent({ keepAlive: options.keepAlive, maxSockets: options.maxSockets });
  const stats = newStats();
  // fresh: a connection of its own, outside the pool, whose other idle connections the same
  // reload may be closing; a new connection reaches a new worker (old ones stopped accepting).
  const once = (method: string, path: string, headers: Record<string, string>, body?: string, fresh = false): Promise<Answer> =>
    new Promise((resolve, reject) => {
      let answered = false;
      const via = fresh ? { agent: false as const, ca: options.ca } : { agent };
      const req = (secure ? https : http).request(new URL(path, url), { method, ...via, headers: { ...headers, ...(options.keepAlive && !fresh ? {} : { connection: 'close' }) } }, (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        res.on('error', reject);
      });
      if (secure) {
        req.on('socket', (socket) =>
          socket.connecting &&
          socket.once('secureConnect', () => {
            stats.handshakes++;
            if ((socket as TLSSocket).isSessionReused()) stats.resumed++;
          }),
        );
      }
      req.setTimeout(15_000, () => req.destroy(new Error('no answer in 15 s')));
      req.on('error', (err: NodeJS.ErrnoException) => reject(Object.assign(err, { reusedSocket: req.reusedSocket, answered })));
      req.end(body);
    });
  return {
    stats,
    async request(method, path, headers = {}, body) {
      stats.requests++;
      try {
        return await once(method, path, headers, body);
      } catch (e) {
        const err = e as NodeJS.ErrnoException & { reusedSocket?: boolean; answered?: boolean };
        const repeatable = method === 'GET' || options.retryPosts === true;
        if (!(repeatable && err.reusedSocket && !err.answered && CLOSED_IDLE.has(err.code ?? ''))) fail(stats, err);
        stats.retries++;
        return once(method, path, headers, body, true).catch((again: Error) => fail(stats, again));
      }
    },
    close: () => agent.destroy(),
  };
}

/**
 * HTTP/2 over node:http2, one session at a time, as browsers use one connection per origin. The
 * rule (RFC 9113, 6.8 and 8.7): after a GOAWAY the session takes no new request, so the next one
 * opens a new session; a stream the server did not process (refused, or above the GOAWAY's last
 * stream id, which nghttp2 reports as REFUSED_STREAM) is sent again on the new session, whatever
 * its method: the server says it never processed it.
 */
export function h2Client(options: { origin: string; ca?: Buffer }): LbClient {
  const stats = newStats();
  let session: http2.ClientHttp2Session | undefined;
  const sessions = new Set<http2.ClientHttp2Session>();
  const current = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(options.origin, { ca: options.ca });
    sessions.add(s);
    s.once('connect', () => {
      stats.handshakes++;
      if (s.encrypted && (s.socket as TLSSocket).isSessionReused()) stats.resumed++;
      // What the client must check before it calls what it measured HTTP/2 (Node goes on with
      // HTTP/2 even when a TLS server agreed on no protocol at all).
      const protocol = s.alpnProtocol || 'none';
      stats.alpn[protocol] = (stats.alpn[protocol] ?? 0) + 1;
    });
    s.on('goaway', () => {
      stats.goaways++;
      if (session === s) session = undefined;
    });
    s.on('error', () => undefined); // each stream reports its own failure
    s.once('close', () => {
      sessions.delete(s);
      if (session === s) session = undefined;
    });
    session = s;
    return s;
  };
  type Outcome = { answer: Answer } | { unprocessed: Error };
  const once = (method: string, path: string, headers: Record<string, string>, body?: string): Promise<Outcome> =>
    new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = current().request({ ':method': method, ':path': path, ...headers }, { endStream: body === undefined });
      } catch (err) {
        // The session got its GOAWAY between our check and the request: nothing was sent.
        if (['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION'].includes((err as NodeJS.ErrnoException).code ?? '')) return resolve({ unprocessed: err as Error });
        return reject(err as Error);
      }
      let status = 0;
      let responseHeaders: Answer['headers'] = {};
      let text = '';
      stream.setEncoding('utf8');
      stream.setTimeout(15_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.on('response', (h) => {
        status = Number(h[':status']);
        responseHeaders = h;
      });
      stream.on('data', (d: string) => (text += d));
      stream.on('end', () => resolve({ answer: { status, body: text, headers: responseHeaders } }));
      stream.on('error', (err) => (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && status === 0 ? resolve({ unprocessed: err }) : reject(err)));
      stream.on('close', () => {
        if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && status === 0) resolve({ unprocessed: new Error('stream refused') });
        else if (!status) reject(new Error(`stream closed without an answer (code ${stream.rstCode})`));
      });
      if (body !== undefined) stream.end(body);
    });
  return {
    stats,
    async request(method, path, headers = {}, body) {
      stats.requests++;
      for (let attempt = 0; ; attempt++) {
        const outcome = await once(method, path, headers, body).catch((err: Error) => fail(stats, err));
        if ('answer' in outcome) return outcome.answer;
        if (attempt >= 3) fail(stats, outcome.unprocessed);
        stats.retries++;
      }
    },
    close: () => {
      for (const s of sessions) s.destroy();
    },
  };
}
