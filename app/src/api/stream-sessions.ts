// The api's half of streaming: create or resume a session, pick the streamer, sign the token.
// Used by POST /api/v1/models/:id/sessions.
import { randomUUID } from 'node:crypto';
import { HttpError } from '../shared/http-errors';
import type { Model } from '../shared/models';
import type { Registry } from '../shared/registry';
import { pickStreamer, streamUrl } from './stream-pick';
import type { SessionStore } from '../shared/stream-sessions';
import { signStreamToken } from '../shared/stream-token';

export interface OpenedSession {
  sessionId: string;
  /** Open it as is: a path on the LB (`/stream/<node>/<session>?token=...`) or a ws(s):// URL in direct mode. */
  streamUrl: string;
  node: string;
  modelId: string;
  resumed: boolean;
  /** When the token stops opening connections (ISO time); the session itself lives on. */
  tokenExpiresAt: string;
}

export interface SessionService {
  open(model: Model, resume?: string): Promise<OpenedSession>;
}

export interface SessionServiceOptions {
  registry: Pick<Registry, 'list'>;
  /** The streamers the LB routes to (path mode behind the LB); undefined from it: no filter. */
  routed?: () => Promise<ReadonlyMap<string, string> | undefined>;
  sessions: SessionStore;
  tokenSecret: string;
  tokenTtlMs: number;
  nodeTtlMs: number;
  urlMode: 'path' | 'direct';
  retryAfterSeconds: number;
}

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createSessionService(options: SessionServiceOptions): SessionService {
  return {
    async open(model, resume) {
      if (model.state !== 'ready' || !model.outputPrefix) {
        throw new HttpError(409, 'model_not_ready', `the model is ${model.state}${model.state === 'failed' ? '' : '; open a session when its state is ready'}`);
      }
      if (resume !== undefined && !SESSION_ID.test(resume)) throw new HttpError(400, 'invalid_resume', `resume must be a session id, got ${JSON.stringify(resume)}`);
      const [nodes, routed, existing] = await Promise.all([
        options.registry.list(options.nodeTtlMs),
        options.routed?.(),
        resume ? options.sessions.get(resume) : Promise.resolve(undefined),
      ]);
      // Another model's (or project's) session id is as unknown as an expired one.
      if (resume && (!existing || existing.model !== model.id || existing.project !== model.project)) {
        throw new HttpError(404, 'session_not_found', 'no such session for this model (it may have expired); open a new one without "resume"');
      }
      // A resume goes to another node than the one the client lost, when there is one.
      const node = pickStreamer(nodes, Math.random, routed, existing?.node);
      if (!node) {
        throw new HttpError(503, 'no_streamer', `no streaming node can take a session now; try again in ${options.retryAfterSeconds} s`, {
          'retry-after': String(options.retryAfterSeconds),
        });
      }
      let sessionId: string;
      if (resume) {
        if (!(await options.sessions.reassign(resume, node.id))) throw new HttpError(404, 'session_not_found', 'the session expired; open a new one without "resume"');
        sessionId = resume;
      } else {
        sessionId = randomUUID();
        await options.sessions.create({ id: sessionId, model: model.id, project: model.project, prefix: model.outputPrefix, node: node.id });
      }
      const exp = Date.now() + options.tokenTtlMs;
      const token = signStreamToken(options.tokenSecret, { sid: sessionId, mid: model.id, prj: model.project, nod: node.id, exp });
      return {
        sessionId,
        streamUrl: streamUrl(node, sessionId, token, options.urlMode),
        node: node.id,
        modelId: model.id,
        resumed: resume !== undefined,
        tokenExpiresAt: new Date(exp).toISOString(),
      };
    },
  };
}
