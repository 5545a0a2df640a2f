// The cadfleet HTTP API as the viewer uses it: same origin (the LB, or the api in single-machine
// mode), the key from session storage.

export interface ModelView {
  id: string;
  name: string;
  state: 'queued' | 'converting' | 'ready' | 'failed';
  progress: number;
  error?: string;
  size: number;
  stats?: { triangles: number; parts: number; seconds: number };
  createdAt: string;
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
  ) {
    super(message);
  }
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
  const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  if (!res.ok) throw new ApiError(res.status, String(json.code ?? 'error'), String(json.message ?? res.statusText));
  return json as T;
}

export const api = {
  listModels: () => call<{ models: ModelView[] }>('GET', '/api/v1/models?limit=50').then((r) => r.models),
  openSession: (modelId: string, resume?: string) => call<OpenedSession>('POST', `/api/v1/models/${encodeURIComponent(modelId)}/sessions`, resume ? { resume } : {}),

  /** Multipart upload with progress (fetch cannot report upload progress). */
  upload(file: File, quality: string, onProgress: (fraction: number) => void): Promise<ModelView> {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      form.append('quality', quality);
      form.append('file', file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/api/v1/models');
      xhr.setRequestHeader('authorization', `Bearer ${apiKey.get() ?? ''}`);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onerror = () => reject(new ApiError(0, 'network', 'the upload failed: network error'));
      xhr.onload = () => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(xhr.responseText) as Record<string, unknown>;
        } catch {
          /* not JSON */
        }
        if (xhr.status === 201) resolve(json as unknown as ModelView);
        else reject(new ApiError(xhr.status, String(json.code ?? 'error'), String(json.message ?? xhr.statusText)));
      };
      xhr.send(form);
    });
  },
};

/** A stream URL as the api gave it: a path on this origin (the LB) or an absolute ws(s):// URL. */
export function webSocketUrl(streamUrl: string): string {
  if (/^wss?:\/\//.test(streamUrl)) return streamUrl;
  const url = new URL(streamUrl, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}
