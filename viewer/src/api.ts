// The cadfleet HTTP API as the viewer uses it: same origin (the LB, or the api in single-machine
// mode), the key from session storage.
import { retryAfterMs } from './retry';

export interface ModelView {
  id: string;
  name: string;
  state: 'queued' | 'converting' | 'ready' | 'failed';
  progress: number;
  error?: string;
  size: number;
  archive?: string;
  root?: string;
  reusedFrom?: string;
  stats?: { triangles: number; parts: number; seconds: number };
  createdAt: string;
  updatedAt: string;
}

export interface OpenedSession {
  sessionId: string;
  streamUrl: string;
  node: string;
  resumed: boolean;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Set on a 429 or 503: how long the service asked us to wait before sending it again. */
    readonly retryAfterMs?: number,
    /** The files an archive could be opened at (a 400 archive_root_ambiguous). */
    readonly candidates: string[] = [],
  ) {
    super(message);
  }
}

/** The error of a failed answer; a body that is not JSON (a proxy's page) still gives its status. */
function answerError(status: number, statusText: string, text: string, retryAfter: string | null): ApiError {
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  const candidates = Array.isArray(json.candidates) ? json.candidates.map(String) : [];
  return new ApiError(status, String(json.code ?? 'error'), String(json.message ?? (statusText || `HTTP ${status}`)), retryAfterMs(status, retryAfter), candidates);
}

const KEY = 'cadfleet.apiKey';

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (key: string): void => sessionStorage.setItem(KEY, key),
  clear: (): void => sessionStorage.removeItem(KEY),
};

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${apiKey.get() ?? ''}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw answerError(res.status, res.statusText, text, res.headers.get('retry-after'));
  return (text ? JSON.parse(text) : {}) as T;
}

export const api = {
  /** A page of the project's models, newest first; `next` while more follow (pass it back as `cursor`). */
  listModels: (cursor?: string) => call<{ models: ModelView[]; next?: string }>('GET', `/api/v1/models?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
  openSession: (modelId: string, resume?: string) => call<OpenedSession>('POST', `/api/v1/models/${encodeURIComponent(modelId)}/sessions`, resume ? { resume } : {}),

  /** Multipart upload with progress (fetch cannot report upload progress). */
  upload(file: File, quality: string, onProgress: (fraction: number) => void, root?: string): Promise<ModelView> {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      // Fields before the file: the api reads them before it streams the file to storage.
      form.append('quality', quality);
      if (root) form.append('root', root);
      form.append('file', file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/api/v1/models');
      xhr.setRequestHeader('authorization', `Bearer ${apiKey.get() ?? ''}`);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onerror = () => reject(new ApiError(0, 'network', 'the upload failed: network error'));
      xhr.onload = () => {
        if (xhr.status === 201) resolve(JSON.parse(xhr.responseText) as ModelView);
        else reject(answerError(xhr.status, xhr.statusText, xhr.responseText, xhr.getResponseHeader('retry-after')));
      };
      xhr.send(form);
    });
  },
};

export interface ModelEvent {
  id: number;
  type: 'model.queued' | 'model.converting' | 'model.ready' | 'model.failed' | 'model.deleted';
  model: ModelView;
}

/**
 * The project's model events (GET /api/v1/events, Server-Sent Events) read through fetch, since
 * EventSource cannot send the Authorization header. Reconnects after a drop with Last-Event-ID,
 * so nothing is missed; `onOpen` says when it (re)connected. Ends when `signal` aborts.
 */
export async function followEvents(onEvent: (e: ModelEvent) => void, signal: AbortSignal, onOpen: () => void = () => undefined): Promise<void> {
  let last: string | undefined;
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const res = await fetch('/api/v1/events', {
        headers: { authorization: `Bearer ${apiKey.get() ?? ''}`, accept: 'text/event-stream', ...(last ? { 'last-event-id': last } : {}) },
        signal,
      });
      if (!res.ok || !res.body) throw answerError(res.status, res.statusText, await res.text(), res.headers.get('retry-after'));
      onOpen();
      delay = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        let cut: number;
        while ((cut = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, cut);
          text = text.slice(cut + 2);
          const field = (name: string): string | undefined => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
          const id = field('id');
          const data = field('data');
          if (!id || !data) continue;
          last = id;
          const body = JSON.parse(data) as { type: ModelEvent['type']; data: { model: ModelView } };
          onEvent({ id: Number(id), type: body.type, model: body.data.model });
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status === 401) throw err;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30_000);
  }
}

/** A stream URL as the api gave it: a path on this origin (the LB) or an absolute ws(s):// URL. */
export function webSocketUrl(streamUrl: string): string {
  if (/^wss?:\/\//.test(streamUrl)) return streamUrl;
  const url = new URL(streamUrl, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}
