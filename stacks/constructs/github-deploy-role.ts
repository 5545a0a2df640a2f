// The role GitHub Actions assumes to deploy one environment, with no long-lived keys: the
// job presents GitHub's OIDC token, and AWS lets it in only when the token's subject is
// exactly this repository's deploy environment. A job that names an environment gets the
// subject `repo:<owner>/<repo>:environment:<name>` (not the branch), so the environment's
// protection rules in GitHub (required reviewers, allowed branches) decide which runs may
// deploy. The subject is compared with StringEquals: no wildcard can widen it.
import { Fn, Op, Token } from '../cdk';
import { DataAwsIamOpenidConnectProvider, DataAwsIamPolicyDocument, IamPolicy, IamRole, IamRolePolicyAttachment } from '../aws';
import { Construct } from 'constructs';
import { GITHUB_OIDC_HOST } from '../deploy-policy';
import { validateStatements, type Statement } from '../policies';
import { bool, countIf, isEmpty, only } from '../tf';
import { isToken, must, mustBeIntegerIn } from '../validate';
import { toDocumentStatement } from './inline-policy';

export { GITHUB_OIDC_HOST };
/** The audience aws-actions/configure-aws-credentials asks GitHub to put in the token. */
export const GITHUB_OIDC_AUDIENCE = 'sts.amazonaws.com';

/** GitHub owner/repo: an owner of up to 39 letters, digits and single dashes, a repository of letters, digits, ., _ and -. */
export const GITHUB_REPOSITORY_PATTERN = '^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}/[A-Za-z0-9._-]{1,100}$';
/** GitHub environment names as they can appear in the token subject (no `:`, no wildcards). */
export const GITHUB_ENVIRONMENT_PATTERN = '^[A-Za-z0-9._-]{1,255}$';
/** An IAM OIDC provider for GitHub Actions, in any partition. */
export const GITHUB_OIDC_PROVIDER_ARN_PATTERN = '^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$';

/**
 * Seconds a deploy job's session may last: the first apply of an environment waits for RDS and
 * ElastiCache (each many minutes to create), then for the groups' first hosts, and the upgrade
 * that follows rolls every host behind a health gate, after waiting up to 20 minutes for the
 * deploy lock. Three hours, which is also the deploy workflow's job timeout and the
 * `role-duration-seconds` it asks for (test/workflows/workflows.test.ts checks they agree).
 */
export const DEPLOY_SESSION_SECONDS = 10_800;

/** The `sub` claim GitHub puts in the token of a job that runs in `environment`. */
export const githubSubject = (repository: string, environment: string): string => `repo:${repository}:environment:${environment}`;

export interface GithubDeployRoleProps {
  /** Role name, e.g. `cadfleet-staging-deploy`. */
  readonly name: string;
  /** `owner/repo`, exactly as GitHub spells it (the claim is compared case-sensitively). */
  readonly repository: string;
  /** The GitHub environment whose jobs may assume the role. */
  readonly deployEnvironment: string;
  /**
   * ARN of the account's GitHub OIDC provider; empty or unset: looked up by its URL at plan
   * time. The provider is the account's, not an environment's (IAM allows one per URL per
   * account): no environment's state owns it, so destroying one environment leaves the others'
   * deploys working. It is created once per account (docs/aws.md). @default look it up
   */
  readonly existingProviderArn?: string;
  /**
   * What the role may do, as customer-managed policies named `<name>-<key>` (a role's inline
   * policies share one 10,240-character budget; a managed policy has 6,144 of its own).
   * `service:Describe*` on `*` is accepted here: terraform plan refreshes through them.
   */
  readonly policies: Record<string, Statement[]>;
  /** A Terraform boolean: create the role (and provider) only when true. @default always */
  readonly enabled?: boolean;
  /**
   * Longest session the workflow may ask for (IAM allows 1 to 12 hours). Terraform applies that
   * create or modify the database can take longer than an hour. @default DEPLOY_SESSION_SECONDS (3 hours)
   */
  readonly maxSessionSeconds?: number;
}

export function validateGithubDeployRoleProps(props: GithubDeployRoleProps): void {
  must(/^[A-Za-z0-9+=,.@_-]{1,64}$/.test(props.name), 'name', 'be an IAM role name of at most 64 characters', props.name);
  if (!isToken(props.repository)) must(new RegExp(GITHUB_REPOSITORY_PATTERN).test(props.repository), 'repository', 'be "owner/repo" (no wildcards)', props.repository);
  if (!isToken(props.deployEnvironment)) {
    must(new RegExp(GITHUB_ENVIRONMENT_PATTERN).test(props.deployEnvironment), 'deployEnvironment', 'be a GitHub environment name (letters, digits, ., _, -)', props.deployEnvironment);
  }
  const existing = props.existingProviderArn ?? '';
  if (!isToken(existing) && existing !== '') {
    must(new RegExp(GITHUB_OIDC_PROVIDER_ARN_PATTERN).test(existing), 'existingProviderArn', `be the ARN of an IAM OIDC provider for ${GITHUB_OIDC_HOST}`, existing);
  }
  mustBeIntegerIn(props.maxSessionSeconds, 'maxSessionSeconds', 3600, 43200);
  const keys = Object.keys(props.policies);
  must(keys.length >= 1 && keys.length <= 10, 'policies', 'name 1 to 10 policies (IAM attaches at most 10 to a role)', keys);
  for (const key of keys) {
    must(/^[a-z][a-z0-9-]{0,30}$/.test(key), 'policies', 'have keys of lowercase letters, digits and dashes', key);
    validateStatements(props.policies[key]!, { allowDescribeWildcards: true });
  }
}

/**
 * The logical id under which earlier versions of the stacks created the provider. A `removed`
 * block drops it from such a state without deleting it: the account keeps its provider.
 */
export const FORMER_PROVIDER_ADDRESS = 'aws_iam_openid_connect_provider.github-deploy_github_452E3DB1';

export class GithubDeployRole extends Construct {
  /** The lookup of the account's provider; not read (count 0) when its ARN is given or the role is off. */
  readonly provider: DataAwsIamOpenidConnectProvider;
  readonly role: IamRole;
  readonly policies: Record<string, IamPolicy>;
  /** ARN of the role (null when it is off). */
  readonly roleArn: string;

  constructor(scope: Construct, id: string, props: GithubDeployRoleProps) {
    super(scope, id);
    validateGithubDeployRoleProps(props);
    const enabled = props.enabled ?? true;
    const existing = props.existingProviderArn ?? '';
    const lookUp = isToken(existing) ? bool(Op.and(isEmpty(existing), enabled)) : existing === '' && enabled;
    const count = countIf(enabled);

    // A missing provider fails the plan here, before anything is created; docs/aws.md has the
    // one command that creates it.
    this.provider = new DataAwsIamOpenidConnectProvider(this, 'github-provider', {
      count: countIf(lookUp),
      url: `https://${GITHUB_OIDC_HOST}`,
    });
    const providerArn = Token.asString(Fn.coalesce([existing, only(this.provider, 'arn')]));

    const trust = new DataAwsIamPolicyDocument(this, 'trust', {
      count,
      statement: [
        {
          sid: 'GithubDeployEnvironment',
          effect: 'Allow',
          actions: ['sts:AssumeRoleWithWebIdentity'],
          principals: [{ type: 'Federated', identifiers: [providerArn] }],
          condition: [
            { test: 'StringEquals', variable: `${GITHUB_OIDC_HOST}:aud`, values: [GITHUB_OIDC_AUDIENCE] },
            { test: 'StringEquals', variable: `${GITHUB_OIDC_HOST}:sub`, values: [githubSubject(props.repository, props.deployEnvironment)] },
          ],
        },
      ],
    });
    this.role = new IamRole(this, 'role', {
      count,
      name: props.name,
      description: `GitHub Actions deploys from ${props.repository}, environment ${props.deployEnvironment}`,
      assumeRolePolicy: only(trust, 'json'),
      maxSessionDuration: props.maxSessionSeconds ?? DEPLOY_SESSION_SECONDS,
    });
    this.roleArn = only(this.role, 'arn');
    this.policies = {};
    for (const [key, statements] of Object.entries(props.policies)) {
      const document = new DataAwsIamPolicyDocument(this, `${key}-document`, { count, statement: statements.map(toDocumentStatement) });
      const policy = new IamPolicy(this, `${key}-policy`, {
        count,
        name: `${props.name}-${key}`,
        description: `What ${props.name} may do: ${key}`,
        policy: only(document, 'json'),
      });
      new IamRolePolicyAttachment(this, `${key}-attachment`, { count, role: only(this.role, 'name'), policyArn: only(policy, 'arn') });
      this.policies[key] = policy;
    }
  }
}
