// What the GitHub Actions deploy role may do, as data: run terraform for this one stack,
// publish releases, and reach this environment's hosts through Session Manager. Every
// statement names this environment's resources by ARN (names start with cadfleet-<env>) or,
// for EC2, which has no names to match, by the cadfleet:environment tag that the provider's
// default tags put on everything it creates. Where AWS offers no resource-level permission
// (Describe calls, command results) the resource is `*`, and only reads are there.
//
// Deliberately missing, so that these changes need an administrator:
// - deleting the database, the cache's replication group or a bucket (data), and creating
//   service-linked roles (the first apply, by an administrator, creates them);
// - iam:UpdateAssumeRolePolicy, and every IAM write on the deploy role, its policies and the
//   GitHub OIDC provider (the role cannot widen its own rights or trust);
// - reading secrets: no secretsmanager:GetSecretValue, and ssm:GetParameter only on the app
//   settings and the two AMI ids (not the TLS key or the converter licence under the same path).
// Known limit: the role may change the hosts' inline policies (terraform manages them), and
// hosts run with those rights; a permissions boundary on the host roles would cap that.
import { DEPLOY_LOCK_KEY, SSH_SESSION_DOCUMENT, TAG_ENVIRONMENT, hostImageParameterName, pinnedImageParameterName, streamSecretName } from './contract';
import type { Condition, Statement } from './policies';

export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';

export interface DeployPolicyProps {
  /** Environment name: names are `cadfleet-<environment>...`, tags `cadfleet:environment`. */
  readonly environment: string;
  /** AWS partition, region and account (usually Terraform expressions). */
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  /** Remote state (the synthesized S3 backend); undefined for local state. */
  readonly state?: { readonly bucket: string; readonly key: string };
  /** The releases bucket (its name may be chosen in a variable, so by ARN). */
  readonly releasesBucketArn: string;
  /** The app settings parameter terraform writes. */
  readonly settingsParameterArn: string;
  /** Names of the hosts' IAM roles (and instance profiles), which terraform manages and EC2 may be passed. */
  readonly hostRoleNames: string[];
  /** Name of the deploy role itself. */
  readonly deployRoleName: string;
}

const tagIs = (key: 'RequestTag' | 'ResourceTag', environment: string): Condition => ({ test: 'StringEquals', variable: `aws:${key}/${TAG_ENVIRONMENT}`, values: [environment] });

/** EC2 calls that create a resource; each carries the default tags (tag on create). */
const EC2_CREATE = [
  'ec2:CreateVpc',
  'ec2:CreateSubnet',
  'ec2:CreateRouteTable',
  'ec2:CreateInternetGateway',
  'ec2:CreateNatGateway',
  'ec2:AllocateAddress',
  'ec2:CreateSecurityGroup',
  'ec2:AuthorizeSecurityGroupIngress',
  'ec2:AuthorizeSecurityGroupEgress',
  'ec2:CreateVpcEndpoint',
  'ec2:CreateLaunchTemplate',
  'ec2:CreateTags',
];

/** EC2 calls on existing resources, allowed only on resources tagged with this environment. */
const EC2_CHANGE = [
  'ec2:ModifyVpcAttribute',
  'ec2:AttachInternetGateway',
  'ec2:DetachInternetGateway',
  'ec2:CreateRoute',
  'ec2:ReplaceRoute',
  'ec2:DeleteRoute',
  'ec2:AssociateRouteTable',
  'ec2:DisassociateRouteTable',
  'ec2:ModifySubnetAttribute',
  'ec2:RevokeSecurityGroupIngress',
  'ec2:RevokeSecurityGroupEgress',
  'ec2:ModifySecurityGroupRules',
  'ec2:UpdateSecurityGroupRuleDescriptionsIngress',
  'ec2:UpdateSecurityGroupRuleDescriptionsEgress',
  'ec2:ModifyVpcEndpoint',
  'ec2:CreateLaunchTemplateVersion',
  'ec2:ModifyLaunchTemplate',
  'ec2:DeleteLaunchTemplate',
  'ec2:DeleteSecurityGroup',
  'ec2:DeleteSubnet',
  'ec2:DeleteRouteTable',
  'ec2:DeleteNatGateway',
  'ec2:DisassociateAddress',
  'ec2:ReleaseAddress',
  'ec2:DeleteVpcEndpoints',
  'ec2:DeleteInternetGateway',
  'ec2:DeleteVpc',
  'ec2:DeleteTags',
];

const S3_BUCKET_CONFIG = [
  's3:CreateBucket',
  's3:ListBucket',
  's3:GetBucketLocation',
  's3:GetBucketAcl',
  's3:GetBucketCORS',
  's3:PutBucketCORS',
  's3:GetBucketWebsite',
  's3:GetBucketVersioning',
  's3:PutBucketVersioning',
  's3:GetAccelerateConfiguration',
  's3:GetBucketRequestPayment',
  's3:GetBucketLogging',
  's3:GetLifecycleConfiguration',
  's3:PutLifecycleConfiguration',
  's3:GetReplicationConfiguration',
  's3:GetEncryptionConfiguration',
  's3:PutEncryptionConfiguration',
  's3:GetBucketObjectLockConfiguration',
  's3:GetBucketTagging',
  's3:PutBucketTagging',
  's3:GetBucketPolicy',
  's3:PutBucketPolicy',
  's3:GetBucketOwnershipControls',
  's3:PutBucketOwnershipControls',
  's3:GetBucketPublicAccessBlock',
  's3:PutBucketPublicAccessBlock',
];

const IAM_READ = ['iam:GetRole', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:ListAttachedRolePolicies', 'iam:ListInstanceProfilesForRole', 'iam:GetInstanceProfile'];

const IAM_WRITE = [
  'iam:CreateRole',
  'iam:UpdateRole',
  'iam:UpdateRoleDescription',
  'iam:TagRole',
  'iam:UntagRole',
  'iam:PutRolePolicy',
  'iam:DeleteRolePolicy',
  'iam:CreateInstanceProfile',
  'iam:TagInstanceProfile',
  'iam:UntagInstanceProfile',
  'iam:AddRoleToInstanceProfile',
  'iam:RemoveRoleFromInstanceProfile',
];

/**
 * The deploy role's statements in three policies (one would exceed IAM's size limits):
 * `access` (state, reads, releases, hosts, and what the role may never do), `compute`
 * (network, security groups, launch templates, auto scaling, the hosts' roles) and
 * `services` (buckets, database, cache, settings, alarms, log groups).
 */
export type DeployPolicies = Record<'access' | 'compute' | 'services', Statement[]>;

export function deployStatements(props: DeployPolicyProps): DeployPolicies {
  const { environment: env, partition, region, account } = props;
  const prefix = `cadfleet-${env}`;
  const arn = (service: string, resource: string, where: { region?: string; account?: string } = {}): string =>
    `arn:${partition}:${service}:${where.region ?? region}:${where.account ?? account}:${resource}`;
  const iamArn = (resource: string): string => arn('iam', resource, { region: '' });
  const s3Arn = (resource: string): string => arn('s3', resource, { region: '', account: '' });
  const access: Statement[] = [];
  const compute: Statement[] = [];
  const services: Statement[] = [];

  // --- Terraform state: this environment's state object and its lock file only ---
  if (props.state) {
    const state = s3Arn(`${props.state.bucket}/${props.state.key}`);
    access.push(
      { sid: 'StateBucketList', actions: ['s3:ListBucket'], resources: [s3Arn(props.state.bucket)] },
      { sid: 'StateReadWrite', actions: ['s3:GetObject', 's3:PutObject'], resources: [state] },
      { sid: 'StateLockFile', actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], resources: [`${state}.tflock`] },
    );
  }

  // --- Reads that terraform plan, the inventory and `cadfleet outputs` need ---
  // Describe calls have no resource-level permissions (or need them on every resource type),
  // so AWS allows them only on `*`. They return metadata, never data or secrets.
  access.push({
    sid: 'DescribeForPlan',
    actions: ['ec2:Describe*', 'autoscaling:Describe*', 'rds:Describe*', 'elasticache:Describe*', 'cloudwatch:Describe*', 'logs:Describe*', 'ssm:Describe*'],
    resources: ['*'],
  });

  // --- EC2: network, security groups, launch templates ---
  // EC2 resources have generated ids, not names: creating is allowed when the request tags
  // the new resource as this environment, changing when the resource already is. A call that
  // touches several resources (a subnet in a VPC) needs each one allowed, so the create
  // actions appear in both statements.
  // The tag is the scope; the ARN only keeps it to this account and region.
  const ec2Resources = [arn('ec2', '*/*')];
  compute.push(
    { sid: 'Ec2CreateTagged', actions: EC2_CREATE, resources: ec2Resources, conditions: [tagIs('RequestTag', env)] },
    { sid: 'Ec2ChangeTagged', actions: [...EC2_CREATE, ...EC2_CHANGE], resources: ec2Resources, conditions: [tagIs('ResourceTag', env)] },
    {
      // Creating or updating an auto scaling group with a launch template checks that the
      // caller could launch it; launches outside a launch template stay refused. The image
      // belongs to Debian's account: no account in its ARN.
      sid: 'Ec2LaunchFromTemplates',
      actions: ['ec2:RunInstances'],
      resources: [arn('ec2', '*/*'), arn('ec2', 'image/*', { account: '' })],
      conditions: [{ test: 'ArnLike', variable: 'ec2:LaunchTemplate', values: [arn('ec2', 'launch-template/*')] }],
    },
  );

  // --- Auto scaling groups, their scaling policies and lifecycle hooks ---
  compute.push({
    sid: 'AutoScalingGroups',
    actions: [
      'autoscaling:CreateAutoScalingGroup',
      'autoscaling:UpdateAutoScalingGroup',
      'autoscaling:DeleteAutoScalingGroup',
      'autoscaling:PutScalingPolicy',
      'autoscaling:DeletePolicy',
      'autoscaling:PutLifecycleHook',
      'autoscaling:DeleteLifecycleHook',
      'autoscaling:EnableMetricsCollection',
      'autoscaling:DisableMetricsCollection',
      'autoscaling:CreateOrUpdateTags',
      'autoscaling:DeleteTags',
    ],
    resources: [arn('autoscaling', `autoScalingGroup:*:autoScalingGroupName/${prefix}-*`)],
  });

  // --- IAM: the hosts' roles and instance profiles, by exact name ---
  const hostRoles = props.hostRoleNames.map((name) => iamArn(`role/${name}`));
  const hostProfiles = props.hostRoleNames.map((name) => iamArn(`instance-profile/${name}`));
  const deployRole = iamArn(`role/${props.deployRoleName}`);
  const oidcProvider = iamArn(`oidc-provider/${GITHUB_OIDC_HOST}`);
  const deployPolicies = iamArn(`policy/${props.deployRoleName}-*`);
  compute.push(
    {
      sid: 'IamRead',
      actions: [...IAM_READ, 'iam:GetOpenIDConnectProvider', 'iam:GetPolicy', 'iam:GetPolicyVersion', 'iam:ListPolicyVersions'],
      resources: [...hostRoles, ...hostProfiles, deployRole, deployPolicies, oidcProvider],
    },
    // The plan finds the account's GitHub provider by its URL (github_oidc_provider_arn unset).
    { sid: 'FindOidcProvider', actions: ['iam:ListOpenIDConnectProviders'], resources: ['*'] },
    { sid: 'IamHostRoles', actions: IAM_WRITE, resources: [...hostRoles, ...hostProfiles] },
    {
      sid: 'PassHostRolesToEc2',
      actions: ['iam:PassRole'],
      resources: hostRoles,
      conditions: [{ test: 'StringEquals', variable: 'iam:PassedToService', values: ['ec2.amazonaws.com'] }],
    },
  );

  access.push({
    // Belt and braces: even if a statement above is widened one day, the role never changes
    // its own rights (role, policies) or trust, nor the identity provider it trusts.
    sid: 'NeverChangeOwnAccess',
    effect: 'Deny',
    actions: ['iam:Create*', 'iam:Put*', 'iam:Attach*', 'iam:Detach*', 'iam:Update*', 'iam:Delete*', 'iam:Add*', 'iam:Remove*', 'iam:Tag*', 'iam:Untag*', 'iam:SetDefaultPolicyVersion'],
    resources: [deployRole, deployPolicies, oidcProvider],
  });

  // --- Buckets: configuration by terraform; releases published by the workflow ---
  const bucketNames = s3Arn(`${prefix}-*`);
  services.push({ sid: 'BucketConfiguration', actions: S3_BUCKET_CONFIG, resources: [bucketNames, props.releasesBucketArn] });
  access.push({
    sid: 'PublishReleases',
    actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
    resources: [`${props.releasesBucketArn}/releases/*`],
  });
  // The deploy lock is created only when absent (a conditional PUT) and removed by its holder.
  access.push({ sid: 'ReleaseDeployLock', actions: ['s3:DeleteObject'], resources: [`${props.releasesBucketArn}/${DEPLOY_LOCK_KEY}`] });

  // --- PostgreSQL (RDS) and its managed master password ---
  services.push(
    {
      sid: 'Database',
      actions: [
        'rds:CreateDBInstance',
        'rds:ModifyDBInstance',
        'rds:CreateDBSubnetGroup',
        'rds:ModifyDBSubnetGroup',
        'rds:CreateDBParameterGroup',
        'rds:ModifyDBParameterGroup',
        'rds:DeleteDBParameterGroup',
        'rds:AddTagsToResource',
        'rds:RemoveTagsFromResource',
        'rds:ListTagsForResource',
      ],
      resources: [arn('rds', `db:${prefix}`), arn('rds', `subgrp:${prefix}`), arn('rds', `pg:${prefix}-postgres*`), arn('rds', 'og:default:postgres-*')],
    },
    {
      // RDS creates the master password's secret in the caller's name; reading it is not allowed.
      sid: 'DatabaseManagedSecret',
      actions: ['secretsmanager:CreateSecret', 'secretsmanager:TagResource'],
      resources: [arn('secretsmanager', 'secret:rds!*')],
    },
    {
      // The stream-token secret, created empty (hosts give it its value): its metadata and tags,
      // never its value (no GetSecretValue or PutSecretValue). Secrets Manager adds a suffix to the ARN.
      sid: 'StreamTokenSecret',
      actions: [
        'secretsmanager:CreateSecret',
        'secretsmanager:DeleteSecret',
        'secretsmanager:DescribeSecret',
        'secretsmanager:UpdateSecret',
        'secretsmanager:GetResourcePolicy',
        'secretsmanager:TagResource',
        'secretsmanager:UntagResource',
      ],
      resources: [arn('secretsmanager', `secret:${streamSecretName(env)}-*`)],
    },
  );

  // --- Redis (ElastiCache): replication group, subnet and parameter groups, IAM users ---
  services.push({
    sid: 'Cache',
    actions: [
      'elasticache:CreateReplicationGroup',
      'elasticache:ModifyReplicationGroup',
      'elasticache:CreateCacheCluster',
      'elasticache:CreateCacheSubnetGroup',
      'elasticache:ModifyCacheSubnetGroup',
      'elasticache:CreateCacheParameterGroup',
      'elasticache:ModifyCacheParameterGroup',
      'elasticache:DeleteCacheParameterGroup',
      'elasticache:CreateUser',
      'elasticache:ModifyUser',
      'elasticache:CreateUserGroup',
      'elasticache:ModifyUserGroup',
      'elasticache:AddTagsToResource',
      'elasticache:RemoveTagsFromResource',
      'elasticache:ListTagsForResource',
    ],
    resources: [
      arn('elasticache', `replicationgroup:${prefix}`),
      arn('elasticache', `cluster:${prefix}-*`),
      arn('elasticache', `subnetgroup:${prefix}`),
      arn('elasticache', `parametergroup:${prefix}-redis*`),
      arn('elasticache', `user:${prefix}-*`),
      arn('elasticache', `usergroup:${prefix}`),
    ],
  });

  // --- App settings, alarms, their topic, log groups ---
  services.push(
    {
      sid: 'AppSettings',
      actions: ['ssm:PutParameter', 'ssm:GetParameter', 'ssm:GetParameters', 'ssm:AddTagsToResource', 'ssm:RemoveTagsFromResource', 'ssm:ListTagsForResource'],
      resources: [props.settingsParameterArn],
    },
    // The host AMI's id (use_host_image): read at plan time, published by the image build.
    { sid: 'HostImage', actions: ['ssm:GetParameter'], resources: [arn('ssm', `parameter${hostImageParameterName(env)}`)] },
    // The pinned Debian AMI: terraform creates it on the first apply, and deletes it when
    // ami_id or use_host_image takes over (or an operator replaces it to move to a newer image).
    {
      sid: 'PinnedImage',
      actions: ['ssm:PutParameter', 'ssm:GetParameter', 'ssm:DeleteParameter', 'ssm:AddTagsToResource', 'ssm:RemoveTagsFromResource', 'ssm:ListTagsForResource'],
      resources: [arn('ssm', `parameter${pinnedImageParameterName(env)}`)],
    },
    {
      sid: 'Alarms',
      actions: ['cloudwatch:PutMetricAlarm', 'cloudwatch:DeleteAlarms', 'cloudwatch:TagResource', 'cloudwatch:UntagResource', 'cloudwatch:ListTagsForResource'],
      resources: [arn('cloudwatch', `alarm:${prefix}-*`)],
    },
    {
      sid: 'AlarmTopic',
      actions: [
        'sns:CreateTopic',
        'sns:DeleteTopic',
        'sns:GetTopicAttributes',
        'sns:SetTopicAttributes',
        'sns:Subscribe',
        'sns:Unsubscribe',
        'sns:GetSubscriptionAttributes',
        'sns:SetSubscriptionAttributes',
        'sns:ListSubscriptionsByTopic',
        'sns:TagResource',
        'sns:UntagResource',
        'sns:ListTagsForResource',
      ],
      // Subscriptions are named <topic ARN>:<id>, so this covers them.
      resources: [arn('sns', `${prefix}-*`)],
    },
    {
      sid: 'LogGroups',
      actions: ['logs:CreateLogGroup', 'logs:DeleteLogGroup', 'logs:PutRetentionPolicy', 'logs:DeleteRetentionPolicy', 'logs:TagResource', 'logs:UntagResource', 'logs:ListTagsForResource'],
      resources: [arn('logs', `log-group:/cadfleet/${env}/*`)],
    },
  );

  // --- Reaching hosts: Session Manager, only on instances tagged with this environment ---
  // A session or command authorizes the instance and the document separately, so the tag
  // condition sits on the instance statement only.
  access.push(
    {
      sid: 'SessionsToThisEnvironment',
      actions: ['ssm:StartSession'],
      resources: [arn('ec2', 'instance/*')],
      conditions: [
        { test: 'StringEquals', variable: `ssm:resourceTag/${TAG_ENVIRONMENT}`, values: [env] },
        // Sessions must name a document this policy allows (no implicit default shell).
        { test: 'Bool', variable: 'ssm:SessionDocumentAccessCheck', values: ['true'] },
      ],
    },
    {
      sid: 'CommandsToThisEnvironment',
      actions: ['ssm:SendCommand'],
      resources: [arn('ec2', 'instance/*')],
      conditions: [{ test: 'StringEquals', variable: `ssm:resourceTag/${TAG_ENVIRONMENT}`, values: [env] }],
    },
    {
      // SSH over Session Manager (ansible, `cadfleet ssh`), a plain shell, shell commands.
      sid: 'SessionDocuments',
      actions: ['ssm:StartSession', 'ssm:SendCommand'],
      resources: [
        arn('ssm', `document/${SSH_SESSION_DOCUMENT}`, { account: '' }),
        arn('ssm', 'document/SSM-SessionManagerRunShell'),
        arn('ssm', 'document/AWS-RunShellScript', { account: '' }),
      ],
    },
    // Session ids start with the caller's session name, which IAM cannot match for a web
    // identity; sessions are short-lived and belong to this account and region.
    { sid: 'OwnSessions', actions: ['ssm:ResumeSession', 'ssm:TerminateSession'], resources: [arn('ssm', 'session/*')] },
    // Command results have no resource-level permissions.
    { sid: 'CommandResults', actions: ['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'], resources: ['*'] },
  );
  return { access, compute, services };
}
