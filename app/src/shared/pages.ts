// Keyset pages for the lists that grow without bound (models, batches, webhook deliveries):
// newest first by (created_at, id), the next page starting strictly after the last row of this
// one, so rows inserted during a walk never shift it (no OFFSET) and each row comes once.
//
// The cursor is opaque to clients: base64url of the position and of what it belongs to (the
// list, the key's project, the filters), with a check value. It is no capability: every query is
// scoped to the key's project whatever a cursor says. The check value catches a cursor that was
// edited or cut short; the binding catches one taken from another list, project or filter set.
// Both are refused as `400 invalid_cursor`, naming the parameter.
import { createHash } from 'node:crypto';
import { HttpError } from './http-errors';

export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;
/** A time filter of a list: RFC 3339 with a zone (Z or an offset), or a date alone (midnight UTC). */
export const LIST_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/;
/** A SHA-256 as the api shows it: 64 lowercase hex digits. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Where a page starts: after the row with this creation time (PostgreSQL's text, exact to the microsecond) and id. */
export interface Position {
  at: string;
  id: string;
}

export interface PageRequest {
  limit: number;
  after?: Position;
  /** What a cursor of this list must have been made for: the list, the project and the filters. */
  binding: string;
}

export interface Page<T> {
  items: T[];
  next?: string;
}

const digest = (text: string): string => createHash('sha256').update(text).digest('base64url');
const checkValue = (payload: string): string => digest(`cadfleet-cursor-v1\n${payload}`).slice(0, 16);

/** The binding of a list request: the list's name, the project it lists (`*`: every project, an admin key's) and each filter given. */
export function bindingOf(list: string, project: string | undefined, filters: Record<string, string | undefined>): string {
  const given = Object.entries(filters)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  return digest([list, project ?? '*', ...given].join('\n')).slice(0, 22);
}

export function encodeCursor(position: Position, binding: string): string {
  const payload = Buffer.from(JSON.stringify({ b: binding, t: position.at, i: position.id })).toString('base64url');
  return `${payload}.${checkValue(payload)}`;
}

const refuse = (why: string): HttpError =>
  new HttpError(400, 'invalid_cursor', `cursor ${why}: pass the \`next\` of the previous page unchanged, with the same filters, or leave cursor out to start at the newest`, {}, { parameter: 'cursor' });

/** A 400 for a query parameter, naming it in the message and in `parameter`. */
export const badParameter = (parameter: string, code: string, message: string): HttpError => new HttpError(400, code, message, {}, { parameter });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// PostgreSQL's text form of a timestamptz, as `created_at::text` gives it.
const PG_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/;

export function decodeCursor(cursor: string, binding: string): Position {
  const [payload, check, ...rest] = cursor.split('.');
  if (!payload || !check || rest.length || checkValue(payload) !== check) throw refuse('is not one this api gave out (edited or cut short)');
  let parsed: { b?: unknown; t?: unknown; i?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof parsed;
  } catch {
    throw refuse('is not one this api gave out');
  }
  if (typeof parsed.t !== 'string' || !PG_TIME.test(parsed.t) || typeof parsed.i !== 'string' || !UUID.test(parsed.i)) throw refuse('is not one this api gave out');
  if (parsed.b !== binding) throw refuse('belongs to another list, another project or other filters');
  return { at: parsed.t, id: parsed.i };
}

/** Reads `limit` and `cursor` of a list request; refuses bad ones with a 400 that names the parameter. */
export function readPage(query: { limit?: string; cursor?: string }, binding: string): PageRequest {
  const limit = query.limit === undefined ? DEFAULT_PAGE : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw badParameter('limit', 'invalid_limit', `limit must be a whole number from 1 to ${MAX_PAGE}, got ${JSON.stringify(query.limit)}`);
  }
  if (query.cursor === undefined || query.cursor === '') return { limit, binding };
  return { limit, binding, after: decodeCursor(query.cursor, binding) };
}

/**
 * The page from rows fetched with `LIMIT limit + 1` (the extra row only says that more follow):
 * the first `limit` rows, and the cursor after the last of them when more follow.
 */
export function pageOf<R extends { cursor_at: string; id: string }, T>(rows: R[], page: PageRequest, view: (row: R) => T): Page<T> {
  const items = rows.slice(0, page.limit);
  const last = items.at(-1);
  return { items: items.map(view), ...(rows.length > page.limit && last ? { next: encodeCursor({ at: last.cursor_at, id: last.id }, page.binding) } : {}) };
}

/**
 * A list query's WHERE clause, built from the conditions present only: one statement shape
 * per combination, so each gets a plan of its own (a generic plan of `($1 IS NULL OR project =
 * $1)` may stop using the project's index). `?` stands for the next parameter.
 */
export class Where {
  readonly params: unknown[] = [];
  private readonly terms: string[] = [];

  add(sql: string, ...values: unknown[]): this {
    let i = 0;
    this.terms.push(sql.replace(/\?/g, () => `$${this.params.push(values[i++])}`));
    return this;
  }

  /** The keyset condition: rows strictly after the position in (created_at DESC, id DESC) order. */
  after(position: Position | undefined, alias = ''): this {
    return position ? this.add(`(${alias}created_at, ${alias}id) < (?::timestamptz, ?::uuid)`, position.at, position.id) : this;
  }

  /** A parameter for the statement's LIMIT: one row more than the page, to know whether more follow. */
  limitOf(page: PageRequest): string {
    return `$${this.params.push(page.limit + 1)}`;
  }

  toString(): string {
    return this.terms.length ? `WHERE ${this.terms.join(' AND ')}` : '';
  }
}
