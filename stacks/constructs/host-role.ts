// The instance role of one kind of host: assumable by EC2 only, with inline policies built
// from validated statements (stacks/policies.ts) and no managed policies, so everything a
// host may do is written in this repository.
import { Construct } from 'constructs';
import { DataAwsIamPolicyDocument, IamInstanceProfile, IamRole, type IamRolePolicy } from '../aws';
import type { Statement } from '../policies';
import { must } from '../validate';
import { addInlinePolicy } from './inline-policy';

export interface HostRoleProps {
  /** Role and instance profile name, e.g. `cadfleet-staging-api`. */
  readonly name: string;
  /** What the hosts may do. */
  readonly statements: Statement[];
}

export class HostRole extends Construct {
  readonly role: IamRole;
  readonly instanceProfile: IamInstanceProfile;
  /**
   * Every inline policy of the role, as added. The hosts' groups wait for them (depends_on):
   * a host that boots before its grants exist fails its first calls.
   */
  readonly policies: IamRolePolicy[] = [];
  private readonly name: string;

  constructor(scope: Construct, id: string, props: HostRoleProps) {
    super(scope, id);
    must(/^[A-Za-z0-9+=,.@_-]{1,58}$/.test(props.name), 'name', 'be an IAM role name of at most 58 characters', props.name);
    this.name = props.name;

    const trust = new DataAwsIamPolicyDocument(this, 'trust', {
      statement: [{ actions: ['sts:AssumeRole'], principals: [{ type: 'Service', identifiers: ['ec2.amazonaws.com'] }] }],
    });
    this.role = new IamRole(this, 'role', { name: props.name, assumeRolePolicy: trust.json, description: `cadfleet hosts: ${props.name}` });
    this.instanceProfile = new IamInstanceProfile(this, 'profile', { name: props.name, role: this.role.name });
    this.addPolicy('host', props.statements);
  }

  /**
   * Adds an inline policy. With `enabled` (a Terraform boolean), the policy exists only when
   * it is true, for permissions that depend on a variable.
   */
  addPolicy(id: string, statements: Statement[], enabled?: boolean): IamRolePolicy {
    const policy = addInlinePolicy(this, id, { name: `${this.name}-${id}`, role: this.role.id, statements, enabled });
    this.policies.push(policy);
    return policy;
  }
}
