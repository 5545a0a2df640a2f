import type { TargetHost } from '../environment';
import type { Role } from '../local/fleet';

/**
 * The rolling upgrade as data: which hosts, in which batches, in which order. Workers first
 * (a worker on the new release must handle jobs queued by old apis: migrations are backwards
 * compatible), then streamers (their sessions resume elsewhere), then the api, then the LB.
 * The data host is not part of an upgrade: locally it stands in for managed services.
 */
export const UPGRADE_ORDER: readonly Role[] = ['worker', 'streamer', 'api', 'lb'];

export type BatchSize = { count: number } | { percent: number };

export interface Batch {
  role: Role;
  hosts: TargetHost[];
}

export function parseBatchSize(value: string): BatchSize {
  const percent = /^(\d{1,3})%$/.exec(value);
  if (percent && Number(percent[1]) >= 1 && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
  if (/^\d+$/.test(value) && Number(value) >= 1) return { count: Number(value) };
  throw new Error(`--batch must be a number of hosts (1 or more) or a percentage (1% to 100%), got ${JSON.stringify(value)}`);
}

/** Hosts per batch for a role of n hosts: never the whole role at once while it has more than one host. */
export function batchLength(size: BatchSize, n: number): number {
  const wanted = 'count' in size ? size.count : Math.ceil((n * size.percent) / 100);
  return Math.max(1, Math.min(wanted, n > 1 ? n - 1 : 1));
}

/** The batches of one role, from the hosts that exist now (the inventory is re-read before each role). */
export function roleBatches(role: Role, hosts: TargetHost[], size: BatchSize): Batch[] {
  const ofRole = hosts.filter((h) => h.role === role).sort((a, b) => a.index - b.index);
  const length = batchLength(size, ofRole.length);
  const batches: Batch[] = [];
  for (let i = 0; i < ofRole.length; i += length) batches.push({ role, hosts: ofRole.slice(i, i + length) });
  return batches;
}

export function planUpgrade(hosts: TargetHost[], size: BatchSize): Batch[] {
  return UPGRADE_ORDER.flatMap((role) => roleBatches(role, hosts, size));
}
