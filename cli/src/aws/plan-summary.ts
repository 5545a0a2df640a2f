// What `cadfleet apply` shows before it asks: the plan's counts and, by name, every resource it
// would delete or replace, the ones that hold data first. terraform's own plan output scrolls
// past in hundreds of lines; a tfvars typo that replaces the database must not.

/** The part of `terraform show -json <plan>` this reads. */
export interface PlanJson {
  resource_changes?: Array<{ address: string; type: string; mode?: string; change: { actions: string[] } }>;
  output_changes?: Record<string, { actions: string[] }>;
}

export interface PlanSummary {
  add: number;
  change: number;
  destroy: number;
  /** Outputs that change (an apply of no resource change still writes them). */
  outputs: number;
  /** Addresses deleted, or deleted and created again (a replacement), data-holding ones first. */
  removed: Array<{ address: string; replaced: boolean; holdsData: boolean }>;
}

/** Resource types whose deletion loses data (the database, the buckets, the cache, secrets). */
const DATA_TYPES = new Set(['aws_db_instance', 'aws_s3_bucket', 'aws_elasticache_replication_group', 'aws_secretsmanager_secret', 'aws_ssm_parameter']);

export function summarizePlan(plan: PlanJson): PlanSummary {
  const summary: PlanSummary = { add: 0, change: 0, destroy: 0, outputs: 0, removed: [] };
  for (const rc of plan.resource_changes ?? []) {
    if (rc.mode === 'data') continue;
    const actions = rc.change.actions;
    if (actions.includes('create')) summary.add++;
    if (actions.includes('update')) summary.change++;
    if (actions.includes('delete')) {
      summary.destroy++;
      summary.removed.push({ address: rc.address, replaced: actions.includes('create'), holdsData: DATA_TYPES.has(rc.type) });
    }
  }
  summary.outputs = Object.values(plan.output_changes ?? {}).filter((o) => !o.actions.every((a) => a === 'no-op')).length;
  summary.removed.sort((a, b) => Number(b.holdsData) - Number(a.holdsData) || a.address.localeCompare(b.address));
  return summary;
}

const nothingToDo = (s: PlanSummary): boolean => s.add + s.change + s.destroy + s.outputs === 0;

/** The lines shown before the question. */
export function describePlan(env: string, s: PlanSummary): string[] {
  if (nothingToDo(s)) return [`cadfleet apply: ${env} is up to date; nothing to apply`];
  const lines = [`cadfleet apply: the plan for ${env}: ${s.add} to add, ${s.change} to change, ${s.destroy} to destroy${s.outputs ? `; ${s.outputs} output${s.outputs === 1 ? '' : 's'} to change` : ''}`];
  for (const r of s.removed) {
    lines.push(`  ${r.replaced ? 'REPLACE' : 'DELETE '} ${r.address}${r.holdsData ? '   <- holds data: its contents are lost' : ''}`);
  }
  return lines;
}

/** Whether to apply: `--yes`, or a person who typed yes; a script without `--yes` is refused. */
export async function confirmApply(env: string, s: PlanSummary, opts: { yes: boolean; interactive: boolean; ask: (question: string) => Promise<string> }): Promise<{ apply: boolean; message?: string; code: number }> {
  if (nothingToDo(s)) return { apply: false, code: 0 };
  if (opts.yes) return { apply: true, code: 0 };
  if (!opts.interactive) {
    return { apply: false, code: 2, message: `cadfleet apply: not applied: nobody is here to confirm the plan for ${env}; run it in a terminal, or pass --yes (as the deploy workflow does)` };
  }
  const data = s.removed.filter((r) => r.holdsData).length;
  const answer = await opts.ask(`Apply this plan to ${env}${data ? `, losing what ${data} data-holding resource${data === 1 ? '' : 's'} hold${data === 1 ? 's' : ''}` : ''}? Only "yes" applies it: `);
  return answer.trim() === 'yes' ? { apply: true, code: 0 } : { apply: false, code: 1, message: 'cadfleet apply: not applied (the answer was not "yes"); nothing changed' };
}
