// Construct props validators, synth-time configuration and the IAM statement rules: each bad
// input throws "`<name>` must ..., got ...", and each construct synthesizes its secure
// defaults (checked with cdktf's Testing matchers).
import { Testing } from '../../stacks/cdk';
import { Eip, SsmParameter } from '../../stacks/aws';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { loadStackConfig } from '../../stacks/config';
import { deployStatements } from '../../stacks/deploy-policy';
import { HEALTH_CHECK_GRACE_SECONDS } from '../../stacks/boot-timing';
import { autoScalingGroupArn, bucketRead, instanceHealth, lifecycleActions, putMetrics, sessionManager, validateStatements } from '../../stacks/policies';
import { AppFleet, type AppFleetProps } from '../../stacks/constructs/app-fleet';
import { Cache } from '../../stacks/constructs/cache';
import { Database } from '../../stacks/constructs/database';
import { DEPLOY_SESSION_SECONDS, GithubDeployRole, type GithubDeployRoleProps } from '../../stacks/constructs/github-deploy-role';
import { HostLaunchTemplate } from '../../stacks/constructs/host-launch-template';
import { LoadBalancer } from '../../stacks/constructs/load-balancer';
import { MetricAlarms, type MetricAlarmsProps } from '../../stacks/constructs/metric-alarms';
import { Network } from '../../stacks/constructs/network';
import { PrivateBucket } from '../../stacks/constructs/private-bucket';
import type { Json } from './helpers/plan';

const parse = (json: string): Record<string, Json> => JSON.parse(json) as Record<string, Json>;
const only = (synth: Record<string, Json>, type: string): Record<string, Json> => {
  const resources = Object.values(synth.resource?.[type] ?? {});
  expect(resources, type).toHaveLength(1);
  return resources[0] as Record<string, Json>;
};

describe('loadStackConfig (synth-time settings)', () => {
  it('defaults to a staging stack with local state under .cadfleet/state', () => {
    expect(loadStackConfig({}, '/repo')).toEqual({
      environment: 'staging',
      production: false,
      state: { kind: 'local', path: '/repo/.cadfleet/state/staging/terraform.tfstate' },
    });
  });

  it('puts the state in S3 under a per-environment key', () => {
    expect(loadStackConfig({ CADFLEET_ENV: 'prod', CADFLEET_STATE_BUCKET: 'acme-tfstate', AWS_REGION: 'eu-west-1' }, '/repo')).toEqual({
      environment: 'prod',
      production: true,
      state: { kind: 's3', bucket: 'acme-tfstate', key: 'cadfleet/prod/terraform.tfstate', region: 'eu-west-1' },
    });
    expect(loadStackConfig({ CADFLEET_ENV: 'qa', CADFLEET_STATE_BUCKET: 'b-1', CADFLEET_STATE_REGION: 'us-east-2', CADFLEET_STATE_KEY: 'x/qa.tfstate' }, '/r').state).toEqual({
      kind: 's3',
      bucket: 'b-1',
      key: 'x/qa.tfstate',
      region: 'us-east-2',
    });
  });

  it.each([
    [{ CADFLEET_ENV: 'Prod!' }, '`CADFLEET_ENV` must be 2 to 16 lowercase letters, digits or dashes, starting with a letter, got "Prod!"'],
    [{ CADFLEET_ENV: 'production' }, '`CADFLEET_STATE_BUCKET` must be set for the production environment "production" (state must be shared and locked), got nothing (it is not set)'],
    [{ CADFLEET_STATE_BUCKET: 'Not_A_Bucket' }, '`CADFLEET_STATE_BUCKET` must be an S3 bucket name, got "Not_A_Bucket"'],
    [{ CADFLEET_STATE_BUCKET: 'tfstate' }, '`CADFLEET_STATE_REGION` must be the AWS region of the state bucket, e.g. "eu-west-1" (or set AWS_REGION), got nothing (it is not set)'],
    [{ CADFLEET_STATE_BUCKET: 'tfstate', AWS_REGION: 'eu-west-1', CADFLEET_STATE_KEY: '/abs' }, '`CADFLEET_STATE_KEY` must be an S3 object key'],
  ])('refuses %j', (env, message) => {
    expect(() => loadStackConfig(env, '/repo')).toThrow(message);
  });
});

describe('validateStatements (instance role policies)', () => {
  it('refuses `*` for actions that can name their resources', () => {
    expect(() => validateStatements([{ sid: 'Models', actions: ['s3:GetObject'], resources: ['*'] }])).toThrow(
      '`statements[0].resources` must name specific resources for s3:GetObject, got "*"',
    );
    expect(() => validateStatements([{ sid: 'Secrets', actions: ['secretsmanager:GetSecretValue'], resources: ['arn:aws:secretsmanager:us-east-1:123456789012:*'] }])).toThrow(
      'must name specific resources for secretsmanager:GetSecretValue',
    );
  });

  it('refuses wildcard actions and duplicate statement ids', () => {
    expect(() => validateStatements([{ sid: 'All', actions: ['s3:*'], resources: ['arn:aws:s3:::b'] }])).toThrow('`statements[0].actions` must name single actions (no wildcards), got "s3:*"');
    expect(() => validateStatements([...bucketRead('A', 'arn:aws:s3:::b'), ...bucketRead('A', 'arn:aws:s3:::c')])).toThrow('`statements[2].sid` must be unique and alphanumeric, got "AList"');
  });

  it('accepts `service:Describe*` only when asked, and verbs only in a Deny', () => {
    const describe = { sid: 'Plan', actions: ['ec2:Describe*'], resources: ['*'] };
    expect(() => validateStatements([describe])).toThrow('`statements[0].actions` must name single actions (no wildcards), got "ec2:Describe*"');
    expect(() => validateStatements([describe], { allowDescribeWildcards: true })).not.toThrow();
    expect(() => validateStatements([{ sid: 'Read', actions: ['s3:Get*'], resources: ['*'] }], { allowDescribeWildcards: true })).toThrow('got "s3:Get*"');
    expect(() => validateStatements([{ sid: 'Never', effect: 'Deny', actions: ['iam:Put*'], resources: ['arn:aws:iam::1:role/x'] }])).not.toThrow();
    expect(() => validateStatements([{ sid: 'Never', effect: 'Deny', actions: ['*'], resources: ['*'] }])).toThrow('`statements[0].actions` must name actions or verbs of one service, got "*"');
  });

  it('accepts `*` only where AWS has no resource-level permissions', () => {
    expect(() => validateStatements([putMetrics(), sessionManager(), ...bucketRead('Releases', 'arn:aws:s3:::b', 'releases/')])).not.toThrow();
    expect(putMetrics().conditions).toEqual([{ test: 'StringEquals', variable: 'cloudwatch:namespace', values: ['Cadfleet'] }]);
  });

  it("grants health reports and lifecycle actions on the host's own group only, describing instances on `*`", () => {
    const own = autoScalingGroupArn('aws', 'us-east-1', '123456789012', 'cadfleet-test-worker');
    expect(own).toBe('arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/cadfleet-test-worker');
    const statements = [...instanceHealth(own), lifecycleActions(own)];
    expect(() => validateStatements(statements)).not.toThrow();
    expect(statements.map((s) => [s.actions, s.resources])).toEqual([
      [['autoscaling:SetInstanceHealth'], [own]],
      [['autoscaling:DescribeAutoScalingInstances'], ['*']],
      [['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'], [own]],
    ]);
    // Marking instances of any group unhealthy is refused.
    expect(() => validateStatements([{ sid: 'AnyGroup', actions: ['autoscaling:SetInstanceHealth'], resources: ['*'] }])).toThrow(
      '`statements[0].resources` must name specific resources for autoscaling:SetInstanceHealth, got "*"',
    );
  });
});

describe('PrivateBucket', () => {
  it('blocks public access, disables ACLs, encrypts, versions and refuses plain HTTP by default', () => {
    const synth = Testing.synthScope((scope) => {
      new PrivateBucket(scope, 'models', { namePrefix: 'cadfleet-test-models-', cors: { allowedOrigins: ['https://cad.example.com'] } });
    });
    expect(
      Testing.toHaveResourceWithProperties(synth, 'aws_s3_bucket_public_access_block', {
        block_public_acls: true,
        block_public_policy: true,
        ignore_public_acls: true,
        restrict_public_buckets: true,
      }),
    ).toBe(true);
    expect(Testing.toHaveResourceWithProperties(synth, 'aws_s3_bucket', { bucket_prefix: 'cadfleet-test-models-', force_destroy: false })).toBe(true);
    expect(Testing.toHaveResourceWithProperties(synth, 'aws_s3_bucket_ownership_controls', { rule: { object_ownership: 'BucketOwnerEnforced' } })).toBe(true);
    expect(Testing.toHaveResourceWithProperties(synth, 'aws_s3_bucket_versioning', { versioning_configuration: { status: 'Enabled' } })).toBe(true);
    const bucket = Object.keys(parse(synth).resource.aws_s3_bucket)[0];
    const document = Object.values(parse(synth).data.aws_iam_policy_document)[0] as Record<string, Json>;
    expect(document.statement).toEqual([
      {
        sid: 'DenyInsecureTransport',
        effect: 'Deny',
        principals: [{ type: '*', identifiers: ['*'] }],
        actions: ['s3:*'],
        resources: [`\${aws_s3_bucket.${bucket}.arn}`, `\${aws_s3_bucket.${bucket}.arn}/*`],
        condition: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }],
      },
    ]);
    const cors = only(parse(synth), 'aws_s3_bucket_cors_configuration');
    expect(cors.cors_rule).toEqual([
      { allowed_origins: ['https://cad.example.com'], allowed_methods: ['PUT'], allowed_headers: ['content-type', 'x-amz-*'], expose_headers: ['ETag'], max_age_seconds: 3000 },
    ]);
  });

  it.each([
    [{ namePrefix: 'b-', cors: { allowedOrigins: ['*'] } }, '`cors.allowedOrigins` must name origins such as "https://cad.example.com" (no "*", no path), got "*"'],
    [{ namePrefix: 'b-', cors: { allowedOrigins: ['https://x.example'], allowedMethods: ['DELETE'] } }, '`cors.allowedMethods` must be among GET, PUT, POST, HEAD, got "DELETE"'],
    [{ namePrefix: 'a-very-long-bucket-name-prefix-over-37-chars-' }, '`namePrefix` must be at most 37 lowercase letters'],
    [{}, '`bucketName` must be set, or namePrefix, got undefined'],
    [{ namePrefix: 'b-', noncurrentVersionDays: 0 }, '`noncurrentVersionDays` must be a whole number from 1 to 3650, got 0'],
  ])('refuses %j', (props, message) => {
    expect(() => Testing.synthScope((scope) => new PrivateBucket(scope, 'b', props))).toThrow(message);
  });
});

describe('Network', () => {
  it('spans two zones with public and private subnets, one NAT gateway per mode, and an S3 endpoint', () => {
    const synth = parse(
      Testing.synthScope((scope) => {
        new Network(scope, 'net', { name: 'cadfleet-test', cidr: '10.40.0.0/16', availabilityZones: ['us-east-1a', 'us-east-1b'], natGatewayMode: 'per_az', region: 'us-east-1' });
      }),
    );
    const subnets = Object.values(synth.resource.aws_subnet) as Array<Record<string, Json>>;
    expect(subnets.map((s) => [s.tags['cadfleet:tier'], s.cidr_block, s.map_public_ip_on_launch]).sort((a, b) => String(a[1]).localeCompare(String(b[1])))).toEqual([
      ['public', '${cidrsubnet("10.40.0.0/16", 4, 0)}', false],
      ['public', '${cidrsubnet("10.40.0.0/16", 4, 1)}', false],
      ['private', '${cidrsubnet("10.40.0.0/16", 4, 8)}', false],
      ['private', '${cidrsubnet("10.40.0.0/16", 4, 9)}', false],
    ]);
    expect(only(synth, 'aws_nat_gateway').count).toBe('${("per_az" == "per_az") ? 2 : 1}');
    expect(only(synth, 'aws_vpc_endpoint')).toMatchObject({ service_name: 'com.amazonaws.us-east-1.s3', vpc_endpoint_type: 'Gateway' });
    expect(only(synth, 'aws_default_security_group').ingress).toBeUndefined();
  });

  it.each([
    [{ zoneCount: 1 }, '`zoneCount` must be a whole number from 2 to 6, got 1'],
    [{ natGatewayMode: 'none' }, '`natGatewayMode` must be "single" or "per_az", got "none"'],
    [{ availabilityZones: ['us-east-1a'] }, '`availabilityZones` must list at least 2 zones, got ["us-east-1a"]'],
  ])('refuses %j', (props, message) => {
    const base = { name: 'n', cidr: '10.0.0.0/16', availabilityZones: ['a', 'b'], region: 'us-east-1' };
    expect(() => Testing.synthScope((scope) => new Network(scope, 'net', { ...base, ...props }))).toThrow(message);
  });
});

const hostProps = {
  name: 'cadfleet-test-worker',
  environment: 'test',
  imageId: 'ami-0123456789abcdef0',
  rootDeviceName: '/dev/xvda',
  instanceType: 'c6i.large',
  instanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/x',
  securityGroupIds: ['sg-1'],
  userData: '#!/bin/bash\ntrue\n',
};

describe('HostLaunchTemplate and AppFleet', () => {
  const fleetProps: AppFleetProps = { ...hostProps, role: 'worker', subnetIds: ['subnet-1'], minSize: 1, maxSize: 3, scaling: { kind: 'per-host', metric: 'QueueDepth', targetPerHost: 2 }, drainTimeoutSeconds: 900 };

  it('requires IMDSv2, encrypts the gp3 root volume and tags instances for the inventory', () => {
    const synth = Testing.synthScope((scope) => new HostLaunchTemplate(scope, 'lt', { ...hostProps, role: 'worker' }));
    expect(
      Testing.toHaveResourceWithProperties(synth, 'aws_launch_template', {
        metadata_options: { http_endpoint: 'enabled', http_tokens: 'required', http_put_response_hop_limit: 1, instance_metadata_tags: 'enabled' },
        block_device_mappings: [{ device_name: '/dev/xvda', ebs: { encrypted: 'true', volume_type: 'gp3', volume_size: 20, delete_on_termination: 'true' } }],
      }),
    ).toBe(true);
    const template = only(parse(synth), 'aws_launch_template');
    expect(template.tag_specifications[0]).toEqual({ resource_type: 'instance', tags: { Name: 'cadfleet-test-worker', 'cadfleet:environment': 'test', 'cadfleet:role': 'worker' } });
    expect(template.key_name).toBeUndefined();
    expect(template.vpc_security_group_ids).toEqual(['sg-1']);
  });

  it('scales on a cadfleet metric per host in service and drains on termination', () => {
    const synth = parse(Testing.synthScope((scope) => new AppFleet(scope, 'worker', fleetProps)));
    const group = only(synth, 'aws_autoscaling_group');
    expect(group.initial_lifecycle_hook).toEqual([{ name: 'drain', lifecycle_transition: 'autoscaling:EC2_INSTANCE_TERMINATING', heartbeat_timeout: 900, default_result: 'CONTINUE' }]);
    // A destroy does not wait out the hook on each host (900 s against the provider's 10 minutes).
    expect(group).toMatchObject({ force_delete: true, timeouts: { delete: '30m' } });
    expect(group.enabled_metrics).toContain('GroupInServiceInstances');
    const metrics = only(synth, 'aws_autoscaling_policy').target_tracking_configuration.customized_metric_specification.metrics;
    expect(metrics.map((m: Record<string, unknown>) => m.id)).toEqual(['fleet', 'hosts', 'perhost']);
    expect(metrics[0].metric_stat.metric).toEqual({ namespace: 'Cadfleet', metric_name: 'QueueDepth', dimensions: [{ name: 'Environment', value: 'test' }] });
  });

  it('scales on the average of a metric each host publishes for itself', () => {
    const synth = parse(Testing.synthScope((scope) => new AppFleet(scope, 'streamer', { ...fleetProps, role: 'streamer', scaling: { kind: 'host-average', metric: 'ActiveSessions', target: 50 } })));
    const tracking = only(synth, 'aws_autoscaling_policy').target_tracking_configuration;
    expect(tracking.target_value).toBe(50);
    expect(tracking.customized_metric_specification.metrics).toEqual([
      {
        id: 'perhost',
        label: 'ActiveSessions per host',
        return_data: true,
        metric_stat: { stat: 'Average', metric: { namespace: 'Cadfleet', metric_name: 'ActiveSessions', dimensions: [{ name: 'Environment', value: 'test' }] } },
      },
    ]);
  });

  it('creates the group after its boot dependencies, with the grace period of the measured boot', () => {
    const synth = parse(
      Testing.synthScope((scope) => {
        const settings = new SsmParameter(scope, 'settings', { name: '/cadfleet/test/app.env', type: 'String', value: 'A=1' });
        new AppFleet(scope, 'worker', { ...fleetProps, bootDependencies: [settings] });
      }),
    );
    const group = only(synth, 'aws_autoscaling_group');
    expect(group.depends_on).toEqual(['aws_ssm_parameter.settings']);
    expect(group).toMatchObject({ health_check_type: 'EC2', health_check_grace_period: HEALTH_CHECK_GRACE_SECONDS });
    // 60 s to user-data + 120 s of installs on Debian's own AMI + 24 s measured to healthy, a quarter more, to 30 s.
    expect(HEALTH_CHECK_GRACE_SECONDS).toBe(270);
    expect(only(parse(Testing.synthScope((scope) => new AppFleet(scope, 'worker', fleetProps))), 'aws_autoscaling_group').depends_on).toBeUndefined();
  });

  it('creates the load balancer after its Elastic IP and its boot dependencies', () => {
    const synth = parse(
      Testing.synthScope((scope) => {
        const elasticIp = new Eip(scope, 'ip', { domain: 'vpc' });
        const settings = new SsmParameter(scope, 'settings', { name: '/cadfleet/test/app.env', type: 'String', value: 'A=1' });
        new LoadBalancer(scope, 'lb', { ...hostProps, name: 'cadfleet-test-lb', subnetIds: ['subnet-1'], elasticIp, bootDependencies: [settings] });
      }),
    );
    expect(only(synth, 'aws_autoscaling_group')).toMatchObject({ depends_on: ['aws_eip.ip', 'aws_ssm_parameter.settings'], health_check_grace_period: HEALTH_CHECK_GRACE_SECONDS });
  });

  it.each([
    ['minSize 0', { minSize: 0 }, '`minSize` must be a whole number from 1 to 100, got 0'],
    ['role lb', { role: 'lb' as const }, '`role` must be an app role (api, worker, streamer), got "lb"'],
    ['a 10 s drain', { drainTimeoutSeconds: 10 }, '`drainTimeoutSeconds` must be a whole number from 30 to 7200, got 10'],
    ['a root device without /dev', { rootDeviceName: 'xvda' }, '`rootDeviceName` must be a device such as "/dev/xvda", got "xvda"'],
    ['no security group', { securityGroupIds: [] }, '`securityGroupIds` must name at least one security group, got []'],
    ['user-data over 12000 characters', { userData: 'x'.repeat(13_000) }, '`userData` must be at most 12000 characters, got "13000 characters"'],
  ])('refuses %s', (_label, props, message) => {
    expect(() => Testing.synthScope((scope) => new AppFleet(scope, 'f', { ...fleetProps, ...props }))).toThrow(message);
  });
});

describe('Cache and Database', () => {
  it('builds Redis with TLS, encryption at rest, IAM users and noeviction', () => {
    const synth = Testing.synthScope((scope) => new Cache(scope, 'cache', { name: 'cadfleet-test', subnetIds: ['s1', 's2'], securityGroupIds: ['sg'] }));
    expect(Testing.toHaveResourceWithProperties(synth, 'aws_elasticache_parameter_group', { family: 'redis7', parameter: [{ name: 'maxmemory-policy', value: 'noeviction' }] })).toBe(true);
    expect(
      Testing.toHaveResourceWithProperties(synth, 'aws_elasticache_replication_group', {
        at_rest_encryption_enabled: 'true',
        transit_encryption_enabled: true,
        transit_encryption_mode: 'required',
        num_cache_clusters: 2,
        automatic_failover_enabled: true,
      }),
    ).toBe(true);
    expect(Testing.toHaveResourceWithProperties(synth, 'aws_elasticache_user', { user_name: 'cadfleet-test-app', authentication_mode: { type: 'iam' } })).toBe(true);
    expect(synth).not.toMatch(/auth_token|"passwords"/);
  });

  it('builds PostgreSQL private, encrypted, TLS-only, with an RDS-managed password', () => {
    const synth = Testing.synthScope((scope) => new Database(scope, 'db', { name: 'cadfleet-test', subnetIds: ['s1', 's2'], securityGroupIds: ['sg'] }));
    expect(
      Testing.toHaveResourceWithProperties(synth, 'aws_db_instance', {
        publicly_accessible: false,
        storage_encrypted: true,
        manage_master_user_password: true,
        deletion_protection: true,
        skip_final_snapshot: false,
        delete_automated_backups: false,
        final_snapshot_identifier: 'cadfleet-test-final',
        backup_retention_period: 7,
      }),
    ).toBe(true);
    expect(only(parse(synth), 'aws_db_parameter_group').parameter).toContainEqual({ name: 'rds.force_ssl', value: '1' });
    expect(only(parse(synth), 'aws_db_instance').password).toBeUndefined();
  });

  it('keeps a final snapshot and the automated backups on destroy whatever the protection says, under an id of its own', () => {
    const db = (props: { deletionProtection?: boolean; keepOnDestroy?: boolean }) =>
      only(parse(Testing.synthScope((scope) => new Database(scope, 'db', { name: 'cadfleet-test', subnetIds: ['s1', 's2'], securityGroupIds: ['sg'], finalSnapshotSuffix: '0abc123', ...props }))), 'aws_db_instance');
    // Protection off (the documented first step of a teardown) keeps the data all the same.
    expect(db({ deletionProtection: false })).toMatchObject({ deletion_protection: false, skip_final_snapshot: false, delete_automated_backups: false, final_snapshot_identifier: 'cadfleet-test-final-0abc123' });
    expect(db({ deletionProtection: true, keepOnDestroy: false })).toMatchObject({ deletion_protection: true, skip_final_snapshot: true, delete_automated_backups: true });
  });

  it.each([
    [(scope: Construct) => new Cache(scope, 'c', { name: 'cadfleet-a-name-that-is-too-long-for-redis', subnetIds: ['s'], securityGroupIds: [] }), '`name` must be at most 30 lowercase letters'],
    [(scope: Construct) => new Cache(scope, 'c', { name: 'c', subnetIds: ['s'], securityGroupIds: [], replicas: 6 }), '`replicas` must be a whole number from 0 to 5, got 6'],
    [(scope: Construct) => new Database(scope, 'd', { name: 'db', subnetIds: ['s1'], securityGroupIds: [] }), '`subnetIds` must name subnets in at least two zones (RDS requires it), got ["s1"]'],
    [(scope: Construct) => new Database(scope, 'd', { name: 'db', subnetIds: ['s1', 's2'], securityGroupIds: [], backupRetentionDays: 0 }), '`backupRetentionDays` must be a whole number from 1 to 35, got 0'],
  ])('refuses bad props (%#)', (build, message) => {
    expect(() => Testing.synthScope(build)).toThrow(message);
  });
});

const deployProps = (policies: GithubDeployRoleProps['policies']): GithubDeployRoleProps => ({
  name: 'cadfleet-test-deploy',
  repository: 'acme/cadfleet',
  deployEnvironment: 'test',
  policies,
});

describe('GithubDeployRole', () => {
  const policies = deployStatements({
    environment: 'test',
    partition: 'aws',
    region: 'us-east-1',
    account: '123456789012',
    state: { bucket: 'tfstate', key: 'cadfleet/test/terraform.tfstate' },
    releasesBucketArn: 'arn:aws:s3:::cadfleet-test-releases-1',
    settingsParameterArn: 'arn:aws:ssm:us-east-1:123456789012:parameter/cadfleet/test/app.env',
    hostRoleNames: ['cadfleet-test-api'],
    deployRoleName: 'cadfleet-test-deploy',
  });

  it('trusts the exact subject of the repository\'s deploy environment, through the account\'s provider, looked up and never created', () => {
    const synth = parse(Testing.synthScope((scope) => new GithubDeployRole(scope, 'deploy', deployProps(policies))));
    // The provider is the account's: no environment's state owns it (destroying one would break the others' deploys).
    expect(synth.resource.aws_iam_openid_connect_provider).toBeUndefined();
    const lookup = Object.entries(synth.data.aws_iam_openid_connect_provider as Record<string, Json>);
    expect(lookup).toHaveLength(1);
    expect(lookup[0]![1]).toMatchObject({ url: 'https://token.actions.githubusercontent.com', count: '${true ? 1 : 0}' });
    const trust = synth.data.aws_iam_policy_document[Object.keys(synth.data.aws_iam_policy_document).find((k) => k.includes('trust'))!];
    expect(trust.statement[0].principals[0].identifiers).toEqual([`\${coalesce("", one(data.aws_iam_openid_connect_provider.${lookup[0]![0]}[*].arn))}`]);
    expect(trust.statement[0].condition).toEqual([
      { test: 'StringEquals', variable: 'token.actions.githubusercontent.com:aud', values: ['sts.amazonaws.com'] },
      { test: 'StringEquals', variable: 'token.actions.githubusercontent.com:sub', values: ['repo:acme/cadfleet:environment:test'] },
    ]);
    expect(Object.values(synth.resource.aws_iam_policy).map((p) => (p as Json).name).sort()).toEqual(['cadfleet-test-deploy-access', 'cadfleet-test-deploy-compute', 'cadfleet-test-deploy-services']);
    // Long enough for a first apply with RDS and ElastiCache, then an upgrade (the deploy workflow asks for as much).
    expect(only(synth, 'aws_iam_role').max_session_duration).toBe(DEPLOY_SESSION_SECONDS);
  });

  it('takes the provider\'s ARN when given, and then does not look it up', () => {
    const arn = 'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com';
    const synth = parse(Testing.synthScope((scope) => new GithubDeployRole(scope, 'deploy', { ...deployProps(policies), existingProviderArn: arn })));
    expect(Object.values(synth.data.aws_iam_openid_connect_provider as Record<string, Json>).map((d) => d.count)).toEqual(['${false ? 1 : 0}']);
    expect(synth.resource.aws_iam_openid_connect_provider).toBeUndefined();
  });

  it.each([
    [{ repository: 'acme/*' }, '`repository` must be "owner/repo" (no wildcards), got "acme/*"'],
    [{ repository: 'acme' }, '`repository` must be "owner/repo" (no wildcards), got "acme"'],
    [{ deployEnvironment: 'prod*' }, '`deployEnvironment` must be a GitHub environment name (letters, digits, ., _, -), got "prod*"'],
    [{ existingProviderArn: 'arn:aws:iam::123456789012:oidc-provider/gitlab.com' }, '`existingProviderArn` must be the ARN of an IAM OIDC provider for token.actions.githubusercontent.com'],
    [{ maxSessionSeconds: 60 }, '`maxSessionSeconds` must be a whole number from 3600 to 43200, got 60'],
    [{ policies: { access: [{ sid: 'All', actions: ['*:*'], resources: ['*'] }] } }, '`statements[0].actions` must name single actions (no wildcards), got "*:*"'],
    [{ policies: { access: [{ sid: 'Objects', actions: ['s3:PutObject'], resources: ['*'] }] } }, '`statements[0].resources` must name specific resources for s3:PutObject, got "*"'],
  ])('refuses %j', (props, message) => {
    expect(() => Testing.synthScope((scope) => new GithubDeployRole(scope, 'deploy', { ...deployProps(policies), ...props }))).toThrow(message);
  });
});

describe('MetricAlarms', () => {
  const props: MetricAlarmsProps = {
    name: 'cadfleet-test',
    environment: 'test',
    alarms: [{ metric: 'QueueDepth', suffix: 'high', statistic: 'Maximum', threshold: 8, evaluationPeriods: 15, description: 'backlog' }],
  };

  it('alarms on the cadfleet metric in its namespace and dimension; mails only when an address is given', () => {
    const quiet = parse(Testing.synthScope((scope) => new MetricAlarms(scope, 'alarms', props)));
    expect(only(quiet, 'aws_cloudwatch_metric_alarm')).toMatchObject({
      alarm_name: 'cadfleet-test-QueueDepth-high',
      namespace: 'Cadfleet',
      metric_name: 'QueueDepth',
      dimensions: { Environment: 'test' },
      threshold: 8,
      evaluation_periods: 15,
      treat_missing_data: 'missing',
    });
    expect(only(quiet, 'aws_sns_topic').count).toBe('${false ? 1 : 0}');
    const loud = parse(Testing.synthScope((scope) => new MetricAlarms(scope, 'alarms', { ...props, notificationEmail: 'ops@example.com' })));
    expect(only(loud, 'aws_sns_topic_subscription')).toMatchObject({ protocol: 'email', endpoint: 'ops@example.com' });
    expect(only(loud, 'aws_sns_topic').name).toBe('cadfleet-test-alarms');
  });

  it('alarms on the fleet total of a per-host metric: its average times the hosts in service', () => {
    const alarm = { metric: 'ActiveSessions', suffix: 'near-capacity', statistic: 'Average' as const, threshold: 160, evaluationPeriods: 5, perHostOfGroup: 'cadfleet-test-streamer', description: 'full' };
    const synth = parse(Testing.synthScope((scope) => new MetricAlarms(scope, 'alarms', { ...props, alarms: [alarm] })));
    const planned = only(synth, 'aws_cloudwatch_metric_alarm');
    expect(planned.metric_name).toBeUndefined();
    expect(planned.metric_query.map((q: Json) => [q.id, q.expression ?? q.metric.metric_name])).toEqual([
      ['perhost', 'ActiveSessions'],
      ['hosts', 'GroupInServiceInstances'],
      ['fleet', 'perhost * hosts'],
    ]);
    expect(planned.metric_query[1].metric.dimensions).toEqual({ AutoScalingGroupName: 'cadfleet-test-streamer' });
  });

  it.each([
    [{ metric: 'QueueLength' }, '`alarms[0].metric` must be a cadfleet metric (QueueDepth, OldestJobAgeSeconds, ActiveSessions, Http5xx), got "QueueLength"'],
    [{ periodSeconds: 45 }, '`alarms[0].periodSeconds` must be 10, 30 or a multiple of 60, got 45'],
    [{ evaluationPeriods: 0 }, '`alarms[0].evaluationPeriods` must be a whole number from 1 to 1440, got 0'],
    [{ threshold: -1 }, '`alarms[0].threshold` must be a number of at least 0, got -1'],
    [{ periodSeconds: 3600, evaluationPeriods: 48 }, '`alarms[0]` must evaluate at most one day (periodSeconds x evaluationPeriods), got 172800'],
  ])('refuses %j', (alarm, message) => {
    expect(() => Testing.synthScope((scope) => new MetricAlarms(scope, 'a', { ...props, alarms: [{ ...props.alarms[0]!, ...alarm }] }))).toThrow(message);
  });
});
