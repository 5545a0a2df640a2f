// The api's error replies: `{statusCode, error, code, message}`, where `code` is stable for
// programs and `message` is meant for the person who sent the request.
import { STATUS_CODES } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** Extra fields of the body, for a program to act on (the candidates of an ambiguous archive). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface ErrorBody {
  statusCode: number;
  error: string;
  code: string;
  message: string;
}

export const errorBody = (statusCode: number, code: string, message: string): ErrorBody => ({
  statusCode,
  error: STATUS_CODES[statusCode] ?? 'Error',
  code,
  message,
});

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN', 'ENETUNREACH']);

/**
 * True for failures that mean "a dependency is unreachable right now" (so 503 and retry),
 * as opposed to a bug or a bad request.
 */
export function isDependencyError(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string; message?: string; $metadata?: { httpStatusCode?: number }; cause?: unknown };
  if (!e || typeof e !== 'object') return false;
  if (typeof e.code === 'string') {
    if (NETWORK_CODES.has(e.code)) return true;
    // PostgreSQL connection exceptions (class 08), shutdown and "cannot connect now" (57P0x)
    if (/^08/.test(e.code) || /^57P0[1-3]$/.test(e.code)) return true;
  }
  const message = e.message ?? '';
  if (/Connection terminated|timeout exceeded when trying to connect|Connection is closed|Stream isn't writeable|enableOfflineQueue|Reached the max retries per request|getaddrinfo|socket hang up/i.test(message)) {
    return true;
  }
  if (e.name === 'MaxRetriesPerRequestError' || e.name === 'TimeoutError') return true;
  // AWS SDK: a network failure has no HTTP status; S3 5xx means it is unwell.
  if (e.$metadata && (e.$metadata.httpStatusCode === undefined || e.$metadata.httpStatusCode >= 500)) return true;
  if (e.cause && e.cause !== err) return isDependencyError(e.cause);
  return false;
}
