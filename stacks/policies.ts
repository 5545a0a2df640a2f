// IAM statements for the hosts' instance roles, as data. Each builder grants one thing on
// named resources; `validateStatements` refuses a wildcard where the action has
// resource-level permissions, so a role can never reach a bucket, secret or parameter that
// is not its own.
import { METRICS_NAMESPACE } from './metrics';
import { isToken, must } from './validate';

export interface Condition {
  readonly test: string;
  readonly variable: string;
  readonly values: string[];
}

export interface Statement {
  /** Unique within a policy; says what the statement is for. */
  readonly sid: string;
  /** @default "Allow" */
  readonly effect?: 'Allow' | 'Deny';
  readonly actions: string[];
  readonly resources: string[];
  readonly conditions?: Condition[];
}

/** Actions without resource-level permissions: `*` is the only resource they accept. */
const RESOURCELESS_ACTIONS = new Set([
  'cloudwatch:PutMetricData',
  'ssm:UpdateInstanceInformation',
  'ssmmessages:CreateControlChannel',
  'ssmmessages:CreateDataChannel',
  'ssmmessages:OpenControlChannel',
  'ssmmessages:OpenDataChannel',
  'ssm:GetCommandInvocation',
  'ssm:ListCommandInvocations',
  'autoscaling:DescribeAutoScalingInstances',
  'iam:ListOpenIDConnectProviders',
]);

/** Object actions on a bucket the app reads and writes. */
const OBJECT_READ_WRITE = ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'];

/** Read and write objects in one bucket (and list it). */
export function bucketReadWrite(sid: string, bucketArn: string): Statement[] {
  return [
    { sid: `${sid}List`, actions: ['s3:ListBucket', 's3:ListBucketMultipartUploads'], resources: [bucketArn] },
    { sid: `${sid}Objects`, actions: OBJECT_READ_WRITE, resources: [`${bucketArn}/*`] },
  ];
}

/** Read objects under a prefix of one bucket (and list it). */
export function bucketRead(sid: string, bucketArn: string, prefix = ''): Statement[] {
  return [
    { sid: `${sid}List`, actions: ['s3:ListBucket'], resources: [bucketArn] },
    { sid: `${sid}Objects`, actions: ['s3:GetObject'], resources: [`${bucketArn}/${prefix}*`] },
  ];
}

/** Read one secret's value. */
export function secretRead(sid: string, secretArn: string): Statement {
  return { sid, actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], resources: [secretArn] };
}

/**
 * The stream-token secret: read it, and give it its first value (the stacks create it empty, so
 * that no value enters the Terraform state; the first api or streamer host to boot writes one).
 */
export function streamSecretAccess(secretArn: string): Statement {
  return { sid: 'StreamTokenSecret', actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret', 'secretsmanager:PutSecretValue'], resources: [secretArn] };
}

/** Read named SSM parameters (SecureString ones decrypt with the account's aws/ssm key). */
export function parametersRead(sid: string, parameterArns: string[]): Statement {
  return { sid, actions: ['ssm:GetParameter', 'ssm:GetParameters'], resources: parameterArns };
}

/** Publish metrics, only into the cadfleet namespace. */
export function putMetrics(): Statement {
  return {
    sid: 'PublishMetrics',
    actions: ['cloudwatch:PutMetricData'],
    resources: ['*'],
    conditions: [{ test: 'StringEquals', variable: 'cloudwatch:namespace', values: [METRICS_NAMESPACE] }],
  };
}

/**
 * Session Manager shells. Written out instead of attaching AmazonSSMManagedInstanceCore,
 * which also grants ssm:GetParameter on every parameter of the account.
 */
export function sessionManager(): Statement {
  return {
    sid: 'SessionManager',
    actions: [
      'ssm:UpdateInstanceInformation',
      'ssmmessages:CreateControlChannel',
      'ssmmessages:CreateDataChannel',
      'ssmmessages:OpenControlChannel',
      'ssmmessages:OpenDataChannel',
    ],
    resources: ['*'],
  };
}

/** Connect to the cache as one ElastiCache user with IAM authentication. */
export function cacheConnect(replicationGroupArn: string, userArn: string): Statement {
  return { sid: 'CacheConnect', actions: ['elasticache:Connect'], resources: [replicationGroupArn, userArn] };
}

/**
 * Ship logs into named CloudWatch Logs groups (the stack creates them, with their retention,
 * so hosts need neither logs:CreateLogGroup nor logs:PutRetentionPolicy).
 */
export function logsWrite(logGroupArns: string[]): Statement {
  return {
    sid: 'ShipLogs',
    actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
    // The group itself (CreateLogStream, DescribeLogStreams) and its streams (PutLogEvents).
    resources: logGroupArns.flatMap((arn) => [arn, `${arn}:log-stream:*`]),
  };
}

/**
 * The ARN pattern of one auto scaling group, by name. AWS puts a generated id in the middle of
 * a group's ARN; matching it with `*` lets a policy name the group before it exists, so the
 * group can wait for the policy (depends_on) without a dependency cycle.
 */
export function autoScalingGroupArn(partition: string, region: string, account: string, groupName: string): string {
  return `arn:${partition}:autoscaling:${region}:${account}:autoScalingGroup:*:autoScalingGroupName/${groupName}`;
}

/** Finish the termination lifecycle hook of the host's own group after draining. */
export function lifecycleActions(autoScalingGroupArn: string): Statement {
  return {
    sid: 'DrainBeforeTermination',
    actions: ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'],
    resources: [autoScalingGroupArn],
  };
}

/**
 * Report the health of an instance of the host's own group: a host whose boot failed or whose
 * service stays unready marks itself `Unhealthy`, and the group replaces it (the groups use EC2
 * health checks, which see only a running machine). DescribeAutoScalingInstances tells the host
 * its group and lifecycle state; it has no resource-level permissions and returns metadata only.
 */
export function instanceHealth(autoScalingGroupArn: string): Statement[] {
  return [
    { sid: 'ReportOwnHealth', actions: ['autoscaling:SetInstanceHealth'], resources: [autoScalingGroupArn] },
    { sid: 'DescribeOwnInstance', actions: ['autoscaling:DescribeAutoScalingInstances'], resources: ['*'] },
  ];
}

/**
 * Take over one Elastic IP, for an instance (and its network interface) tagged as this
 * environment's load balancer.
 */
export function associateAddress(elasticIpArn: string, hostArnPatterns: string[], tags: Record<string, string>): Statement[] {
  return [
    { sid: 'ClaimElasticIp', actions: ['ec2:AssociateAddress'], resources: [elasticIpArn] },
    {
      sid: 'ClaimElasticIpForThisHost',
      actions: ['ec2:AssociateAddress'],
      resources: hostArnPatterns,
      conditions: Object.entries(tags).map(([key, value]) => ({ test: 'StringEquals', variable: `aws:ResourceTag/${key}`, values: [value] })),
    },
  ];
}

/** `service:Describe*`: reads of metadata only, which AWS mostly cannot scope to resources. */
export const DESCRIBE_WILDCARD = /^[a-z0-9-]+:Describe\*$/;

export interface ValidateOptions {
  /**
   * Also accept `service:Describe*` on `*`, for a role that runs `terraform plan` (every
   * resource type refreshes through its own Describe calls). Never `Get*` or `List*`, which
   * include reads of data (s3:GetObject, secretsmanager:GetSecretValue, s3:ListBucket).
   * @default false
   */
  readonly allowDescribeWildcards?: boolean;
}

/** Refuses wildcard actions, duplicate sids, and `*` resources for actions that can be scoped. */
export function validateStatements(statements: readonly Statement[], options: ValidateOptions = {}): void {
  const sids = new Set<string>();
  statements.forEach((s, i) => {
    must(/^[A-Za-z0-9]+$/.test(s.sid) && !sids.has(s.sid), `statements[${i}].sid`, 'be unique and alphanumeric', s.sid);
    sids.add(s.sid);
    must(s.actions.length > 0 && s.resources.length > 0, `statements[${i}]`, 'name at least one action and one resource', s.sid);
    // A Deny only narrows: it may name verbs (`iam:Put*`) and broad resources, never `*` alone.
    if (s.effect === 'Deny') {
      for (const action of s.actions) must(/^[a-z0-9-]+:[A-Za-z0-9]+\*?$/.test(action), `statements[${i}].actions`, 'name actions or verbs of one service', action);
      return;
    }
    for (const action of s.actions) {
      const describe = options.allowDescribeWildcards === true && DESCRIBE_WILDCARD.test(action);
      must(describe || /^[a-z0-9-]+:[A-Za-z0-9]+$/.test(action), `statements[${i}].actions`, 'name single actions (no wildcards)', action);
    }
    const scoped = s.actions.filter((a) => !RESOURCELESS_ACTIONS.has(a) && !DESCRIBE_WILDCARD.test(a));
    if (scoped.length > 0) {
      for (const resource of s.resources) {
        if (isToken(resource)) continue;
        must(resource !== '*' && !/^arn:[^:]*:[^:]*:[^:]*:[^:]*:\*$/.test(resource), `statements[${i}].resources`, `name specific resources for ${scoped.join(', ')}`, resource);
      }
    }
  });
}
