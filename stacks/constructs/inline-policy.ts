// An inline IAM policy on a role, built from validated statements (stacks/policies.ts): a
// policy document data source and the role policy, optionally present only when a Terraform
// condition holds.
import type { Construct } from 'constructs';
import { DataAwsIamPolicyDocument, type DataAwsIamPolicyDocumentStatement, IamRolePolicy } from '../aws';
import { countIf, only } from '../tf';
import { validateStatements, type Statement, type ValidateOptions } from '../policies';

export interface InlinePolicyProps {
  /** Policy name, unique on the role. */
  readonly name: string;
  /** Id (name) of the role. */
  readonly role: string;
  readonly statements: Statement[];
  /** A Terraform boolean: the policy exists only when it is true. @default always */
  readonly enabled?: boolean;
  /** @default no wildcards at all */
  readonly validate?: ValidateOptions;
}

export const toDocumentStatement = (s: Statement): DataAwsIamPolicyDocumentStatement => ({
  sid: s.sid,
  effect: s.effect ?? 'Allow',
  actions: s.actions,
  resources: s.resources,
  condition: s.conditions?.map((c) => ({ test: c.test, variable: c.variable, values: c.values })),
});

/** Adds `<id>-document` and `<id>-policy` to `scope`. */
export function addInlinePolicy(scope: Construct, id: string, props: InlinePolicyProps): IamRolePolicy {
  validateStatements(props.statements, props.validate);
  const count = props.enabled === undefined ? undefined : countIf(props.enabled);
  const document = new DataAwsIamPolicyDocument(scope, `${id}-document`, { count, statement: props.statements.map(toDocumentStatement) });
  return new IamRolePolicy(scope, `${id}-policy`, {
    count,
    name: props.name,
    role: props.role,
    policy: count === undefined ? document.json : only(document, 'json'),
  });
}
