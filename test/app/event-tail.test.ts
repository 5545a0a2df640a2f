// The api's shared event reader: one query per interval for any number of streams, each stream
// sent its own project's events once, in order; a stream behind the window catches up on its own.
import { describe, expect, it } from 'vitest';
import type { Scope } from '../../app/src/shared/models';
import type { ModelEvent } from '../../app/src/shared/webhooks/store';
import { createEventTail } from '../../app/src/api/webhook-tail';

function events(n: number, from = 1): ModelEvent[] {
  return Array.from({ length: n }, (_, i) => ({ id: from + i, project: (from + i) % 2 ? 'odd' : 'even', type: 'model.queued', createdAt: new Date() }) as ModelEvent);
}

/** PostgreSQL's model_events as the store reads it, counting the queries. */
function table(rows: ModelEvent[]) {
  const queries: Array<{ after: number; scope: Scope }> = [];
  return {
    rows,
    queries,
    async eventsAfter(after: number, scope: Scope, limit: number) {
      queries.push({ after, scope });
      return rows.filter((e) => e.id > after && (scope.project === undefined || e.project === scope.project)).slice(0, limit);
    },
    async lastEventId() {
      return rows.at(-1)?.id ?? 0;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = { debug: () => undefined };

describe('the event tail', () => {
  it('reads once per interval for 50 streams and sends each its project only, in order, once', async () => {
    const db = table(events(10));
    const tail = createEventTail(db, 20, log);
    const got = new Map<number, number[]>();
    for (let i = 0; i < 50; i++) {
      got.set(i, []);
      tail.subscribe({ scope: { project: i % 2 ? 'odd' : 'even' }, last: 10, send: (es) => got.get(i)!.push(...es.map((e) => e.id)) });
    }
    await sleep(50);
    db.rows.push(...events(6, 11));
    await sleep(120);
    tail.close();
    expect(got.get(0)).toEqual([12, 14, 16]);
    expect(got.get(1)).toEqual([11, 13, 15]);
    // About one read per tick, not one per stream per tick.
    const ticks = db.queries.length;
    expect(ticks).toBeLessThan(20);
    expect(db.queries.every((q) => q.scope.project === undefined)).toBe(true);
  });

  it('lets a stream far behind (an old Last-Event-ID) catch up from the table, then joins the window', async () => {
    const db = table(events(5000));
    const tail = createEventTail(db, 10, log);
    const seen: number[] = [];
    tail.subscribe({ scope: { project: 'even' }, last: 0, send: (es) => seen.push(...es.map((e) => e.id)) });
    await sleep(200);
    db.rows.push(...events(4, 5001));
    await sleep(100);
    tail.close();
    const expected = events(5004).filter((e) => e.project === 'even').map((e) => e.id);
    expect(seen).toEqual(expected);
  });
});
