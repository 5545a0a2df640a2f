// The api's one reader of model_events for its event streams: a single query per interval,
// whatever the number of open streams, fanned out to each stream by project. Recent events are
// kept in a window; a stream behind the window (a reconnect with an old Last-Event-ID) catches
// up from PostgreSQL on its own, then reads from the window again.
import type { Scope } from '../shared/models';
import type { ModelEvent, WebhookStore } from '../shared/webhooks/store';

const WINDOW = 2000;

export interface Subscriber {
  scope: Scope;
  /** The last event id this stream has been sent. */
  last: number;
  send(events: ModelEvent[]): void;
}

export interface EventTail {
  subscribe(s: Subscriber): () => void;
  /** The newest event id there is (where a stream without Last-Event-ID starts). */
  head(): Promise<number>;
  close(): void;
}

export function createEventTail(store: Pick<WebhookStore, 'eventsAfter' | 'lastEventId'>, pollMs: number, log: { debug(obj: object, msg: string): void }): EventTail {
  const subscribers = new Set<Subscriber>();
  let window: ModelEvent[] = [];
  let head: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running = false;

  const visible = (s: Subscriber, e: ModelEvent): boolean => s.scope.project === undefined || s.scope.project === e.project;

  async function tick(): Promise<void> {
    if (running) return;
    running = true;
    try {
      head ??= await store.lastEventId();
      // Everything new, all projects: one query for every stream of this api.
      for (;;) {
        const fresh = await store.eventsAfter(head, {}, 1000);
        if (fresh.length === 0) break;
        window.push(...fresh);
        head = fresh.at(-1)!.id;
        if (fresh.length < 1000) break;
      }
      if (window.length > WINDOW) window = window.slice(-WINDOW);
      const oldest = window[0]?.id ?? head + 1;
      for (const s of subscribers) {
        if (s.last + 1 < oldest && s.last < head) {
          // Behind the window: its own reads until it is in it.
          const missed = await store.eventsAfter(s.last, s.scope, 1000);
          if (missed.length) s.send(missed);
          // Fewer than asked: nothing of its project is left before the head.
          s.last = missed.length === 1000 ? missed.at(-1)!.id : Math.max(missed.at(-1)?.id ?? s.last, head);
          continue;
        }
        const due = window.filter((e) => e.id > s.last && visible(s, e));
        if (due.length) s.send(due);
        s.last = Math.max(s.last, head);
      }
    } catch (err) {
      log.debug({ err }, 'event tail read failed; trying again');
    } finally {
      running = false;
    }
  }

  return {
    subscribe(s) {
      subscribers.add(s);
      timer ??= setInterval(() => void tick(), pollMs);
      void tick();
      return () => {
        subscribers.delete(s);
        if (subscribers.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
    async head() {
      return head ?? (head = await store.lastEventId());
    },
    close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      subscribers.clear();
    },
  };
}
