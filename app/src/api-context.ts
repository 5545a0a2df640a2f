// Everything the api's routes use, built once by the process edge and passed to the app plugin.
import type { Config } from './config';
import type { Db } from './db';
import type { Health } from './health';
import type { KeyService } from './keys';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import type { ModelRepository } from './models';
import type { ConversionQueue } from './queue';
import type { Registry } from './registry';
import type { Storage } from './storage';
import type { UploadRepository } from './uploads';
import type { ExportQueue, ExportStore } from './exporter/jobs';
import type { BatchStore } from './batches';

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
