// One AWS environment of cadfleet: network, load balancer, api/worker/streamer fleets,
// Redis, PostgreSQL and buckets, with the outputs of DESIGN.md's deployment-outputs contract;
// log groups and alarms; and the role GitHub Actions deploys it with.
import { Fn, type ITerraformDependable, LocalBackend, Op, ref, S3Backend, TerraformOutput, TerraformStack, type TerraformVariable, Token } from './cdk';
import { AwsProvider, CloudwatchLogGroup, DataAwsAmi, DataAwsAvailabilityZones, DataAwsKeyPair, DataAwsPartition, DataAwsSsmParameter, Eip, SecretsmanagerSecret, SsmParameter } from './aws';
import type { Construct } from 'constructs';
import { stackName, type StackConfig } from './config';
import {
  APP_ROLES,
  HOST_ROLES,
  PORTS,
  SSH_USER,
  TAG_ENVIRONMENT,
  TAG_ROLE,
  DRAIN_SECONDS,
  lifecycleHostVars,
  configParameterName,
  hostImageParameterName,
  pinnedImageParameterName,
  streamSecretName,
  type AppRole,
  type HostRole,
} from './contract';
import { deployStatements } from './deploy-policy';
import { METRICS, METRICS_NAMESPACE, logGroupName, type LogGroupKind } from './metrics';
import {
  associateAddress,
  autoScalingGroupArn,
  bucketRead,
  bucketReadWrite,
  cacheConnect,
  instanceHealth,
  lifecycleActions,
  logsWrite,
  parametersRead,
  putMetrics,
  secretRead,
  sessionManager,
  streamSecretAccess,
  type Statement,
} from './policies';
import { bool, countIf, isEmpty, only, splat } from './tf';
import { renderUserData } from './user-data';
import { CadfleetVariables } from './variables';
import { AppFleet, type AppFleetProps } from './constructs/app-fleet';
import { Cache } from './constructs/cache';
import { DATABASE_NAME, DATABASE_USER, Database } from './constructs/database';
import { FORMER_PROVIDER_ADDRESS, GithubDeployRole } from './constructs/github-deploy-role';
import { HostRole as HostIamRole } from './constructs/host-role';
import { LoadBalancer } from './constructs/load-balancer';
import { MetricAlarms } from './constructs/metric-alarms';
import { Network } from './constructs/network';
import { PrivateBucket } from './constructs/private-bucket';
import { SecurityGroups } from './constructs/security-groups';

/** Owner of Debian's official AMIs (https://wiki.debian.org/Cloud/AmazonEC2Image). */
export const DEBIAN_AMI_OWNER = '136693071363';
/**
 * Root device of Debian's AMIs and of the host image built from them: the launch templates map
 * the encrypted gp3 root volume there, for every image (ami_id must have its root there too).
 * The lookup of Debian's newest AMI only considers images with this root device.
 */
export const DEFAULT_ROOT_DEVICE = '/dev/xvda';


export class CadfleetStack extends TerraformStack {
  readonly variables: CadfleetVariables;

  constructor(scope: Construct, config: StackConfig) {
    super(scope, stackName(config.environment));
    const env = config.environment;
    const name = stackName(env);

    if (config.state.kind === 's3') {
      new S3Backend(this, { bucket: config.state.bucket, key: config.state.key, region: config.state.region, encrypt: true });
      // Native S3 locking (Terraform 1.10+): a lock file next to the state, no DynamoDB table.
      // The 0.21 binding predates the argument.
      this.addOverride('terraform.backend.s3.use_lockfile', true);
    } else {
      new LocalBackend(this, { path: config.state.path });
    }

    const vars = new CadfleetVariables(this, 'variables', { environment: env, production: config.production, remoteState: config.state.kind === 's3' });
    this.variables = vars;
    const region = vars.region.stringValue;

    new AwsProvider(this, 'aws', {
      region,
      defaultTags: [{ tags: { [TAG_ENVIRONMENT]: env, 'cadfleet:managed-by': 'cdktf' } }],
    });

    // Lookups that call AWS happen only when the variables leave them to AWS; an offline
    // plan sets ami_id and availability_zones.
    const zoneLookup = new DataAwsAvailabilityZones(this, 'zones', {
      count: countIf(isEmpty(vars.availabilityZones.listValue)),
      state: 'available',
      filter: [{ name: 'opt-in-status', values: ['opt-in-not-required'] }],
    });
    const zones = Token.asList(Fn.coalescelist([vars.availabilityZones.listValue, Fn.flatten(splat(zoneLookup, 'names'))]));
    // The AMI: ami_id, else the one the image recipe published in SSM, else Debian's newest as
    // the first apply found it (pinned below).
    const amiFromImage = new DataAwsSsmParameter(this, 'host-image', {
      count: countIf(Op.and(isEmpty(vars.amiId.stringValue), bool(vars.useHostImage.booleanValue))),
      name: hostImageParameterName(env),
    });
    const useDebian = Op.and(isEmpty(vars.amiId.stringValue), Op.not(bool(vars.useHostImage.booleanValue)));
    const amiLookup = new DataAwsAmi(this, 'debian', {
      count: countIf(useDebian),
      owners: [DEBIAN_AMI_OWNER],
      mostRecent: true,
      filter: [
        { name: 'name', values: ['debian-12-amd64-*'] },
        { name: 'architecture', values: ['x86_64'] },
        { name: 'virtualization-type', values: ['hvm'] },
        { name: 'root-device-type', values: ['ebs'] },
        { name: 'root-device-name', values: [DEFAULT_ROOT_DEVICE] },
      ],
    });
    // "Newest" moves whenever Debian publishes: the first apply stores the id it found here and
    // later plans ignore the lookup (ignore_changes), so the launch templates, and with them the
    // fleet, change image only when the operator says so: ami_id, use_host_image and the host
    // image parameter are the operator's own; this parameter is updated or replaced by hand.
    const pinnedImage = new SsmParameter(this, 'pinned-image', {
      count: countIf(useDebian),
      name: pinnedImageParameterName(env),
      type: 'String',
      description: `cadfleet ${env}: the Debian 12 AMI the hosts launch from, pinned at the first apply (docs/aws.md#the-image-hosts-run)`,
      insecureValue: only(amiLookup, 'id'),
      lifecycle: { ignoreChanges: ['insecure_value'] },
    });
    const imageId = Token.asString(Fn.coalesce([vars.amiId.stringValue, only(amiFromImage, 'insecure_value'), only(pinnedImage, 'insecure_value')]));
    const rootDeviceName = DEFAULT_ROOT_DEVICE;

    const network = new Network(this, 'network', {
      name,
      cidr: vars.vpcCidr.stringValue,
      availabilityZones: zones,
      natGatewayMode: vars.natGatewayMode.stringValue,
      region,
    });
    const privateSubnetIds = network.privateSubnets.map((s) => s.id);
    const publicSubnetIds = network.publicSubnets.map((s) => s.id);

    // ARNs of things named by convention. The account id comes from the VPC so that no
    // lookup (sts:GetCallerIdentity) is needed at plan time.
    const partition = new DataAwsPartition(this, 'partition').partition;
    const account = network.vpc.ownerId;
    const arn = (service: string, resource: string): string => `arn:${partition}:${service}:${region}:${account}:${resource}`;
    const parameterArn = (parameterName: string): string => arn('ssm', `parameter${parameterName}`);
    // By name, so that the hosts' grants on their own group exist before the group does.
    const groupArn = (role: HostRole): string => autoScalingGroupArn(partition, region, account, `${name}-${role}`);

    const sg = new SecurityGroups(this, 'security-groups', { name, vpcId: network.vpc.id, adminCidrs: vars.adminCidrs.listValue });
    const lbIp = new Eip(this, 'lb-ip', { domain: 'vpc', tags: { Name: `${name}-lb`, [TAG_ROLE]: 'lb' } });

    const protect = bool(vars.deletionProtection.booleanValue);
    // Teardown keeps data unless told otherwise, whatever the protection says: the documented
    // route turns protection off first. Buckets are emptied only when asked; a prod* database
    // always leaves a final snapshot and its automated backups.
    const emptyBuckets = bool(vars.emptyBucketsOnDestroy.booleanValue);
    const domainSet = CadfleetVariables.isSet(vars.domainName);
    const lbAddress = Token.asString(Fn.conditional(domainSet, vars.domainName.stringValue, lbIp.publicIp));
    const lbOrigins = Token.asList(
      Fn.conditional(domainSet, [`https://${vars.domainName.stringValue}`], [`http://${lbIp.publicIp}`, `https://${lbIp.publicIp}`]),
    );
    // One bucket for uploads (uploads/) and converted models (models/); the app takes both names.
    const models = new PrivateBucket(this, 'models', {
      namePrefix: `${name}-models-`,
      noncurrentVersionDays: 30,
      forceDestroy: emptyBuckets,
      cors: { allowedOrigins: lbOrigins, allowedMethods: ['PUT'] },
    }).bucket;
    const releasesNameSet = CadfleetVariables.isSet(vars.releasesBucketName);
    const releases = new PrivateBucket(this, 'releases', {
      bucketName: Token.asString(Fn.conditional(releasesNameSet, vars.releasesBucketName.stringValue, Token.nullValue())),
      namePrefix: Token.asString(Fn.conditional(releasesNameSet, Token.nullValue(), `${name}-releases-`)),
      // The pointer's history is the release history: keep it longer.
      noncurrentVersionDays: 90,
      forceDestroy: emptyBuckets,
    }).bucket;

    const database = new Database(this, 'database', {
      name,
      subnetIds: privateSubnetIds,
      securityGroupIds: [sg.groups.database.id],
      instanceClass: CadfleetVariables.field(vars.database, 'instance_class'),
      allocatedStorageGb: CadfleetVariables.numberField(vars.database, 'allocated_storage_gb'),
      maxAllocatedStorageGb: CadfleetVariables.numberField(vars.database, 'max_allocated_storage_gb'),
      multiAz: bool(ref(`var.database.multi_az`)),
      backupRetentionDays: CadfleetVariables.numberField(vars.database, 'backup_retention_days'),
      deletionProtection: protect,
      keepOnDestroy: config.production ? true : bool(vars.finalSnapshot.booleanValue),
      // The VPC is new each time the environment is created: so is the snapshot's name.
      finalSnapshotSuffix: Fn.replace(network.vpc.id, 'vpc-', ''),
    });
    const cache = new Cache(this, 'cache', {
      name,
      subnetIds: privateSubnetIds,
      securityGroupIds: [sg.groups.cache.id],
      nodeType: CadfleetVariables.field(vars.cache, 'node_type'),
      replicas: CadfleetVariables.numberField(vars.cache, 'replicas'),
    });

    // The app's settings: no secrets (the database password stays in Secrets Manager, Redis
    // uses IAM), so a plain String parameter that hosts read at boot.
    const configName = configParameterName(env);
    const appSettings: Record<string, string> = {
      CADFLEET_ENV: env,
      AWS_REGION: region,
      CADFLEET_DATABASE_URL: `postgres://${DATABASE_USER}@${database.instance.address}:${PORTS.postgres}/${DATABASE_NAME}?sslmode=verify-full`,
      CADFLEET_DATABASE_SECRET_ARN: database.secretArn,
      CADFLEET_REDIS_URL: `rediss://${cache.appUser.userName}@${cache.endpoint}:${PORTS.redis}`,
      CADFLEET_REDIS_AUTH: 'iam',
      CADFLEET_REDIS_IAM_CACHE_ID: cache.replicationGroup.replicationGroupId,
      CADFLEET_S3_UPLOADS_BUCKET: models.bucket,
      CADFLEET_S3_MODELS_BUCKET: models.bucket,
      CADFLEET_RELEASES_BUCKET: releases.bucket,
      CADFLEET_CONVERTER_LICENSE_PARAMETER: vars.converterLicenseParameter.stringValue,
      CADFLEET_METRICS_NAMESPACE: METRICS_NAMESPACE,
    };
    const settings = new SsmParameter(this, 'app-config', {
      name: configName,
      type: 'String',
      description: `cadfleet ${env}: app settings read by hosts at boot (no secrets)`,
      value: Object.entries(appSettings)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n'),
    });

    // Where the CloudWatch agent on every host ships journald logs and the metric records
    // (embedded metric format) it makes from the app's /metrics. Made here, with their
    // retention, so hosts only write streams.
    const logGroups = Object.fromEntries(
      (['journal', 'metrics'] as const).map((kind) => [
        kind,
        new CloudwatchLogGroup(this, `${kind}-logs`, { name: logGroupName(kind, env), retentionInDays: vars.logRetentionDays.numberValue }),
      ]),
    ) as Record<LogGroupKind, CloudwatchLogGroup>;

    // The stream tokens' HMAC key, shared by the api and the streamers. Created without a value:
    // a value given here (even write-only) would have to come from somewhere the operator keeps;
    // instead the first api or streamer host that boots generates one and puts it (stacks/user-data.ts),
    // so it is in neither the state, the plan nor the user-data. No recovery window: a secret
    // deleted with the environment is not worth keeping (the next hosts make a new one), and a
    // window would block the name for a week should the environment be made again.
    const streamSecret = new SecretsmanagerSecret(this, 'stream-token', {
      name: streamSecretName(env),
      description: `cadfleet ${env}: HMAC key of stream tokens (api and streamers; value generated by the first host, docs/aws.md)`,
      recoveryWindowInDays: 0,
    });

    // What every host may do: read the releases and its settings, publish cadfleet metrics, ship logs.
    const common: Statement[] = [
      ...bucketRead('Releases', releases.arn, 'releases/'),
      parametersRead('Settings', [settings.arn]),
      putMetrics(),
      logsWrite(Object.values(logGroups).map((g) => g.arn)),
    ];
    const cacheAccess = cacheConnect(cache.replicationGroup.arn, cache.appUser.arn);
    const appStatements: Record<AppRole, Statement[]> = {
      api: [...common, ...bucketReadWrite('Models', models.arn), secretRead('DatabaseSecret', database.secretArn), streamSecretAccess(streamSecret.arn), cacheAccess],
      worker: [...common, ...bucketReadWrite('Models', models.arn), secretRead('DatabaseSecret', database.secretArn), cacheAccess],
      // Streamers only read converted models.
      streamer: [...common, ...bucketRead('Models', models.arn, 'models/'), secretRead('DatabaseSecret', database.secretArn), streamSecretAccess(streamSecret.arn), cacheAccess],
    };
    const hostTags = (role: HostRole): Record<string, string> => ({ [TAG_ENVIRONMENT]: env, [TAG_ROLE]: role });
    const lbStatements: Statement[] = [
      ...common,
      cacheAccess,
      ...associateAddress(arn('ec2', `elastic-ip/${lbIp.allocationId}`), [arn('ec2', 'instance/*'), arn('ec2', 'network-interface/*')], hostTags('lb')),
    ];

    const roles = {} as Record<HostRole, HostIamRole>;
    for (const role of HOST_ROLES) {
      roles[role] = new HostIamRole(this, `${role}-role`, {
        name: `${name}-${role}`,
        statements: [...(role === 'lb' ? lbStatements : appStatements[role]), ...instanceHealth(groupArn(role))],
      });
      roles[role].addPolicy('session-manager', [sessionManager()], bool(vars.ssmAccess.booleanValue));
    }
    roles.worker.addPolicy(
      'converter-license',
      [parametersRead('ConverterLicense', [parameterArn(vars.converterLicenseParameter.stringValue)])],
      CadfleetVariables.isSet(vars.converterLicenseParameter),
    );
    roles.lb.addPolicy(
      'tls-certificate',
      [parametersRead('TlsCertificate', [parameterArn(vars.tlsCertificateParameter.stringValue)])],
      CadfleetVariables.isSet(vars.tlsCertificateParameter),
    );
    for (const role of APP_ROLES) {
      if (DRAIN_SECONDS[role] !== undefined) roles[role].addPolicy('drain', [lifecycleActions(groupArn(role))]);
    }

    // What a host's boot script reads by name (so no reference makes Terraform wait for it):
    // its grants, its settings, a route out. Its group is created after them; a host that
    // boots first would fail its first calls and give up. Read after the last addPolicy.
    const bootDependencies = (role: HostRole): ITerraformDependable[] => [
      ...roles[role].policies,
      roles[role].instanceProfile,
      settings,
      ...(role === 'api' || role === 'streamer' ? [streamSecret] : []),
      ...(role === 'lb' ? network.publicEgress : network.privateEgress),
    ];

    const userData = (role: HostRole): string =>
      renderUserData({
        role,
        environment: env,
        region,
        releasesBucket: releases.bucket,
        configParameter: configName,
        installSsmAgent: bool(vars.ssmAccess.booleanValue),
        elasticIpAllocationId: role === 'lb' ? lbIp.allocationId : undefined,
        tlsCertificateParameter: role === 'lb' ? vars.tlsCertificateParameter.stringValue : undefined,
        // Rendered for api and streamer hosts only (stacks/user-data.ts); by name, not ARN, so that
        // the launch templates do not wait on the secret (the group does, bootDependencies).
        streamTokenSecret: streamSecretName(env),
        // What host.yml does differently on AWS: values, the same roles as the local fleet's.
        hostVars: {
          cadfleet_provider: 'aws',
          // The CloudWatch agent's dimension and log groups (cloudwatch_agent role): every host
          // the groups launch publishes what the scaling policies read, with no deploy.
          cadfleet_environment: env,
          // What the host tells its group (ansible/roles/asg_lifecycle): its drain on scale-in, and a
          // service whose /healthz keeps failing. The LB's group of one replaces it on EC2 checks.
          ...lifecycleHostVars(role, `${name}-${role}`),
          // Every port but SSH (and the LB's HTTP/HTTPS) answers the VPC only, on top of the security groups.
          firewall_trusted_sources: [network.vpc.cidrBlock],
          common_unattended_upgrades: true,
          // Neither tls_certificate_parameter nor domain_name: a self-signed certificate (cadfleet status warns).
          nginx_lb_tls_self_signed: true,
          nginx_lb_server_name: lbAddress,
          // With domain_name and no tls_certificate_parameter: Let's Encrypt, renewed by a timer.
          nginx_lb_acme_domain: vars.domainName.stringValue,
        },
      });
    // A named key pair is looked up at plan time: a name the account (or region) does not have
    // fails the plan at once, not the groups' launches at the end of a first apply.
    const keyPair = new DataAwsKeyPair(this, 'ssh-key-pair', {
      count: countIf(Op.not(isEmpty(vars.sshKeyName.stringValue))),
      keyName: vars.sshKeyName.stringValue,
    });
    const keyName = Token.asString(Fn.conditional(isEmpty(vars.sshKeyName.stringValue), '', only(keyPair, 'key_name')));
    const hostProps = (role: HostRole) => ({
      name: `${name}-${role}`,
      environment: env,
      imageId,
      rootDeviceName,
      instanceProfileArn: roles[role].instanceProfile.arn,
      keyName,
      userData: userData(role),
    });

    const lb = new LoadBalancer(this, 'lb', {
      ...hostProps('lb'),
      instanceType: vars.lbInstanceType.stringValue,
      rootVolumeGb: 20,
      securityGroupIds: [sg.groups.lb.id],
      subnetIds: publicSubnetIds,
      elasticIp: lbIp,
      bootDependencies: bootDependencies('lb'),
    });

    const fleetVariable = { api: vars.apiFleet, worker: vars.workerFleet, streamer: vars.streamerFleet };
    const scaling: Record<AppRole, AppFleetProps['scaling']> = {
      api: { kind: 'cpu', targetPercent: 60 },
      worker: { kind: 'per-host', metric: METRICS.queueDepth, targetPerHost: CadfleetVariables.numberField(vars.workerFleet, 'jobs_per_worker') },
      streamer: { kind: 'host-average', metric: METRICS.activeSessions, target: CadfleetVariables.numberField(vars.streamerFleet, 'sessions_per_streamer') },
    };
    const fleets = {} as Record<AppRole, AppFleet>;
    for (const role of APP_ROLES) {
      const v = fleetVariable[role];
      fleets[role] = new AppFleet(this, role, {
        ...hostProps(role),
        role,
        instanceType: CadfleetVariables.field(v, 'instance_type'),
        rootVolumeGb: CadfleetVariables.numberField(v, 'root_volume_gb'),
        minSize: CadfleetVariables.numberField(v, 'min_size'),
        maxSize: CadfleetVariables.numberField(v, 'max_size'),
        securityGroupIds: [sg.groups[role].id],
        subnetIds: privateSubnetIds,
        scaling: scaling[role],
        drainTimeoutSeconds: DRAIN_SECONDS[role],
        bootDependencies: bootDependencies(role),
      });
    }

    // Alarms on the metrics the fleets scale on, with thresholds from the variables.
    const field = (variable: TerraformVariable, name: string): number => CadfleetVariables.numberField(variable, name);
    const alarm = (name: string): number => field(vars.alarms, name);
    const streamerCapacity = Op.mul(field(vars.streamerFleet, 'max_size'), field(vars.streamerFleet, 'sessions_per_streamer'));
    new MetricAlarms(this, 'alarms', {
      name,
      environment: env,
      notificationEmail: vars.alarmEmail.stringValue,
      alarms: [
        {
          metric: METRICS.queueDepth,
          suffix: 'high',
          statistic: 'Maximum',
          threshold: Token.asNumber(Fn.coalesce([alarm('queue_depth'), Op.mul(field(vars.workerFleet, 'max_size'), field(vars.workerFleet, 'jobs_per_worker'))])),
          evaluationPeriods: alarm('queue_depth_minutes'),
          description: `${env}: more jobs queued than the largest worker fleet is sized for, for too long. Are workers at max_size, failing, or not taking jobs?`,
        },
        {
          metric: METRICS.oldestJobAgeSeconds,
          suffix: 'high',
          statistic: 'Maximum',
          threshold: alarm('oldest_job_age_seconds'),
          evaluationPeriods: 5,
          description: `${env}: a conversion job has waited too long: the queue is stuck (no worker takes jobs) or far behind.`,
        },
        {
          metric: METRICS.http5xx,
          suffix: 'high',
          statistic: 'Sum',
          threshold: alarm('http_5xx_per_5_minutes'),
          periodSeconds: 300,
          evaluationPeriods: 1,
          treatMissingData: 'notBreaching',
          description: `${env}: the api or the streamers answered with many 5xx errors; read the journal log group.`,
        },
        {
          metric: METRICS.activeSessions,
          suffix: 'near-capacity',
          statistic: 'Average',
          perHostOfGroup: fleets.streamer.group.name,
          threshold: Token.asNumber(Op.div(Op.mul(streamerCapacity, alarm('sessions_capacity_percent')), 100)),
          evaluationPeriods: 5,
          description: `${env}: open sessions are near what the largest streamer fleet holds (max_size x sessions_per_streamer); raise streamer_fleet.max_size.`,
        },
      ],
    });

    // The role GitHub Actions deploys this environment with (when github_repository is set).
    const deployRoleName = `${name}-deploy`;
    // Earlier versions of the stacks created the account's OIDC provider in the first
    // environment's state; a state that has it forgets it here, and the provider stays.
    this.addOverride('removed', [{ from: FORMER_PROVIDER_ADDRESS, lifecycle: { destroy: false } }]);
    const deploy = new GithubDeployRole(this, 'github-deploy', {
      name: deployRoleName,
      enabled: CadfleetVariables.isSet(vars.githubRepository),
      repository: vars.githubRepository.stringValue,
      deployEnvironment: vars.githubDeployEnvironment.stringValue,
      existingProviderArn: vars.githubOidcProviderArn.stringValue,
      policies: deployStatements({
        environment: env,
        partition,
        region,
        account,
        state: config.state.kind === 's3' ? { bucket: config.state.bucket, key: config.state.key } : undefined,
        releasesBucketArn: releases.arn,
        settingsParameterArn: settings.arn,
        hostRoleNames: HOST_ROLES.map((role) => `${name}-${role}`),
        deployRoleName,
      }),
    });

    // Deployment outputs (DESIGN.md): the document `cadfleet outputs` builds on. No secrets:
    // the database secret's ARN names where the password is, it is not the password.
    const output = (id: string, value: unknown, description: string): void => {
      new TerraformOutput(this, id, { value, description }).overrideLogicalId(id);
    };
    output('environment', env, 'Environment name.');
    output('region', region, 'AWS region of the fleet.');
    output('lb_address', lbAddress, 'Where users reach the fleet: domain_name if set, else the Elastic IP.');
    output('lb_public_ip', lbIp.publicIp, 'Elastic IP of the load balancer (point domain_name\'s A record here).');
    output(
      'hosts',
      Object.fromEntries(
        HOST_ROLES.map((role) => [
          role,
          {
            filters: { [`tag:${TAG_ENVIRONMENT}`]: env, [`tag:${TAG_ROLE}`]: role, 'instance-state-name': 'running' },
            auto_scaling_group: role === 'lb' ? lb.group.name : fleets[role].group.name,
          },
        ]),
      ),
      'Hosts by role, as EC2 tag filters (amazon.aws.aws_ec2 inventory) and auto scaling group names.',
    );
    output(
      'redis',
      { host: cache.endpoint, port: PORTS.redis, tls: true, auth: 'iam', user: cache.appUser.userName, cache_id: cache.replicationGroup.replicationGroupId },
      'Redis (ElastiCache): TLS only, IAM authentication as `user`.',
    );
    output(
      'postgres',
      {
        host: database.instance.address,
        port: PORTS.postgres,
        database: DATABASE_NAME,
        user: DATABASE_USER,
        sslmode: 'verify-full',
        password_secret_arn: database.secretArn,
      },
      'PostgreSQL (RDS). The password is in the Secrets Manager secret password_secret_arn, managed and rotated by RDS.',
    );
    output('buckets', { uploads: models.bucket, models: models.bucket, releases: releases.bucket }, 'S3 buckets: uploads and models share one bucket (uploads/, models/); releases holds bundles and releases/current.');
    output('ssh_user', SSH_USER, 'Login user on every host.');
    output('bastion', { host: lbIp.publicIp, user: SSH_USER }, 'SSH jump host (the load balancer): private hosts accept SSH only from it.');
    output('config_parameter', configName, 'SSM parameter with the app settings hosts read at boot.');
    output('log_groups', { journal: logGroups.journal.name, metrics: logGroups.metrics.name }, "CloudWatch Logs groups: the cadfleet units' journald logs, and the metric records the CloudWatch agent makes from /metrics.");
    output('deploy_role_arn', deploy.roleArn, 'Role the GitHub deploy workflow assumes through OIDC (role-to-assume); null without github_repository.');
  }
}
