// Webhook deliveries, run by the worker hosts: a dispatcher turns new model events (the outbox
// that a trigger fills) into deliveries and queues one BullMQ job per delivery (job id = delivery
// id, so a second dispatch of the same delivery is a no-op); the delivery worker POSTs it, signed,
// and BullMQ retries a failure with exponential backoff. At least once: a receiver dedupes by
// the Cadfleet-Event-Id header, which every attempt of a delivery carries.
import http from 'node:http';
import https from 'node:https';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Config } from '../shared/config';
import type { Logger } from '../shared/logger';
import { bullPrefix } from '../shared/queue';
import type { Redis } from '../shared/redis';
import { VERSION } from '../shared/version';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signatureHeader } from '../shared/webhooks/sign';
import { type WebhookPolicy, WebhookUrlError, checkWebhookUrl, guardedLookup } from '../shared/webhooks/ssrf';
import { eventBody } from '../shared/webhooks/events';
import type { WebhookStore } from '../shared/webhooks/store';

export const WEBHOOK_QUEUE = 'webhooks';

export interface PostResult {
  status?: number;
  error?: string;
}

/** One POST, to an address the policy allows, redirects not followed, cut at `timeoutMs`. */
export function postWebhook(rawUrl: string, body: string, headers: Record<string, string>, policy: WebhookPolicy, timeoutMs: number): Promise<PostResult> {
  let url: URL;
  try {
    url = checkWebhookUrl(rawUrl, policy);
  } catch (err) {
    return Promise.resolve({ error: (err as Error).message });
  }
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        lookup: guardedLookup(policy),
        timeout: timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': `cadfleet-webhooks/${VERSION}`, ...headers },
        agent: false,
      },
      (res) => {
        // The answer's body is not needed; read a little and let go.
        res.resume();
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          resolve({ status, error: `the endpoint answered ${status} (a redirect, to ${res.headers.location ?? 'nowhere'}); redirects are not followed: register the final URL` });
        } else if (status < 200 || status >= 300) {
          resolve({ status, error: `the endpoint answered ${status}` });
        } else resolve({ status });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ error: err instanceof WebhookUrlError ? err.message : `could not deliver: ${err.message}` }));
    req.end(body);
  });
}

export interface WebhookDelivery {
  close(): Promise<void>;
  /** One round of the dispatcher (tests and the loop). */
  dispatchOnce(): Promise<number>;
}

export function startWebhookDelivery(deps: { config: Config; log: Logger; store: WebhookStore; connection: Redis; queueConnection: Redis }): WebhookDelivery {
  const { config, store } = deps;
  const settings = config.webhooks;
  const log = deps.log.child({ component: 'webhooks' });
  const prefix = bullPrefix(config.redis);
  const queue = new Queue(WEBHOOK_QUEUE, {
    connection: deps.queueConnection,
    prefix,
    defaultJobOptions: {
      attempts: settings.attempts,
      backoff: { type: 'exponential', delay: settings.backoffMs },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    },
  });
  queue.on('error', () => undefined);

  const worker = new Worker<{ deliveryId: string }>(
    WEBHOOK_QUEUE,
    async (job) => {
      const found = await store.forSending(job.data.deliveryId);
      if (!found) return 'gone'; // the endpoint was deleted
      const { webhook, event, delivery } = found;
      if (delivery.state === 'delivered') return 'delivered';
      const body = eventBody(event);
      const result = await postWebhook(webhook.url, body, { [SIGNATURE_HEADER]: signatureHeader(webhook.secret, body), [EVENT_ID_HEADER]: `evt_${event.id}` }, settings.policy, settings.timeoutMs);
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (result.error === undefined) {
        await store.recordAttempt(delivery.id, { status: result.status, state: 'delivered' });
        return 'delivered';
      }
      await store.recordAttempt(delivery.id, { status: result.status, error: result.error, state: last ? 'failed' : 'pending' });
      log.info({ webhook: webhook.id, delivery: delivery.id, event: event.id, attempt: job.attemptsMade + 1, error: result.error }, 'webhook delivery failed');
      // An address the policy refuses will not become allowed by waiting.
      if (/^webhooks may not call|must use https|not a URL/.test(result.error)) throw new UnrecoverableError(result.error);
      throw new Error(result.error);
    },
    { connection: deps.connection, prefix, concurrency: settings.concurrency, name: 'webhooks' },
  );
  worker.on('error', (err) => log.warn({ err }, 'webhook queue connection error'));

  let stopped = false;
  const dispatchOnce = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const created = await store.dispatch(200);
      if (created.length) await queue.addBulk(created.map((d) => ({ name: 'deliver', data: { deliveryId: d.delivery }, opts: { jobId: d.delivery } })));
      total += created.length;
      if (created.length < 200) return total;
    }
  };
  let pruned = Date.now();
  const loop = async (): Promise<void> => {
    while (!stopped) {
      try {
        await dispatchOnce();
        if (Date.now() - pruned > 3600_000) {
          pruned = Date.now();
          await store.prune(settings.retentionHours);
        }
      } catch (err) {
        log.debug({ err }, 'webhook dispatch failed; trying again');
      }
      await new Promise((r) => setTimeout(r, settings.dispatchIntervalMs));
    }
  };
  const running = loop();

  return {
    dispatchOnce,
    async close() {
      stopped = true;
      await running;
      await worker.close();
      await queue.close().catch(() => undefined);
    },
  };
}
