// RDS PostgreSQL: private, encrypted, TLS enforced by the server, automated backups, and a
// master password that RDS creates and keeps in Secrets Manager (and rotates), so it never
// appears in Terraform's configuration, state or outputs.
import { Op } from '../cdk';
import { DbInstance, DbParameterGroup, DbSubnetGroup } from '../aws';
import { Construct } from 'constructs';
import { bool } from '../tf';
import { isToken, must, mustBeIntegerIn } from '../validate';

export const POSTGRES_MAJOR_VERSION = '16';
export const DATABASE_NAME = 'cadfleet';
export const DATABASE_USER = 'cadfleet';

export interface DatabaseProps {
  /** Instance identifier and name prefix, e.g. `cadfleet-staging`. */
  readonly name: string;
  readonly subnetIds: string[];
  readonly securityGroupIds: string[];
  /** @default "db.t4g.small" */
  readonly instanceClass?: string;
  /** @default 20 */
  readonly allocatedStorageGb?: number;
  /** Storage grows by itself up to this. @default 100 */
  readonly maxAllocatedStorageGb?: number;
  /** A synchronous standby in another zone. @default false */
  readonly multiAz?: boolean;
  /** @default 7 */
  readonly backupRetentionDays?: number;
  /** Refuse deletion (RDS deletion protection). @default true */
  readonly deletionProtection?: boolean;
  /**
   * On destroy, take a final snapshot and keep the automated backups (RDS deletes them with the
   * instance unless told not to). Independent of deletionProtection: the documented teardown
   * turns protection off first, and must not lose the data with it. @default true
   */
  readonly keepOnDestroy?: boolean;
  /**
   * What makes the final snapshot's id unique to this incarnation of the environment (its VPC
   * id, say): `<name>-final-<suffix>`. A fixed id makes the teardown of a re-created
   * environment fail on the snapshot the first one left. @default none: `<name>-final`
   */
  readonly finalSnapshotSuffix?: string;
}

export function validateDatabaseProps(props: DatabaseProps): void {
  must(/^[a-z][a-z0-9-]{0,50}$/.test(props.name), 'name', 'be lowercase letters, digits or dashes, starting with a letter', props.name);
  if (props.instanceClass !== undefined && !isToken(props.instanceClass)) must(/^db\.[a-z0-9-]+\.[a-z0-9]+$/.test(props.instanceClass), 'instanceClass', 'be an instance class such as "db.t4g.small"', props.instanceClass);
  mustBeIntegerIn(props.allocatedStorageGb, 'allocatedStorageGb', 20, 65536);
  mustBeIntegerIn(props.backupRetentionDays, 'backupRetentionDays', 1, 35);
  must(props.subnetIds.length >= 2, 'subnetIds', 'name subnets in at least two zones (RDS requires it)', props.subnetIds);
}

export class Database extends Construct {
  readonly instance: DbInstance;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    validateDatabaseProps(props);
    const protect = props.deletionProtection ?? true;
    const keep = props.keepOnDestroy ?? true;
    const drop = isToken(keep) ? bool(Op.not(keep)) : !keep;

    const subnets = new DbSubnetGroup(this, 'subnets', { name: props.name, subnetIds: props.subnetIds });
    const parameters = new DbParameterGroup(this, 'parameters', {
      name: `${props.name}-postgres${POSTGRES_MAJOR_VERSION}`,
      family: `postgres${POSTGRES_MAJOR_VERSION}`,
      description: 'cadfleet: TLS required',
      parameter: [
        { name: 'rds.force_ssl', value: '1' },
        { name: 'log_min_duration_statement', value: '1000' },
      ],
    });

    this.instance = new DbInstance(this, 'postgres', {
      identifier: props.name,
      engine: 'postgres',
      engineVersion: POSTGRES_MAJOR_VERSION,
      instanceClass: props.instanceClass ?? 'db.t4g.small',
      dbName: DATABASE_NAME,
      username: DATABASE_USER,
      manageMasterUserPassword: true,
      port: 5432,
      allocatedStorage: props.allocatedStorageGb ?? 20,
      maxAllocatedStorage: props.maxAllocatedStorageGb ?? 100,
      storageType: 'gp3',
      storageEncrypted: true,
      dbSubnetGroupName: subnets.name,
      vpcSecurityGroupIds: props.securityGroupIds,
      parameterGroupName: parameters.name,
      publiclyAccessible: false,
      multiAz: props.multiAz ?? false,
      backupRetentionPeriod: props.backupRetentionDays ?? 7,
      backupWindow: '03:00-04:00',
      maintenanceWindow: 'sun:04:30-sun:05:30',
      copyTagsToSnapshot: true,
      autoMinorVersionUpgrade: true,
      caCertIdentifier: 'rds-ca-rsa2048-g1',
      deletionProtection: protect,
      skipFinalSnapshot: drop,
      deleteAutomatedBackups: drop,
      finalSnapshotIdentifier: props.finalSnapshotSuffix === undefined ? `${props.name}-final` : `${props.name}-final-${props.finalSnapshotSuffix}`,
      applyImmediately: false,
    });
  }

  /** ARN of the Secrets Manager secret RDS keeps the master credentials in. */
  get secretArn(): string {
    return this.instance.masterUserSecret.get(0).secretArn;
  }
}
