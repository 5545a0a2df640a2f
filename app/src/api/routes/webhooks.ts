// /api/v1/webhooks: a project's endpoints for model state changes, and their delivery log.
// /api/v1/events: the same events as a Server-Sent Events stream, for the viewer and scripts.
import type { FastifyInstance } from 'fastify';
import { routeSchemas } from '../openapi';
import { z } from 'zod';
import type { ApiContext } from '../context';
import { type Authenticate, scopeOf } from '../auth';
import { HttpError } from '../../shared/http-errors';
import { bindingOf, readPage } from '../../shared/pages';
import { eventBody } from '../../shared/webhooks/events';
import { newWebhookSecret } from '../../shared/webhooks/sign';
import { WebhookUrlError, checkWebhookUrl, resolveWebhookUrl } from '../../shared/webhooks/ssrf';
import { type Delivery, EVENT_TYPES, type Webhook, type WebhookStore } from '../../shared/webhooks/store';
import { createEventTail } from '../webhook-tail';

const createBody = z.object({
  url: z.string().max(2048),
  events: z.array(z.enum(EVENT_TYPES)).min(1).optional(),
  description: z.string().max(200).optional(),
});

const webhookView = (w: Webhook) => ({ id: w.id, url: w.url, events: w.events, description: w.description ?? undefined, createdAt: w.createdAt.toISOString() });
const deliveryView = (d: Delivery) => ({
  id: d.id,
  eventId: `evt_${d.eventId}`,
  state: d.state,
  attempts: d.attempts,
  lastStatus: d.lastStatus ?? undefined,
  lastError: d.lastError ?? undefined,
  createdAt: d.createdAt.toISOString(),
  lastAttemptAt: d.lastAttemptAt?.toISOString(),
  deliveredAt: d.deliveredAt?.toISOString(),
});

export function webhookRoutes(app: FastifyInstance, ctx: ApiContext, authenticate: Authenticate, store: WebhookStore): void {
  const policy = ctx.config.webhooks.policy;
  const tail = createEventTail(store, ctx.config.events.pollMs, ctx.log);
  app.addHook('onClose', async () => tail.close());
  const notFound = (id: string) => new HttpError(404, 'webhook_not_found', `no webhook ${JSON.stringify(id)} in this project`);

  app.post('/api/v1/webhooks', { schema: routeSchemas.createWebhook }, async (request, reply) => {
    const principal = await authenticate(request);
    const parsed = createBody.safeParse(request.body);
    if (!parsed.success) {
      throw new HttpError(400, 'invalid_body', `send JSON {"url": "https://...", "events"?: [${EVENT_TYPES.map((t) => `"${t}"`).join(', ')}], "description"?: "..."}`);
    }
    try {
      await resolveWebhookUrl(checkWebhookUrl(parsed.data.url, policy), policy);
    } catch (err) {
      if (err instanceof WebhookUrlError) throw new HttpError(400, 'invalid_webhook_url', err.message);
      throw err;
    }
    const secret = newWebhookSecret();
    const webhook = await store.create({
      project: principal.project,
      url: parsed.data.url,
      secret,
      events: parsed.data.events ?? [...EVENT_TYPES],
      description: parsed.data.description,
      createdByKey: principal.keyId,
    });
    request.log.info({ webhook: webhook.id, project: webhook.project }, 'webhook registered');
    // The secret is shown this once.
    return reply.code(201).header('cache-control', 'no-store').send({ ...webhookView(webhook), secret });
  });

  app.get('/api/v1/webhooks', { schema: routeSchemas.listWebhooks }, async (request) => {
    const principal = await authenticate(request);
    return { webhooks: (await store.list(scopeOf(principal))).map(webhookView) };
  });

  app.delete<{ Params: { id: string } }>('/api/v1/webhooks/:id', { schema: routeSchemas.deleteWebhook }, async (request, reply) => {
    const principal = await authenticate(request);
    if (!(await store.remove(request.params.id, scopeOf(principal)))) throw notFound(request.params.id);
    return reply.code(204).send();
  });

  app.get<{ Params: { id: string }; Querystring: { limit?: string; cursor?: string } }>('/api/v1/webhooks/:id/deliveries', { schema: routeSchemas.listDeliveries }, async (request) => {
    const principal = await authenticate(request);
    const webhook = await store.get(request.params.id, scopeOf(principal));
    if (!webhook) throw notFound(request.params.id);
    // The webhook's id binds the cursor (its project is the webhook's).
    const page = readPage(request.query, bindingOf(`deliveries/${webhook.id}`, scopeOf(principal).project, {}));
    const { items, next } = await store.deliveries(webhook.id, page);
    return { deliveries: items.map(deliveryView), ...(next ? { next } : {}) };
  });

  // Server-Sent Events: `id: <event id>`, `event: <type>`, `data: <the webhook body>`. A client
  // that reconnects with Last-Event-ID gets what it missed (events are kept
  // CADFLEET_EVENTS_RETENTION_HOURS); `?after=0` replays everything kept.
  app.get<{ Querystring: { after?: string } }>('/api/v1/events', { schema: routeSchemas.events }, async (request, reply) => {
    const principal = await authenticate(request);
    const scope = scopeOf(principal);
    const from = request.headers['last-event-id'] ?? request.query.after;
    const last = from === undefined ? await tail.head() : Number(from);
    if (!Number.isInteger(last) || last < 0) throw new HttpError(400, 'invalid_event_id', 'Last-Event-ID (or after) must be an event id, a whole number');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // nginx would hold the stream in its buffer: pass each event on at once.
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n: connected, after event ${last}\n\n`);
    // The api's one event reader sends this stream its project's events.
    const unsubscribe = tail.subscribe({
      scope,
      last,
      send: (events) => {
        for (const event of events) res.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${eventBody(event)}\n\n`);
      },
    });
    // A comment now and then keeps the LB and any proxy from taking the stream for idle.
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    // Until the client goes, or the api shuts down (the client reconnects elsewhere with Last-Event-ID).
    await new Promise<void>((resolve) => {
      const closing = setInterval(() => ctx.closing() && resolve(), 200);
      request.raw.on('close', () => {
        clearInterval(closing);
        resolve();
      });
    });
    clearInterval(beat);
    unsubscribe();
    res.end();
  });
}
