// The Markdown summary of an offline plan (`terraform show -json`) that CI writes to the run's
// page: what would be created, changed or destroyed, and the few values a reviewer of an
// infrastructure change wants to see without opening the log — whom the deploy role trusts and
// which alarms exist. Pure: the tests feed it plans.

/** The parts of `terraform show -json` this summary reads. */
export interface PlanJson {
  resource_changes?: Array<{
    address: string;
    mode: 'managed' | 'data';
    type: string;
    change: { actions: string[]; after?: Record<string, unknown> | null };
  }>;
  /** Data sources terraform could read during the plan land here, not in resource_changes. */
  prior_state?: { values?: { root_module?: { resources?: Array<{ mode: string; type: string; values?: Record<string, unknown> }> } } };
}

export interface Totals {
  add: number;
  change: number;
  destroy: number;
}

/** Counted as `terraform plan` counts: a replacement is one add and one destroy. */
export function totals(plan: PlanJson): Totals {
  const t: Totals = { add: 0, change: 0, destroy: 0 };
  for (const rc of plan.resource_changes ?? []) {
    if (rc.mode !== 'managed') continue;
    const a = rc.change.actions;
    if (a.includes('create')) t.add++;
    if (a.includes('delete')) t.destroy++;
    if (a.includes('update')) t.change++;
  }
  return t;
}

const changed = (plan: PlanJson) => (plan.resource_changes ?? []).filter((rc) => rc.mode === 'managed' && !rc.change.actions.every((a) => a === 'no-op' || a === 'read'));

/** The `sub` values the deploy role's trust policy accepts, as planned (known at plan time). */
export function trustedSubjects(plan: PlanJson): string[] {
  const subjects = new Set<string>();
  // A trust document that names a provider this plan creates is read at apply (a change); one
  // that names an existing provider (github_oidc_provider_arn) was read during the plan.
  const documents = [
    ...(plan.resource_changes ?? []).filter((rc) => rc.mode === 'data' && rc.type === 'aws_iam_policy_document').map((rc) => rc.change.after),
    ...(plan.prior_state?.values?.root_module?.resources ?? []).filter((r) => r.mode === 'data' && r.type === 'aws_iam_policy_document').map((r) => r.values),
  ];
  for (const document of documents) {
    const statements = (document?.statement ?? []) as Array<{ actions?: string[]; condition?: Array<{ variable?: string; values?: string[] }> }>;
    for (const s of statements) {
      if (!s.actions?.includes('sts:AssumeRoleWithWebIdentity')) continue;
      for (const c of s.condition ?? []) if (c.variable?.endsWith(':sub')) for (const v of c.values ?? []) subjects.add(v);
    }
  }
  return [...subjects].sort();
}

const afterName = (after: Record<string, unknown> | null | undefined, key: string): string | undefined => {
  const v = after?.[key];
  return typeof v === 'string' ? v : undefined;
};

/** Markdown for $GITHUB_STEP_SUMMARY. */
export function planSummary(plan: PlanJson, title: string): string {
  const t = totals(plan);
  const changes = changed(plan);
  const byType = new Map<string, number>();
  for (const rc of changes) byType.set(rc.type, (byType.get(rc.type) ?? 0) + 1);
  const alarms = changes.filter((rc) => rc.type === 'aws_cloudwatch_metric_alarm').map((rc) => afterName(rc.change.after, 'alarm_name') ?? rc.address);
  const roles = changes.filter((rc) => rc.type === 'aws_iam_role').map((rc) => afterName(rc.change.after, 'name') ?? rc.address);
  const subjects = trustedSubjects(plan);

  const lines = [
    `## ${title}`,
    '',
    `**Plan: ${t.add} to add, ${t.change} to change, ${t.destroy} to destroy.**`,
    '',
    // Said on the page, so nobody reads it as the plan against the live environment.
    'Offline: no AWS credentials, no state, fixed AMI and zones; it shows what the code would build, not what an apply would change.',
    '',
  ];
  if (subjects.length) {
    lines.push('GitHub OIDC: the deploy role may be assumed only by jobs with the subject', '', ...subjects.map((s) => `- \`${s}\``), '');
  } else {
    lines.push('GitHub OIDC: no deploy role (github_repository is empty).', '');
  }
  if (alarms.length) lines.push(`Alarms: ${alarms.map((a) => `\`${a}\``).join(', ')}`, '');
  if (roles.length) lines.push(`IAM roles: ${roles.map((r) => `\`${r}\``).join(', ')}`, '');
  lines.push('| resource type | count |', '|---|---:|', ...[...byType].sort(([a], [b]) => a.localeCompare(b)).map(([type, n]) => `| \`${type}\` | ${n} |`), '');
  lines.push(
    '<details><summary>Every resource</summary>',
    '',
    '```',
    ...changes.map((rc) => `${rc.change.actions.join('/').padEnd(14)} ${rc.address}`),
    '```',
    '</details>',
    '',
  );
  return lines.join('\n');
}
