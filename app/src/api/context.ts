// Everything the api's routes use, built once by the process edge and passed to the app plugin.
import type { Config } from '../shared/config';
import type { Db } from '../shared/db';
import type { Health } from '../shared/health';
import type { KeyService } from '../shared/keys';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import type { ModelRepository } from '../shared/models';
import type { ConversionQueue } from '../shared/queue';
import type { Registry } from '../shared/registry';
import type { Storage } from '../shared/storage';
import type { UploadRepository } from './uploads';
import type { ExportQueue, ExportStore } from '../shared/exports';
import type { BatchStore } from '../shared/batches';

export interface ApiContext {
  config: Config;
  log: Logger;
  version: string;
  nodeId: string;
  startedAt: number;
  db: Db;
  keys: KeyService;
  models: ModelRepository;
  uploads: UploadRepository;
  storage: Storage;
  queue: ConversionQueue;
  registry: Registry;
  health: Health;
  metrics: Metrics;
  exports: ExportStore;
  batches: BatchStore;
  exportQueue: ExportQueue;
  /** True once the api is shutting down: long-lived answers (the event stream) end. */
  closing(): boolean;
}
