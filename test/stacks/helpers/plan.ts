// Reading `terraform show -json` of a plan: planned values (what is known before apply) and
// the configuration (expressions and the references in them, for values such as ARNs that
// only exist after apply).

/**
 * A value of a JSON document (plan, synthesized config) that a test navigates and then
 * asserts on: the assertion is the type check.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type Json = any;

export interface Expression {
  constant_value?: unknown;
  references?: string[];
}

export interface PlannedResource {
  address: string;
  mode: 'managed' | 'data';
  type: string;
  name: string;
  index?: number | string;
  values: Record<string, unknown>;
}

export interface ConfiguredResource {
  address: string;
  mode: 'managed' | 'data';
  type: string;
  name: string;
  expressions: Record<string, unknown>;
  /** `count`, as Terraform read it (references to variables, resources). */
  count_expression?: unknown;
  /** Addresses of `depends_on`, as Terraform read them. */
  depends_on?: string[];
}

/** A planned change; data sources read during apply appear here with what is known of them. */
export interface ResourceChange {
  address: string;
  mode: 'managed' | 'data';
  type: string;
  change: { actions: string[]; after?: Record<string, unknown> | null; after_unknown?: Record<string, unknown> };
}

export interface Plan {
  resource_changes?: ResourceChange[];
  planned_values: { root_module: { resources?: PlannedResource[] }; outputs?: Record<string, { sensitive: boolean; value?: unknown }> };
  output_changes?: Record<string, { after?: unknown; after_unknown?: unknown; after_sensitive?: unknown }>;
  configuration: {
    root_module: {
      resources?: ConfiguredResource[];
      outputs?: Record<string, { expression?: Expression; sensitive?: boolean; description?: string }>;
      variables?: Record<string, unknown>;
    };
  };
}

export const planned = (plan: Plan, type: string): PlannedResource[] => (plan.planned_values.root_module.resources ?? []).filter((r) => r.type === type && r.mode === 'managed');

export const configured = (plan: Plan, type: string, mode: 'managed' | 'data' = 'managed'): ConfiguredResource[] =>
  (plan.configuration.root_module.resources ?? []).filter((r) => r.type === type && r.mode === mode);

export function configuredAt(plan: Plan, address: string): ConfiguredResource {
  const found = (plan.configuration.root_module.resources ?? []).find((r) => r.address === address);
  if (!found) throw new Error(`no resource ${address} in the plan's configuration`);
  return found;
}

/** The planned instance of a configured resource (the first, for counted ones). */
export function plannedFor(plan: Plan, address: string): PlannedResource | undefined {
  return (plan.planned_values.root_module.resources ?? []).find((r) => r.address === address || r.address === `${address}[0]`);
}

/** The expression of an argument, e.g. `expr(resource, 'bucket')`. */
export function expr(resource: ConfiguredResource | Record<string, unknown>, name: string): Expression {
  const expressions = 'expressions' in resource ? (resource.expressions as Record<string, unknown>) : resource;
  return (expressions[name] ?? {}) as Expression;
}

/** Resource addresses an expression refers to (`aws_s3_bucket.x.arn` -> `aws_s3_bucket.x`). */
export function referencedResources(expression: Expression): string[] {
  const addresses = (expression.references ?? []).map((r) => {
    const parts = r.replace(/\[[^\]]*\]/g, '').split('.');
    return parts[0] === 'data' ? parts.slice(0, 3).join('.') : parts.slice(0, 2).join('.');
  });
  return [...new Set(addresses)];
}

export interface PolicyStatement {
  sid: string;
  effect: string;
  actions: string[];
  /** Resources as written: literal ARNs or templates such as `${aws_s3_bucket.x.arn}/*`. */
  resources: string[];
  conditions: Array<{ test: string; variable: string; values: string[] }>;
}

/** Statements of an aws_iam_policy_document data source, as configured. */
export function policyStatements(document: ConfiguredResource): PolicyStatement[] {
  const statements = (document.expressions.statement ?? []) as Array<Record<string, unknown>>;
  return statements.map((s) => ({
    sid: String(expr(s, 'sid').constant_value ?? ''),
    effect: String(expr(s, 'effect').constant_value ?? 'Allow'),
    actions: (expr(s, 'actions').constant_value ?? []) as string[],
    resources: (expr(s, 'resources').constant_value ?? []) as string[],
    conditions: ((s.condition ?? []) as Array<Record<string, unknown>>).map((c) => ({
      test: String(expr(c, 'test').constant_value),
      variable: String(expr(c, 'variable').constant_value),
      values: (expr(c, 'values').constant_value ?? []) as string[],
    })),
  }));
}

/** Every string in a JSON value, with the path to it. */
export function* strings(value: unknown, at = ''): Generator<[string, string]> {
  if (typeof value === 'string') yield [at, value];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* strings(v, `${at}[${i}]`);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) yield* strings(v, at ? `${at}.${k}` : k);
}
