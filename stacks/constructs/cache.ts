// ElastiCache Redis for the BullMQ queue, progress and the node registry. Private subnets,
// TLS required, encrypted at rest, and no password anywhere: the app signs in as an
// ElastiCache user with IAM authentication (short-lived tokens from its instance role), so
// no secret passes through Terraform or its state. maxmemory-policy is noeviction because
// an evicting Redis silently deletes queued jobs.
import { Op, Token } from '../cdk';
import { ElasticacheParameterGroup, ElasticacheReplicationGroup, ElasticacheSubnetGroup, ElasticacheUser, ElasticacheUserGroup } from '../aws';
import { Construct } from 'constructs';
import { bool } from '../tf';
import { isToken, must, mustBeIntegerIn } from '../validate';

export interface CacheProps {
  /** Replication group id and name prefix, e.g. `cadfleet-staging` (at most 30 characters). */
  readonly name: string;
  readonly subnetIds: string[];
  readonly securityGroupIds: string[];
  /** @default "cache.t4g.small" */
  readonly nodeType?: string;
  /** Read replicas; with one or more, failover is automatic and spread over zones. @default 1 */
  readonly replicas?: number;
  /** Days of daily snapshots. @default 1 */
  readonly snapshotRetentionDays?: number;
}

/** Redis OSS with IAM authentication needs 7.0 or later. */
export const REDIS_ENGINE_VERSION = '7.1';
export const REDIS_PARAMETER_FAMILY = 'redis7';

export function validateCacheProps(props: CacheProps): void {
  must(/^[a-z][a-z0-9-]{0,29}$/.test(props.name), 'name', 'be at most 30 lowercase letters, digits or dashes, starting with a letter', props.name);
  if (props.nodeType !== undefined && !isToken(props.nodeType)) must(/^cache\.[a-z0-9-]+\.[a-z0-9]+$/.test(props.nodeType), 'nodeType', 'be a node type such as "cache.t4g.small"', props.nodeType);
  mustBeIntegerIn(props.replicas, 'replicas', 0, 5);
  mustBeIntegerIn(props.snapshotRetentionDays, 'snapshotRetentionDays', 0, 35);
  must(props.subnetIds.length > 0, 'subnetIds', 'name at least one subnet', props.subnetIds);
}

export class Cache extends Construct {
  readonly replicationGroup: ElasticacheReplicationGroup;
  /** The user the app connects as (IAM authentication: user id = user name). */
  readonly appUser: ElasticacheUser;

  constructor(scope: Construct, id: string, props: CacheProps) {
    super(scope, id);
    validateCacheProps(props);
    const replicas = props.replicas ?? 1;
    const multiZone = isToken(replicas) ? bool(Op.gte(replicas, 1)) : replicas > 0;

    const subnets = new ElasticacheSubnetGroup(this, 'subnets', { name: props.name, subnetIds: props.subnetIds });
    const parameters = new ElasticacheParameterGroup(this, 'parameters', {
      name: `${props.name}-redis7`,
      family: REDIS_PARAMETER_FAMILY,
      description: 'cadfleet: never evict keys (BullMQ keeps jobs in keys)',
      parameter: [{ name: 'maxmemory-policy', value: 'noeviction' }],
    });

    // Every user group needs a user named "default"; this one is switched off.
    const disabledDefault = new ElasticacheUser(this, 'default-user', {
      userId: `${props.name}-default`,
      userName: 'default',
      engine: 'redis',
      accessString: 'off -@all',
      authenticationMode: { type: 'no-password-required' },
    });
    this.appUser = new ElasticacheUser(this, 'app-user', {
      userId: `${props.name}-app`,
      userName: `${props.name}-app`,
      engine: 'redis',
      // The app owns this cache: all keys, all channels, all commands ElastiCache allows.
      accessString: 'on ~* &* +@all',
      authenticationMode: { type: 'iam' },
    });
    const users = new ElasticacheUserGroup(this, 'users', {
      userGroupId: props.name,
      engine: 'redis',
      userIds: [disabledDefault.userId, this.appUser.userId],
    });

    this.replicationGroup = new ElasticacheReplicationGroup(this, 'redis', {
      replicationGroupId: props.name,
      description: `cadfleet queue, progress and node registry (${props.name})`,
      engine: 'redis',
      engineVersion: REDIS_ENGINE_VERSION,
      nodeType: props.nodeType ?? 'cache.t4g.small',
      numCacheClusters: isToken(replicas) ? Token.asNumber(Op.add(1, replicas)) : 1 + replicas,
      automaticFailoverEnabled: multiZone,
      multiAzEnabled: multiZone,
      port: 6379,
      subnetGroupName: subnets.name,
      securityGroupIds: props.securityGroupIds,
      parameterGroupName: parameters.name,
      atRestEncryptionEnabled: 'true',
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      userGroupIds: [users.userGroupId],
      snapshotRetentionLimit: props.snapshotRetentionDays ?? 1,
      autoMinorVersionUpgrade: 'true',
      applyImmediately: false,
    });
  }

  /** Address clients connect to (the primary, which moves on failover). */
  get endpoint(): string {
    return this.replicationGroup.primaryEndpointAddress;
  }
}
