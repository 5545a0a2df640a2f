// What a webhook delivery and the api's event stream carry for one model event.
import { batchView } from '../batches';
import { modelView } from '../model-view';
import type { ModelEvent } from './store';

/** The JSON body of a delivery: the event and the model as GET /api/v1/models/:id shows it. */
export function eventBody(event: ModelEvent): string {
  const data = event.batch ? { batch: batchView(event.batch) } : { model: modelView(event.model!) };
  return JSON.stringify({ id: `evt_${event.id}`, type: event.type, createdAt: event.createdAt.toISOString(), data });
}
