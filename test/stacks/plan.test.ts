// The whole staging stack, synthesized, then initialized, validated and planned by the real
// terraform with the real AWS provider, offline, with terraform.tfvars.example as its
// variables. The policy tests read the plan: planned values where they are known, the
// configuration (expressions and references) where they are not, such as ARNs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarizePlan, type PlanJson } from '../../cli/src/aws/plan-summary';
import { DEPLOY_SESSION_SECONDS, FORMER_PROVIDER_ADDRESS, GITHUB_OIDC_AUDIENCE, GITHUB_OIDC_HOST } from '../../stacks/constructs/github-deploy-role';
import { HEALTH_CHECK_GRACE_SECONDS } from '../../stacks/boot-timing';
import { DEPLOY_LOCK_KEY, HOST_ROLES, PORTS, TAG_ENVIRONMENT, TAG_ROLE, configParameterName, hostImageParameterName, pinnedImageParameterName, streamSecretName } from '../../stacks/contract';
import { renderBootScript } from '../../stacks/user-data';
import { METRICS, METRICS_DIMENSION, METRICS_NAMESPACE, logGroupName } from '../../stacks/metrics';
import {
  type ConfiguredResource,
  type Json,
  type Plan,
  type PolicyStatement,
  configured,
  configuredAt,
  expr,
  planned,
  plannedFor,
  policyStatements,
  referencedResources,
  strings,
} from './helpers/plan';
import { type OfflineTerraform, offlineTerraform, oneLine, terraformVersion } from './helpers/terraform';
import { ENV, config, exampleVars, repoRoot, synthStaging } from './helpers/staging';

let workDir: string;
let stackDir: string;
let offlineVars: string;
/** The account's GitHub OIDC provider, as the offline plan names it (its lookup calls AWS). */
const OIDC_PROVIDER_ARN = `arn:aws:iam::123456789012:oidc-provider/${GITHUB_OIDC_HOST}`;
let tf: OfflineTerraform;
let synthesized: Record<string, Json>;
let plan: Plan;

beforeAll(async () => {
  await terraformVersion();
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-stacks-'));
  const times: string[] = [];
  let started = performance.now();
  stackDir = synthStaging(workDir);
  times.push(`synth ${((performance.now() - started) / 1000).toFixed(1)} s`);
  synthesized = JSON.parse(fs.readFileSync(path.join(stackDir, 'cdk.tf.json'), 'utf8'));

  // Data sources would ask AWS for the AMI and the zones: the variables answer instead.
  offlineVars = path.join(workDir, 'offline.tfvars');
  // The lookups that call AWS at plan time, given instead: the AMI, the zones, the account's GitHub OIDC provider.
  fs.writeFileSync(offlineVars, `ami_id = "ami-0123456789abcdef0"\navailability_zones = ["us-east-1a", "us-east-1b"]\ngithub_oidc_provider_arn = "${OIDC_PROVIDER_ARN}"\n`);

  tf = offlineTerraform(stackDir, workDir);
  started = performance.now();
  for (const [name, args] of [
    ['init', ['init', '-input=false']],
    ['validate', ['validate']],
    ['plan', ['plan', '-input=false', '-lock=false', `-var-file=${exampleVars}`, `-var-file=${offlineVars}`, '-out=plan.bin']],
  ] as const) {
    const result = await tf.ok([...args]);
    times.push(`${name} ${result.seconds.toFixed(1)} s`);
  }
  const shown = await tf.ok(['show', '-json', 'plan.bin']);
  times.push(`show ${shown.seconds.toFixed(1)} s`, `init+validate+plan+show ${((performance.now() - started) / 1000).toFixed(1)} s`);
  plan = JSON.parse(shown.stdout) as Plan;
  console.log(`stacks offline pipeline: ${times.join(', ')}; the AWS provider from ${tf.providerSource}`);
}, 240_000);

afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

// --- helpers over this plan ------------------------------------------------------------

const valuesOf = (address: string): Record<string, Json> => (plannedFor(plan, address)?.values ?? {}) as Record<string, Json>;

/** Configured resources of a type whose `attribute` refers to `target`. */
const referring = (type: string, attribute: string, target: string): ConfiguredResource[] =>
  configured(plan, type).filter((r) => referencedResources(expr(r, attribute)).includes(target));

function bucketAddress(kind: 'models' | 'releases'): string {
  const bucket = planned(plan, 'aws_s3_bucket').find((b) => String(b.values.bucket_prefix ?? '').startsWith(`cadfleet-${ENV}-${kind}-`));
  if (!bucket) throw new Error(`no ${kind} bucket in the plan`);
  return bucket.address;
}

/** Addresses of route tables with a route to the internet gateway. */
function publicRouteTables(): Set<string> {
  return new Set(
    configured(plan, 'aws_route')
      .filter((r) => referencedResources(expr(r, 'gateway_id')).some((a) => a.startsWith('aws_internet_gateway.')))
      .flatMap((r) => referencedResources(expr(r, 'route_table_id'))),
  );
}

function privateSubnets(): Set<string> {
  const publicTables = publicRouteTables();
  const publicSubnets = new Set(
    configured(plan, 'aws_route_table_association')
      .filter((a) => referencedResources(expr(a, 'route_table_id')).some((t) => publicTables.has(t)))
      .flatMap((a) => referencedResources(expr(a, 'subnet_id'))),
  );
  return new Set(configured(plan, 'aws_subnet').map((s) => s.address).filter((a) => !publicSubnets.has(a)));
}

/** Security group address by its planned name suffix (`lb`, `api`, `database`, ...). */
function securityGroup(kind: string): string {
  const group = planned(plan, 'aws_security_group').find((g) => g.values.name === `cadfleet-${ENV}-${kind}`);
  if (!group) throw new Error(`no security group ${kind}`);
  return group.address;
}

interface RolePolicies {
  role: string;
  statements: PolicyStatement[];
}

/** The instance roles (those in an instance profile) by host role, with every inline statement. */
function instanceRolePolicies(): RolePolicies[] {
  const roleAddresses = new Set(configured(plan, 'aws_iam_instance_profile').flatMap((p) => referencedResources(expr(p, 'role'))));
  return [...roleAddresses].map((address) => {
    const name = String(valuesOf(address).name);
    const statements = referring('aws_iam_role_policy', 'role', address).flatMap((policy) =>
      referencedResources(expr(policy, 'policy'))
        .filter((a) => a.startsWith('data.aws_iam_policy_document.'))
        .flatMap((doc) => policyStatements(configuredAt(plan, doc))),
    );
    return { role: name.replace(`cadfleet-${ENV}-`, ''), statements };
  });
}

const refTo = (address: string, attribute: string): string => '${' + `${address}.${attribute}` + '}';

/** The app settings parameter, as configured, by name (the stack may own other parameters). */
const settingsParameter = (): ConfiguredResource => {
  const found = configured(plan, 'aws_ssm_parameter').find((p) => expr(p, 'name').constant_value === configParameterName(ENV));
  if (!found) throw new Error('no settings parameter in the configuration');
  return found;
};

// --- the synthesized JSON, by address ------------------------------------------------------

interface Synthesized {
  address: string;
  type: string;
  body: Record<string, Json>;
}

/** Every managed resource of cdk.tf.json, named by its address (`aws_route.network_private-0-default-route_386F73E8`). */
const synthesizedResources = (): Synthesized[] =>
  Object.entries(synthesized.resource as Record<string, Record<string, Record<string, Json>>>).flatMap(([type, byId]) =>
    Object.entries(byId).map(([id, body]) => ({ address: `${type}.${id}`, type, body })),
  );

/** Managed resources that an argument of the synthesized JSON refers to (`${aws_x.y.arn}` -> `aws_x.y`). */
function synthesizedRefs(value: unknown): string[] {
  const found = new Set<string>();
  for (const [, text] of strings(value)) for (const m of text.matchAll(/(?<![\w.])(aws_[a-z0-9_]+\.[A-Za-z0-9_-]+)/g)) found.add(m[1]!);
  return [...found];
}

function synthesizedAt(address: string): Synthesized {
  const found = synthesizedResources().find((r) => r.address === address);
  if (!found) throw new Error(`no resource ${address} in cdk.tf.json`);
  return found;
}

const onlyRef = (value: unknown, type: string): string => {
  const refs = synthesizedRefs(value).filter((r) => r.startsWith(`${type}.`));
  expect(refs, `${type} in ${JSON.stringify(value)}`).toHaveLength(1);
  return refs[0]!;
};

// --- tests ---------------------------------------------------------------------------------

describe(`the ${ENV} stack, planned offline with terraform.tfvars.example`, () => {
  it('is synthesized with a concrete S3 backend that locks with a lock file, and only the AWS provider', () => {
    expect(synthesized.terraform.backend).toEqual({
      s3: { bucket: 'cadfleet-tfstate-example', key: `cadfleet/${ENV}/terraform.tfstate`, region: 'us-east-1', encrypt: true, use_lockfile: true },
    });
    expect(Object.keys(synthesized.terraform.required_providers)).toEqual(['aws']);
    expect(synthesized.terraform.required_providers.aws.version).toBe('5.100.0');
    // The production provider block carries no credentials and no skip flags.
    expect(synthesized.provider.aws).toHaveLength(1);
    const provider = synthesized.provider.aws[0];
    expect(Object.keys(provider).sort()).toEqual(['default_tags', 'region']);
    expect(fs.readdirSync(stackDir).filter((f) => f.endsWith('_override.tf.json'))).toEqual(['offline_override.tf.json']);
  });

  it('plans the whole fleet: network, load balancer, three fleets, Redis, PostgreSQL, buckets', () => {
    const count = (type: string): number => planned(plan, type).length;
    expect(count('aws_vpc')).toBe(1);
    expect(count('aws_subnet')).toBe(4);
    expect(count('aws_nat_gateway')).toBe(1); // nat_gateway_mode = "single"
    expect(planned(plan, 'aws_vpc_endpoint').map((e) => e.values.service_name)).toEqual(['com.amazonaws.us-east-1.s3']);
    expect(planned(plan, 'aws_autoscaling_group').map((g) => g.values.name).sort()).toEqual(
      ['api', 'lb', 'streamer', 'worker'].map((r) => `cadfleet-${ENV}-${r}`),
    );
    expect(count('aws_launch_template')).toBe(4);
    expect(count('aws_elasticache_replication_group')).toBe(1);
    expect(count('aws_db_instance')).toBe(1);
    expect(count('aws_s3_bucket')).toBe(2);
    const lb = planned(plan, 'aws_autoscaling_group').find((g) => g.values.name === `cadfleet-${ENV}-lb`)!;
    expect([lb.values.min_size, lb.values.max_size]).toEqual([1, 1]);
    const fleets = Object.fromEntries(planned(plan, 'aws_autoscaling_group').map((g) => [g.values.name, [g.values.min_size, g.values.max_size]]));
    expect(fleets).toMatchObject({ [`cadfleet-${ENV}-api`]: [2, 4], [`cadfleet-${ENV}-worker`]: [1, 4], [`cadfleet-${ENV}-streamer`]: [2, 4] });
    // What `cadfleet apply` shows before it asks, from this plan: a first apply deletes nothing.
    const summary = summarizePlan(plan as unknown as PlanJson);
    expect(summary).toMatchObject({ change: 0, destroy: 0, removed: [] });
    expect(summary.add).toBe((plan.planned_values.root_module.resources ?? []).filter((r) => r.mode === 'managed').length);
  });

  it('opens only 80 and 443 to the internet, on the load balancer; never SSH or an app port', () => {
    const lb = securityGroup('lb');
    const rules = configured(plan, 'aws_vpc_security_group_ingress_rule');
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of planned(plan, 'aws_vpc_security_group_ingress_rule')) {
      const v = rule.values;
      const world = v.cidr_ipv4 === '0.0.0.0/0' || v.cidr_ipv6 === '::/0';
      if (!world) continue;
      const group = referencedResources(expr(configuredAt(plan, rule.address.replace(/\[\d+\]$/, '')), 'security_group_id'));
      expect({ rule: rule.address, group, protocol: v.ip_protocol, ports: [v.from_port, v.to_port] }).toMatchObject({ group: [lb], protocol: 'tcp' });
      expect([80, 443]).toContain(v.from_port);
      expect(v.to_port).toBe(v.from_port);
    }
    const sensitivePorts = [PORTS.ssh, PORTS.api, PORTS.streamer, PORTS.postgres, PORTS.redis];
    const openToWorld = planned(plan, 'aws_vpc_security_group_ingress_rule').filter(
      (r) => (r.values.cidr_ipv4 === '0.0.0.0/0' || r.values.cidr_ipv6 === '::/0') && sensitivePorts.some((p) => Number(r.values.from_port) <= p && p <= Number(r.values.to_port)),
    );
    expect(openToWorld).toEqual([]);
    expect(planned(plan, 'aws_security_group_rule')).toEqual([]);
    for (const group of planned(plan, 'aws_security_group')) expect(group.values.ingress ?? []).toEqual([]);
    // The VPC's default group is emptied so it cannot be attached to open a path.
    expect(planned(plan, 'aws_default_security_group')[0]?.values.ingress ?? []).toEqual([]);
  });

  it('lets SSH reach the bastion only from admin_cidrs, and private hosts only through the bastion', () => {
    const ssh = planned(plan, 'aws_vpc_security_group_ingress_rule').filter((r) => r.values.from_port === PORTS.ssh);
    const fromCidr = ssh.filter((r) => r.values.cidr_ipv4 !== null && r.values.cidr_ipv4 !== undefined);
    expect(fromCidr.map((r) => r.values.cidr_ipv4)).toEqual(['203.0.113.0/24']);
    const configuredCidrRule = configuredAt(plan, fromCidr[0]!.address.replace(/\[\d+\]$/, ''));
    expect(referencedResources(expr(configuredCidrRule, 'security_group_id'))).toEqual([securityGroup('lb')]);
    for (const role of ['api', 'worker', 'streamer']) {
      const rules = referring('aws_vpc_security_group_ingress_rule', 'security_group_id', securityGroup(role)).filter(
        (r) => expr(r, 'from_port').constant_value === PORTS.ssh,
      );
      expect(rules.map((r) => referencedResources(expr(r, 'referenced_security_group_id')))).toEqual([[securityGroup('lb')]]);
    }
  });

  it('keeps PostgreSQL private, encrypted, TLS-only and backed up, with a password RDS manages', () => {
    const [db] = planned(plan, 'aws_db_instance');
    expect(db!.values).toMatchObject({
      engine: 'postgres',
      publicly_accessible: false,
      storage_encrypted: true,
      manage_master_user_password: true,
      backup_retention_period: 7,
      deletion_protection: false, // terraform.tfvars.example: a staging environment
      // Its teardown keeps the data all the same: a final snapshot, the automated backups.
      skip_final_snapshot: false,
      delete_automated_backups: false,
    });
    // The snapshot's id is new with each incarnation of the environment (its VPC's id): a
    // re-created environment's teardown does not collide with the snapshot the last one left.
    const snapshotId = expr(configured(plan, 'aws_db_instance')[0]!, 'final_snapshot_identifier');
    expect(referencedResources(snapshotId).map((r) => r.split('.')[0])).toEqual(['aws_vpc']);
    // Buckets are not emptied by a destroy unless asked (empty_buckets_on_destroy).
    expect(planned(plan, 'aws_s3_bucket').map((b) => b.values.force_destroy)).toEqual([false, false]);
    expect(db!.values.password ?? null).toBeNull();
    const [parameters] = planned(plan, 'aws_db_parameter_group');
    expect(parameters!.values.parameter).toContainEqual(expect.objectContaining({ name: 'rds.force_ssl', value: '1' }));
    const ingress = referring('aws_vpc_security_group_ingress_rule', 'security_group_id', securityGroup('database'));
    expect(ingress.length).toBe(3);
    for (const rule of ingress) {
      expect(expr(rule, 'cidr_ipv4').constant_value).toBeUndefined();
      expect(referencedResources(expr(rule, 'referenced_security_group_id'))).toHaveLength(1);
    }
  });

  it('keeps Redis private, TLS-only, encrypted at rest, password-less (IAM users) and noeviction', () => {
    const [redis] = planned(plan, 'aws_elasticache_replication_group');
    expect(redis!.values).toMatchObject({
      engine: 'redis',
      at_rest_encryption_enabled: 'true',
      transit_encryption_enabled: true,
      transit_encryption_mode: 'required',
      automatic_failover_enabled: true,
      num_cache_clusters: 2,
    });
    expect(redis!.values.auth_token ?? null).toBeNull();
    const users = planned(plan, 'aws_elasticache_user').map((u) => u.values);
    expect(users.map((u) => [u.user_name, u.access_string, (u.authentication_mode as Array<{ type: string }>)[0]?.type]).sort()).toEqual([
      [`cadfleet-${ENV}-app`, 'on ~* &* +@all', 'iam'],
      ['default', 'off -@all', 'no-password-required'],
    ]);
    for (const user of users) expect(user.passwords ?? null).toBeNull();
    const redisConfig = configuredAt(plan, planned(plan, 'aws_elasticache_replication_group')[0]!.address);
    const parameterGroup = referencedResources(expr(redisConfig, 'parameter_group_name'))[0]!;
    expect(valuesOf(parameterGroup).parameter).toEqual([{ name: 'maxmemory-policy', value: 'noeviction' }]);
    const sources = referring('aws_vpc_security_group_ingress_rule', 'security_group_id', securityGroup('cache')).map((r) =>
      referencedResources(expr(r, 'referenced_security_group_id'))[0],
    );
    expect(sources.sort()).toEqual(['lb', 'api', 'worker', 'streamer'].map(securityGroup).sort());
  });

  it('puts the database and the cache in private subnets only', () => {
    const privateOnes = privateSubnets();
    expect(privateOnes.size).toBe(2);
    for (const type of ['aws_db_subnet_group', 'aws_elasticache_subnet_group']) {
      const [group] = configured(plan, type);
      expect(new Set(referencedResources(expr(group!, 'subnet_ids')))).toEqual(privateOnes);
    }
    for (const subnet of planned(plan, 'aws_subnet')) expect(subnet.values.map_public_ip_on_launch).toBe(false);
  });

  it('blocks public access to every bucket, encrypts it, versions it and refuses plain HTTP', () => {
    const buckets = configured(plan, 'aws_s3_bucket').map((b) => b.address);
    expect(buckets).toHaveLength(2);
    for (const bucket of buckets) {
      const [block] = referring('aws_s3_bucket_public_access_block', 'bucket', bucket);
      expect(valuesOf(block!.address)).toMatchObject({ block_public_acls: true, block_public_policy: true, ignore_public_acls: true, restrict_public_buckets: true });
      const [sse] = referring('aws_s3_bucket_server_side_encryption_configuration', 'bucket', bucket);
      const algorithm = (valuesOf(sse!.address).rule as Json[])[0].apply_server_side_encryption_by_default[0].sse_algorithm;
      expect(['AES256', 'aws:kms']).toContain(algorithm);
      const [versioning] = referring('aws_s3_bucket_versioning', 'bucket', bucket);
      expect((valuesOf(versioning!.address).versioning_configuration as Json[])[0].status).toBe('Enabled');
      const [ownership] = referring('aws_s3_bucket_ownership_controls', 'bucket', bucket);
      expect((valuesOf(ownership!.address).rule as Json[])[0].object_ownership).toBe('BucketOwnerEnforced');
      const [lifecycle] = referring('aws_s3_bucket_lifecycle_configuration', 'bucket', bucket);
      expect((valuesOf(lifecycle!.address).rule as Json[]).map((r) => r.abort_incomplete_multipart_upload[0]?.days_after_initiation)).toContain(1);
      const [policy] = referring('aws_s3_bucket_policy', 'bucket', bucket);
      const document = referencedResources(expr(policy!, 'policy')).find((a) => a.startsWith('data.'))!;
      expect(policyStatements(configuredAt(plan, document))).toEqual([
        {
          sid: 'DenyInsecureTransport',
          effect: 'Deny',
          actions: ['s3:*'],
          resources: [refTo(bucket, 'arn'), `${refTo(bucket, 'arn')}/*`],
          conditions: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }],
        },
      ]);
    }
    expect(planned(plan, 'aws_s3_bucket_acl')).toEqual([]);
  });

  it('allows browser uploads to the models bucket only from the load balancer origin, with PUT', () => {
    const [cors] = referring('aws_s3_bucket_cors_configuration', 'bucket', bucketAddress('models'));
    const rule = (expr(cors!, 'cors_rule') as unknown as Array<Record<string, unknown>>)[0]!;
    const origins = expr(rule, 'allowed_origins');
    expect(origins.references).toEqual(expect.arrayContaining(['var.domain_name', 'aws_eip.lb-ip.public_ip']));
    expect(JSON.stringify(origins.constant_value ?? '')).not.toContain('"*"');
    expect(expr(rule, 'allowed_methods').constant_value).toEqual(['PUT']);
    expect(referring('aws_s3_bucket_cors_configuration', 'bucket', bucketAddress('releases'))).toEqual([]);
  });

  it('launches hosts from ami_id, else the host image the recipe published in SSM, else the Debian 12 AMI the first apply pinned', () => {
    // The lookups are data sources read by AWS; only the one the variables call for exists.
    const image = synthesized.data.aws_ssm_parameter['host-image'] as Json;
    expect(image.name).toBe(hostImageParameterName(ENV));
    expect(image.count).toBe('${((length(var.ami_id) < 1) && var.use_host_image) ? 1 : 0}');
    const debian = synthesized.data.aws_ami.debian as Json;
    expect(debian.count).toBe('${((length(var.ami_id) < 1) && !var.use_host_image) ? 1 : 0}');
    expect(debian.most_recent).toBe(true);
    // Only images whose root is where the templates put the encrypted root volume.
    expect(debian.filter).toContainEqual({ name: 'root-device-name', values: ['/dev/xvda'] });
    // Debian's newest is stored once, by the stack, and never updated from the lookup again.
    const pin = synthesized.resource.aws_ssm_parameter['pinned-image'] as Json;
    expect(pin).toMatchObject({
      name: pinnedImageParameterName(ENV),
      type: 'String',
      count: debian.count,
      insecure_value: '${one(data.aws_ami.debian[*].id)}',
      lifecycle: { ignore_changes: ['insecure_value'] },
    });
    const templates = Object.values(synthesized.resource.aws_launch_template as Record<string, Json>);
    expect(templates).toHaveLength(4);
    for (const t of templates) {
      // The lookup never reaches a template but through the pin.
      expect(t.image_id).toBe('${coalesce(var.ami_id, one(data.aws_ssm_parameter.host-image[*].insecure_value), one(aws_ssm_parameter.pinned-image[*].insecure_value))}');
      expect(t.block_device_mappings[0].device_name).toBe('/dev/xvda');
    }
    // The offline plan sets ami_id: both lookups are configured, neither is read, nothing is pinned.
    expect(configured(plan, 'aws_ssm_parameter', 'data').map((r) => r.address)).toEqual(['data.aws_ssm_parameter.host-image']);
    const read = (plan.planned_values.root_module.resources ?? []).filter((r: { mode: string; type: string }) => r.mode === 'data' && ['aws_ssm_parameter', 'aws_ami'].includes(r.type));
    expect(read).toEqual([]);
    expect(planned(plan, 'aws_ssm_parameter').map((p) => p.values.name)).toEqual([configParameterName(ENV)]);
  });

  it('creates every auto scaling group after what its boot script reads: its role\'s policies and profile, the settings parameter, a route out of its subnets', () => {
    const resources = synthesizedResources();
    const settings = resources.find((r) => r.type === 'aws_ssm_parameter' && r.body.name === configParameterName(ENV))!.address;
    const groups = resources.filter((r) => r.type === 'aws_autoscaling_group');
    expect(groups.map((g) => g.body.name).sort()).toEqual(['api', 'lb', 'streamer', 'worker'].map((r) => `cadfleet-${ENV}-${r}`));
    for (const group of groups) {
      const role = String(group.body.name).replace(`cadfleet-${ENV}-`, '');
      const waitsFor = new Set<string>(group.body.depends_on ?? []);
      const missing = (addresses: string[]): string[] => addresses.filter((a) => !waitsFor.has(a));

      // Its hosts' role: launch template -> instance profile -> role -> every inline policy on it.
      const template = onlyRef(group.body.launch_template, 'aws_launch_template');
      const profile = onlyRef(synthesizedAt(template).body.iam_instance_profile, 'aws_iam_instance_profile');
      const iamRole = onlyRef(synthesizedAt(profile).body.role, 'aws_iam_role');
      expect(synthesizedAt(iamRole).body.name, role).toBe(`cadfleet-${ENV}-${role}`);
      const policies = resources.filter((r) => r.type === 'aws_iam_role_policy' && synthesizedRefs(r.body.role).includes(iamRole)).map((r) => r.address);
      // host and session-manager for all; drain (worker, streamer), converter-license (worker), tls-certificate (lb).
      expect(policies.length, role).toBe({ api: 2, lb: 3, worker: 4, streamer: 3 }[role]);
      expect(missing([...policies, profile]), `${role}: its role's policies and profile`).toEqual([]);

      expect(missing([settings]), `${role}: the settings parameter`).toEqual([]);

      // A route out of every subnet it launches in: the subnet's association with a route
      // table, and that table's default route, through a NAT gateway (private) or the internet
      // gateway (the load balancer's public subnets).
      const subnets = synthesizedRefs(group.body.vpc_zone_identifier);
      expect(subnets.length, role).toBe(2);
      for (const subnet of subnets) {
        const associations = resources.filter((r) => r.type === 'aws_route_table_association' && synthesizedRefs(r.body.subnet_id).includes(subnet));
        expect(associations, `${role}: ${subnet}`).toHaveLength(1);
        const table = onlyRef(associations[0]!.body.route_table_id, 'aws_route_table');
        const routes = resources.filter((r) => r.type === 'aws_route' && r.body.destination_cidr_block === '0.0.0.0/0' && synthesizedRefs(r.body.route_table_id).includes(table));
        expect(routes, `${role}: default route of ${table}`).toHaveLength(1);
        const target = role === 'lb' ? synthesizedRefs(routes[0]!.body.gateway_id) : synthesizedRefs(routes[0]!.body.nat_gateway_id);
        expect(target.map((t) => t.split('.')[0]), `${role}: ${routes[0]!.address}`).toEqual([role === 'lb' ? 'aws_internet_gateway' : 'aws_nat_gateway']);
        expect(missing([associations[0]!.address, routes[0]!.address]), `${role}: the route out of ${subnet}`).toEqual([]);
      }
      // S3 traffic of private hosts goes through the gateway endpoint: it exists before they boot.
      if (role !== 'lb') expect(missing(resources.filter((r) => r.type === 'aws_vpc_endpoint').map((r) => r.address)), role).toEqual([]);
      expect(group.body.health_check_type).toBe('EC2');
      expect(group.body.health_check_grace_period).toBe(HEALTH_CHECK_GRACE_SECONDS);
    }
    // Terraform accepted the order: no cycle (validate and plan ran), and it is in the configuration it planned.
    for (const group of configured(plan, 'aws_autoscaling_group')) {
      expect(group.depends_on, group.address).toEqual(expect.arrayContaining([settingsParameter().address]));
    }
  });

  it('deletes a group whose hosts drain on termination without waiting out the hook on each host', () => {
    const groups = planned(plan, 'aws_autoscaling_group').map((g) => ({ name: String(g.values.name).replace(`cadfleet-${ENV}-`, ''), values: g.values as Record<string, Json> }));
    const hooked = groups.filter((g) => ((g.values.initial_lifecycle_hook ?? []) as Json[]).length > 0);
    expect(hooked.map((g) => g.name).sort()).toEqual(['streamer', 'worker']);
    // A host that never got a release runs no lifecycle watcher: a destroy would wait the hook's
    // timeout (900 s for workers) per host, past the provider's 10-minute default.
    for (const g of hooked) expect(g.values, g.name).toMatchObject({ force_delete: true, timeouts: { delete: '30m' } });
  });

  it("lets each host report its own group's instances unhealthy, and only workers and streamers finish their group's lifecycle actions", () => {
    const groupNames = planned(plan, 'aws_autoscaling_group').map((g) => String(g.values.name));
    // How a policy's ARN pattern (IAM wildcards, Terraform expressions filled in) matches a real group's ARN.
    const fill = (pattern: string): string =>
      pattern
        .replace('${data.aws_partition.partition.partition}', 'aws')
        .replace('${var.region}', 'us-east-1')
        .replace(/\$\{aws_vpc\.[^}]+\.owner_id\}/, '123456789012');
    const matches = (pattern: string, groupName: string): boolean => {
      const arn = `arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:8c3ad8f5-4b1d-4d6e-9e2a-1f0c3b7d2e51:autoScalingGroupName/${groupName}`;
      const regex = new RegExp(`^${fill(pattern).split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`);
      return regex.test(arn);
    };
    for (const { role, statements } of instanceRolePolicies()) {
      const own = `cadfleet-${ENV}-${role}`;
      const on = (action: string): string[] => statements.filter((s) => s.actions.includes(action)).flatMap((s) => s.resources);
      for (const action of ['autoscaling:SetInstanceHealth', ...(['worker', 'streamer'].includes(role) ? ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'] : [])]) {
        const resources = on(action);
        expect(resources, `${role}: ${action}`).toHaveLength(1);
        // Its own group, and no other group of this or another environment.
        expect(groupNames.filter((g) => matches(resources[0]!, g)), `${role}: ${action} on ${resources[0]}`).toEqual([own]);
        expect(matches(resources[0]!, `${own}-2`), `${role}: ${action}`).toBe(false);
        expect(matches(resources[0]!, own.replace(ENV, 'prod')), `${role}: ${action}`).toBe(false);
      }
      if (!['worker', 'streamer'].includes(role)) expect(on('autoscaling:CompleteLifecycleAction'), role).toEqual([]);
      // Describing its own instance has no resource-level permission.
      expect(on('autoscaling:DescribeAutoScalingInstances'), role).toEqual(['*']);
      const autoscaling = statements.filter((s) => s.actions.some((a) => a.startsWith('autoscaling:'))).flatMap((s) => s.actions);
      expect(new Set(autoscaling), role).toEqual(
        new Set([
          'autoscaling:SetInstanceHealth',
          'autoscaling:DescribeAutoScalingInstances',
          ...(['worker', 'streamer'].includes(role) ? ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'] : []),
        ]),
      );
    }
    // The hosts' lifecycle watcher (ansible/roles/asg_lifecycle) is told its group and hook by the
    // user-data's host variables: the names the plan gives the groups and their termination hooks.
    const hookOf = Object.fromEntries(planned(plan, 'aws_autoscaling_group').map((g) => [String(g.values.name), ((g.values.initial_lifecycle_hook ?? []) as Array<{ name: string }>).map((h) => h.name)]));
    for (const role of HOST_ROLES) {
      const userData = Object.values(synthesized.locals as Record<string, string>).find((text) => text.includes(`boot of a ${role} host`))!;
      const hostVars = JSON.parse(/readonly HOST_VARS='([^']*)'/.exec(userData)![1]!) as Record<string, string>;
      if (role === 'lb') {
        expect(hostVars.asg_lifecycle_group, role).toBeUndefined();
        continue;
      }
      expect(hostVars.asg_lifecycle_group, role).toBe(`cadfleet-${ENV}-${role}`);
      expect(groupNames, role).toContain(hostVars.asg_lifecycle_group);
      expect(hostVars.asg_lifecycle_hook ? [hostVars.asg_lifecycle_hook] : [], role).toEqual(hookOf[hostVars.asg_lifecycle_group!]);
    }
  });

  it('requires IMDSv2 and encrypted gp3 root volumes in every launch template, and tags hosts for the inventory', () => {
    const templates = planned(plan, 'aws_launch_template');
    expect(templates).toHaveLength(4);
    for (const t of templates) {
      const metadata = (t.values.metadata_options as Json[])[0];
      expect(metadata).toMatchObject({ http_endpoint: 'enabled', http_tokens: 'required', http_put_response_hop_limit: 1 });
      const disks = t.values.block_device_mappings as Json[];
      expect(disks.length).toBeGreaterThan(0);
      for (const disk of disks) expect(disk.ebs[0]).toMatchObject({ encrypted: 'true', volume_type: 'gp3' });
      expect(disks[0].device_name).toBe('/dev/xvda');
      const role = String(t.values.name).replace(`cadfleet-${ENV}-`, '');
      const specs = t.values.tag_specifications as Array<{ resource_type: string; tags: Record<string, string> }>;
      expect(specs.map((s) => s.resource_type).sort()).toEqual(['instance', 'network-interface', 'volume']);
      for (const spec of specs) expect(spec.tags).toEqual({ Name: `cadfleet-${ENV}-${role}`, [TAG_ENVIRONMENT]: ENV, [TAG_ROLE]: role });
      // terraform.tfvars.example names no key pair: a new account has none.
      expect(t.values.key_name ?? null).toBeNull();
      expect(t.values.image_id).toBe('ami-0123456789abcdef0');
    }
    // A named key pair is looked up at plan time (an unknown name fails the plan, not the
    // launches at the end of the first apply), and the templates take the name from the lookup.
    const [lookup] = configured(plan, 'aws_key_pair', 'data');
    expect(JSON.stringify(lookup!.count_expression)).toContain('var.ssh_key_name');
    expect(expr(lookup!, 'key_name').references).toContain('var.ssh_key_name');
    for (const t of configured(plan, 'aws_launch_template')) expect(JSON.stringify(expr(t, 'key_name').references ?? []), t.address).toContain(lookup!.address);
  });

  it('grants each host role every AWS call its boot program makes (the calls read from the script itself)', () => {
    // Each call the boot program can make, as the IAM action it needs. A call missing here fails
    // the test: add it, and grant it in stacks/cadfleet-stack.ts.
    const ACTIONS: Record<string, string[]> = {
      // A download; ListBucket too, or S3 answers a missing pointer with 403 instead of 404.
      's3 cp': ['s3:GetObject', 's3:ListBucket'],
      'ssm get-parameter': ['ssm:GetParameter'],
      'ec2 associate-address': ['ec2:AssociateAddress'],
      'autoscaling set-instance-health': ['autoscaling:SetInstanceHealth'],
      'secretsmanager get-secret-value': ['secretsmanager:GetSecretValue'],
      'secretsmanager put-secret-value': ['secretsmanager:PutSecretValue'],
    };
    const grants = (statements: PolicyStatement[], action: string): boolean =>
      statements.some((st) => st.effect === 'Allow' && st.actions.some((a) => new RegExp(`^${a.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(action)));
    const roles = Object.fromEntries(instanceRolePolicies().map((r) => [r.role, r.statements]));
    for (const role of HOST_ROLES) {
      const script = renderBootScript({ role, environment: ENV, region: 'us-east-1', releasesBucket: 'b', configParameter: '/p', elasticIpAllocationId: role === 'lb' ? 'eipalloc-1' : undefined, tlsCertificateParameter: role === 'lb' ? '/t' : undefined, streamTokenSecret: streamSecretName(ENV) });
      // The stack hands api and streamer hosts the secret's name (their user-data carries the program).
      const synthesizedUserData = Object.entries(synthesized.locals as Record<string, string>).find(([, text]) => text.includes(`boot of a ${role} host`))?.[1];
      expect(synthesizedUserData, role).toBeDefined();
      expect(synthesizedUserData!.includes(streamSecretName(ENV)), role).toBe(role === 'api' || role === 'streamer');
      const code = script.split('\n').filter((line) => !line.trimStart().startsWith('#'));
      const calls = new Set(code.flatMap((line) => [...line.matchAll(/(?:^|[\s(|&;])(?:aws (?:--endpoint-url "\$\w+" )?)?(s3|ssm|ec2|autoscaling|secretsmanager|iam|sts) ([a-z][a-z0-9-]+)/g)].map((m) => `${m[1]} ${m[2]}`)));
      expect(calls.size, role).toBeGreaterThanOrEqual(3);
      for (const call of calls) {
        expect(ACTIONS[call], `${role}'s boot program calls \`${call}\`: name its IAM action in this test`).toBeDefined();
        for (const action of ACTIONS[call]!) expect(grants(roles[role]!, action), `${role} may not ${action}, which its boot program's \`${call}\` needs`).toBe(true);
      }
      const secretCalls = role === 'api' || role === 'streamer' ? ['secretsmanager get-secret-value', 'secretsmanager put-secret-value'] : [];
      if (role === 'lb') expect([...calls].sort()).toEqual(['autoscaling set-instance-health', 'ec2 associate-address', 's3 cp', 'ssm get-parameter']);
      else expect([...calls].sort()).toEqual(['autoscaling set-instance-health', 's3 cp', ...secretCalls, 'ssm get-parameter']);
    }
  });

  it('lets instance roles reach only their own buckets, secrets and parameters', () => {
    const models = bucketAddress('models');
    const releases = bucketAddress('releases');
    const [db] = configured(plan, 'aws_db_instance');
    const dbSecret = refTo(db!.address, 'master_user_secret[0].secret_arn');
    const settingsArn = refTo(settingsParameter().address, 'arn');
    const [streamSecret] = configured(plan, 'aws_secretsmanager_secret');
    expect(streamSecret, 'the stream-token secret').toBeDefined();
    const streamSecretArn = refTo(streamSecret!.address, 'arn');
    const licence = 'arn:${data.aws_partition.partition.partition}:ssm:${var.region}:${aws_vpc.network_vpc_';
    const allowed: Record<string, { s3: string[]; s3ReadOnly: boolean; secrets: string[]; parameters: RegExp[] }> = {
      api: { s3: [models, releases], s3ReadOnly: false, secrets: [dbSecret, streamSecretArn], parameters: [] },
      worker: { s3: [models, releases], s3ReadOnly: false, secrets: [dbSecret], parameters: [/parameter\$\{var\.converter_license_parameter\}$/] },
      streamer: { s3: [models, releases], s3ReadOnly: true, secrets: [dbSecret, streamSecretArn], parameters: [] },
      lb: { s3: [releases], s3ReadOnly: true, secrets: [], parameters: [/parameter\$\{var\.tls_certificate_parameter\}$/] },
    };
    const roles = instanceRolePolicies();
    expect(roles.map((r) => r.role).sort()).toEqual(['api', 'lb', 'streamer', 'worker']);
    for (const { role, statements } of roles) {
      const rules = allowed[role]!;
      const bucketResources = rules.s3.flatMap((b) => [refTo(b, 'arn'), `${refTo(b, 'arn')}/*`, `${refTo(b, 'arn')}/releases/*`, `${refTo(b, 'arn')}/models/*`]);
      for (const s of statements) {
        const where = `${role}: ${s.sid}`;
        expect(s.effect, where).toBe('Allow');
        for (const action of s.actions) expect(action, where).not.toMatch(/\*/);
        const services = new Set(s.actions.map((a) => a.split(':')[0]));
        if (services.has('s3')) {
          for (const r of s.resources) expect(bucketResources, `${where} -> ${r}`).toContain(r);
          const onReleases = s.resources.some((r) => r.startsWith(refTo(releases, 'arn')));
          if (onReleases || rules.s3ReadOnly) for (const a of s.actions) expect(['s3:GetObject', 's3:ListBucket'], `${where} ${a}`).toContain(a);
        }
        if (services.has('secretsmanager')) {
          expect(s.resources, where).toHaveLength(1);
          expect(rules.secrets, where).toContain(s.resources[0]);
          // Only the stream-token secret, which hosts give its first value, may be written.
          if (s.actions.includes('secretsmanager:PutSecretValue')) expect(s.resources, where).toEqual([streamSecretArn]);
        }
        if (s.actions.some((a) => a.startsWith('ssm:GetParameter'))) {
          for (const r of s.resources) expect(r === settingsArn || rules.parameters.some((p) => p.test(r) && r.startsWith(licence)), `${where} -> ${r}`).toBe(true);
        }
        expect(services.has('kms'), where).toBe(false);
        if (s.resources.includes('*')) {
          // Only actions that have no resource-level permissions, and metrics only in our namespace.
          for (const a of s.actions) expect(a, where).toMatch(/^(cloudwatch:PutMetricData|ssm:UpdateInstanceInformation|ssmmessages:\w+|autoscaling:DescribeAutoScalingInstances)$/);
          if (s.actions.includes('cloudwatch:PutMetricData')) expect(s.conditions).toEqual([{ test: 'StringEquals', variable: 'cloudwatch:namespace', values: [METRICS_NAMESPACE] }]);
        }
      }
      const secretStatements = statements.filter((s) => s.actions.some((a) => a.startsWith('secretsmanager:')));
      expect(secretStatements.flatMap((s) => s.resources).sort(), role).toEqual([...rules.secrets].sort());
    }
    // Everything a host may do is written here: no managed policy is attached to a host role
    // (only the deploy role has policies of its own, defined in this stack too).
    const instanceRoles = new Set(configured(plan, 'aws_iam_instance_profile').flatMap((p) => referencedResources(expr(p, 'role'))));
    for (const attachment of configured(plan, 'aws_iam_role_policy_attachment')) {
      for (const role of referencedResources(expr(attachment, 'role'))) expect(instanceRoles.has(role), attachment.address).toBe(false);
      expect(referencedResources(expr(attachment, 'policy_arn'))[0], attachment.address).toMatch(/^aws_iam_policy\./);
    }
    expect(planned(plan, 'aws_iam_policy_attachment')).toEqual([]);
    for (const role of planned(plan, 'aws_iam_role')) expect(role.values.managed_policy_arns ?? []).toEqual([]);
    // Every host ships logs, only into this environment's two log groups.
    const logGroups = configured(plan, 'aws_cloudwatch_log_group').map((g) => g.address);
    for (const { role, statements } of roles) {
      const logs = statements.filter((s) => s.actions.some((a) => a.startsWith('logs:')));
      expect(logs.map((s) => s.actions), role).toEqual([['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams']]);
      expect(logs[0]!.resources.sort(), role).toEqual(logGroups.flatMap((g) => [refTo(g, 'arn'), `${refTo(g, 'arn')}:log-stream:*`]).sort());
    }
  });

  it('scales workers on queued jobs and streamers on sessions per host, with the metric names of stacks/metrics.ts', () => {
    const policies = Object.fromEntries(planned(plan, 'aws_autoscaling_policy').map((p) => [p.values.name, p.values]));
    const perHost = (name: string) => {
      const tracking = (policies[name]?.target_tracking_configuration as Json[])[0];
      const metrics = tracking.customized_metric_specification[0].metrics as Json[];
      return { target: tracking.target_value, metric: metrics.find((m) => m.id === 'fleet').metric_stat[0].metric[0], expression: metrics.find((m) => m.return_data).expression };
    };
    expect(perHost(`cadfleet-${ENV}-worker-${METRICS.queueDepth}-per-host`)).toEqual({
      target: 2,
      metric: expect.objectContaining({ namespace: METRICS_NAMESPACE, metric_name: METRICS.queueDepth, dimensions: [{ name: METRICS_DIMENSION, value: ENV }] }),
      expression: 'fleet / hosts',
    });
    // Each streamer publishes its own sessions: the group aims at their average.
    const streamer = (policies[`cadfleet-${ENV}-streamer-${METRICS.activeSessions}-per-host`]?.target_tracking_configuration as Json[])[0];
    expect(streamer.target_value).toBe(50);
    expect(streamer.customized_metric_specification[0].metrics.map((m: Json) => [m.id, m.return_data, m.metric_stat[0].stat, m.metric_stat[0].metric[0]])).toEqual([
      ['perhost', true, 'Average', expect.objectContaining({ namespace: METRICS_NAMESPACE, metric_name: METRICS.activeSessions, dimensions: [{ name: METRICS_DIMENSION, value: ENV }] })],
    ]);
    expect(policies[`cadfleet-${ENV}-api-cpu`]).toBeDefined();
    // Workers and streamers drain before they are terminated.
    const hooks = Object.fromEntries(
      planned(plan, 'aws_autoscaling_group').map((g) => [String(g.values.name).replace(`cadfleet-${ENV}-`, ''), (g.values.initial_lifecycle_hook as Json[]) ?? []]),
    );
    expect(hooks.worker?.map((h: Json) => [h.lifecycle_transition, h.heartbeat_timeout])).toEqual([['autoscaling:EC2_INSTANCE_TERMINATING', 900]]);
    expect(hooks.streamer?.map((h: Json) => h.heartbeat_timeout)).toEqual([600]);
    expect(hooks.api).toEqual([]);
  });

  it('alarms on every cadfleet metric, under the names the scaling policies use, with thresholds from the variables', () => {
    // An alarm watches a cadfleet metric directly, or (per-host metrics) inside a metric query.
    const alarms = planned(plan, 'aws_cloudwatch_metric_alarm').map((a): Record<string, Json> => {
      const values = a.values as Record<string, Json>;
      const query = ((values.metric_query ?? []) as Json[]).map((q) => q.metric?.[0]).find((m) => m?.namespace === METRICS_NAMESPACE);
      return { ...values, metric_name: values.metric_name ?? query?.metric_name, namespace: values.namespace ?? query?.namespace, dimensions: values.dimensions ?? query?.dimensions };
    });
    expect(alarms.map((a) => a.metric_name).sort()).toEqual(Object.values(METRICS).sort());
    for (const alarm of alarms) {
      expect(alarm, String(alarm.alarm_name)).toMatchObject({ namespace: METRICS_NAMESPACE, dimensions: { [METRICS_DIMENSION]: ENV }, comparison_operator: 'GreaterThanOrEqualToThreshold' });
      expect(String(alarm.alarm_name)).toMatch(new RegExp(`^cadfleet-${ENV}-${String(alarm.metric_name)}-`));
      // terraform.tfvars.example sets no alarm_email: no topic, no actions.
      expect(alarm.alarm_actions ?? []).toEqual([]);
    }
    // The metrics the fleets scale on are among them, spelled the same.
    const scalingMetrics = planned(plan, 'aws_autoscaling_policy').flatMap((p) =>
      ((p.values.target_tracking_configuration as Json[])[0].customized_metric_specification[0]?.metrics ?? [])
        .filter((m: Json) => m.metric_stat?.[0]?.metric[0]?.namespace === METRICS_NAMESPACE)
        .map((m: Json) => m.metric_stat[0].metric[0].metric_name),
    );
    expect(scalingMetrics.sort()).toEqual([METRICS.activeSessions, METRICS.queueDepth].sort());
    const byMetric = Object.fromEntries(alarms.map((a) => [a.metric_name, a]));
    // worker_fleet max_size 4 x jobs_per_worker 2, for 15 minutes; streamers 4 x 50 sessions at 80 %.
    expect(byMetric[METRICS.queueDepth]).toMatchObject({ threshold: 8, period: 60, evaluation_periods: 15, statistic: 'Maximum' });
    // Sessions: the average per streamer times the streamers in service, against 80 % of 4 x 50.
    expect(byMetric[METRICS.activeSessions]).toMatchObject({ threshold: 160 });
    const sessions = Object.fromEntries((byMetric[METRICS.activeSessions]!.metric_query as Json[]).map((q) => [q.id, q]));
    expect(Object.fromEntries(Object.values(sessions).map((q: Json) => [q.id, [q.expression || q.metric[0].metric_name, q.metric[0]?.stat ?? null, q.return_data]]))).toEqual({
      perhost: [METRICS.activeSessions, 'Average', false],
      hosts: ['GroupInServiceInstances', 'Average', false],
      fleet: ['perhost * hosts', null, true],
    });
    expect(sessions.hosts.metric[0].dimensions).toEqual({ AutoScalingGroupName: `cadfleet-${ENV}-streamer` });
    expect(byMetric[METRICS.oldestJobAgeSeconds]).toMatchObject({ threshold: 900 });
    expect(byMetric[METRICS.http5xx]).toMatchObject({ threshold: 10, period: 300, statistic: 'Sum', treat_missing_data: 'notBreaching' });
    expect(planned(plan, 'aws_sns_topic')).toEqual([]);
    // The agent's log groups, with their retention.
    expect(planned(plan, 'aws_cloudwatch_log_group').map((g) => [g.values.name, g.values.retention_in_days]).sort()).toEqual([
      [logGroupName('journal', ENV), 30],
      [logGroupName('metrics', ENV), 30],
    ]);
  });

  describe('the GitHub Actions deploy role', () => {
    const deployRole = (): string => {
      const role = planned(plan, 'aws_iam_role').find((r) => r.values.name === `cadfleet-${ENV}-deploy`);
      if (!role) throw new Error('no deploy role in the plan');
      return role.address.replace(/\[0\]$/, '');
    };
    /** The deploy role's managed policies, as configured, by name suffix. */
    const deployPolicies = (): Record<string, PolicyStatement[]> => {
      const attached = referring('aws_iam_role_policy_attachment', 'role', deployRole()).flatMap((a) => referencedResources(expr(a, 'policy_arn')));
      return Object.fromEntries(
        attached.map((policy) => {
          const name = String(valuesOf(policy).name).replace(`cadfleet-${ENV}-deploy-`, '');
          const document = referencedResources(expr(configuredAt(plan, policy), 'policy')).find((a) => a.startsWith('data.'))!;
          return [name, policyStatements(configuredAt(plan, document))];
        }),
      );
    };

    it("trusts the account's GitHub OIDC provider, which no environment's state owns", () => {
      // Not created: IAM allows one provider per URL per account, shared by its environments;
      // destroying one environment must not take the others' deploys with it.
      expect(planned(plan, 'aws_iam_openid_connect_provider')).toEqual([]);
      expect(configured(plan, 'aws_iam_openid_connect_provider')).toEqual([]);
      // Looked up by its URL unless its ARN is given (the offline plan gives it: the lookup calls AWS).
      const [lookup] = configured(plan, 'aws_iam_openid_connect_provider', 'data');
      expect(expr(lookup!, 'url').constant_value).toBe(`https://${GITHUB_OIDC_HOST}`);
      expect(JSON.stringify(lookup!.count_expression)).toContain('var.github_oidc_provider_arn');
      // A state of an earlier version, which created it, forgets it without deleting it.
      expect(synthesized.removed).toEqual([{ from: FORMER_PROVIDER_ADDRESS, lifecycle: { destroy: false } }]);
      expect(valuesOf(deployRole())).toMatchObject({ name: `cadfleet-${ENV}-deploy`, max_session_duration: DEPLOY_SESSION_SECONDS });
      expect(Object.keys(deployPolicies()).sort()).toEqual(['access', 'compute', 'services']);
      expect((plan.output_changes?.deploy_role_arn as { after_unknown?: unknown }).after_unknown).toBe(true);
    });

    it("trusts only this repository's deploy environment: StringEquals on the exact subject and the audience", () => {
      const trust = referencedResources(expr(configuredAt(plan, deployRole()), 'assume_role_policy')).find((a) => a.startsWith('data.'))!;
      // Known whole at plan time (the provider's ARN given), so terraform read it during the
      // plan: its values are in the plan's prior state, not among the changes.
      const read = ((plan as unknown as { prior_state?: { values?: { root_module?: { resources?: Array<{ address: string; values: Json }> } } } }).prior_state?.values?.root_module?.resources ?? []).find(
        (r) => r.address === trust || r.address === `${trust}[0]`,
      );
      expect(read, `${trust} read during the plan`).toBeDefined();
      const after = read!.values;
      expect(after.statement).toHaveLength(1);
      const statement = after.statement[0];
      expect(statement).toMatchObject({ effect: 'Allow', actions: ['sts:AssumeRoleWithWebIdentity'], not_principals: [] });
      expect(statement.not_actions ?? []).toEqual([]);
      expect(statement.principals.map((p: Json) => p.type)).toEqual(['Federated']);
      expect(statement.principals[0].identifiers).toEqual([OIDC_PROVIDER_ARN]);
      const conditions = [...statement.condition].sort((a: Json, b: Json) => a.variable.localeCompare(b.variable));
      expect(conditions).toEqual([
        { test: 'StringEquals', variable: `${GITHUB_OIDC_HOST}:aud`, values: [GITHUB_OIDC_AUDIENCE] },
        // terraform.tfvars.example: github_repository = "acme/cadfleet"; the environment defaults to its name.
        { test: 'StringEquals', variable: `${GITHUB_OIDC_HOST}:sub`, values: [`repo:acme/cadfleet:environment:${ENV}`] },
      ]);
      for (const c of conditions) expect(c.values.join(''), c.variable).not.toMatch(/[*?]/);
    });

    it('has no wildcard action but Describe reads, no `*` resource for a write, and never changes its own access', () => {
      const policies = deployPolicies();
      const all = Object.values(policies).flat();
      for (const s of all) {
        const where = s.sid;
        for (const a of s.actions) {
          expect(a, where).not.toMatch(/^\*|:\*$/);
          if (s.effect === 'Allow' && a.includes('*')) expect(a, where).toMatch(/^[a-z0-9-]+:Describe\*$/);
        }
        if (s.effect === 'Allow' && s.resources.includes('*')) {
          // Reads IAM and SSM scope to no resource: the plan's lookup of the account's GitHub provider, a command's output.
          for (const a of s.actions) expect(a, where).toMatch(/:Describe\*$|^ssm:(GetCommandInvocation|ListCommandInvocations)$|^iam:ListOpenIDConnectProviders$/);
        }
      }
      // Objects: the state and its lock file, releases, and the deploy lock; nothing else is read or written.
      const objectResources = all.filter((s) => s.effect === 'Allow' && s.actions.some((a) => /^s3:(Get|Put|Delete)Object$/.test(a))).flatMap((s) => s.resources);
      expect(objectResources.sort()).toEqual(
        [
          `arn:\${data.aws_partition.partition.partition}:s3:::cadfleet-tfstate-example/cadfleet/${ENV}/terraform.tfstate`,
          `arn:\${data.aws_partition.partition.partition}:s3:::cadfleet-tfstate-example/cadfleet/${ENV}/terraform.tfstate.tflock`,
          `${refTo(bucketAddress('releases'), 'arn')}/releases/*`,
          `${refTo(bucketAddress('releases'), 'arn')}/${DEPLOY_LOCK_KEY}`,
        ].sort(),
      );
      // In the releases bucket it deletes the deploy lock and nothing else (a release stays for rollbacks).
      const deletes = all.filter((s) => s.effect === 'Allow' && s.actions.includes('s3:DeleteObject')).flatMap((s) => s.resources);
      expect(deletes.filter((r) => r.startsWith(refTo(bucketAddress('releases'), 'arn')))).toEqual([`${refTo(bucketAddress('releases'), 'arn')}/${DEPLOY_LOCK_KEY}`]);
      // It never reads a secret's value, nor writes one (the stream-token secret's value is the hosts').
      expect(all.filter((s) => s.actions.some((a) => ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue', 'secretsmanager:BatchGetSecretValue', 'kms:Decrypt'].includes(a))).map((s) => s.sid)).toEqual([]);
      // Sessions and commands only to instances tagged with this environment.
      const toInstances = all.filter((s) => s.actions.some((a) => a === 'ssm:StartSession' || a === 'ssm:SendCommand') && s.resources.some((r) => r.includes(':instance/')));
      expect(toInstances).toHaveLength(2);
      for (const s of toInstances) expect(s.conditions).toContainEqual({ test: 'StringEquals', variable: `ssm:resourceTag/${TAG_ENVIRONMENT}`, values: [ENV] });
      // IAM writes only on the hosts' roles by exact name; a Deny keeps the role off its own access.
      const iamWrites = all.filter((s) => s.effect === 'Allow' && s.actions.some((a) => a === 'iam:PutRolePolicy'));
      expect(iamWrites).toHaveLength(1);
      expect(iamWrites[0]!.resources.filter((r) => r.includes(':role/')).map((r) => r.split(':role/')[1]).sort()).toEqual(['api', 'lb', 'streamer', 'worker'].map((r) => `cadfleet-${ENV}-${r}`));
      expect(all.some((s) => s.actions.includes('iam:UpdateAssumeRolePolicy') && s.effect === 'Allow')).toBe(false);
      const deny = all.filter((s) => s.effect === 'Deny');
      expect(deny.flatMap((s) => s.resources).map((r) => r.split(':').pop())).toEqual([`role/cadfleet-${ENV}-deploy`, `policy/cadfleet-${ENV}-deploy-*`, `oidc-provider/${GITHUB_OIDC_HOST}`]);
      expect(deny[0]!.actions).toEqual(expect.arrayContaining(['iam:Put*', 'iam:Attach*', 'iam:Update*']));
    });

    it("keeps each policy within IAM's 6,144 characters, even with the longest partition, region and bucket names", () => {
      const longest: Record<string, string> = {
        'data.aws_partition.partition.partition': 'aws-us-gov',
        'var.region': 'ap-southeast-4',
      };
      const fill = (text: string): string =>
        text.replace(/\$\{([^}]+)\}/g, (_, e: string) => {
          if (longest[e]) return longest[e];
          if (e.endsWith('.owner_id')) return '123456789012';
          if (e.startsWith('aws_s3_bucket.')) return 'arn:aws-us-gov:s3:::cadfleet-staging-releases-20260801123456789000000001';
          if (e.startsWith('aws_ssm_parameter.')) return 'arn:aws-us-gov:ssm:ap-southeast-4:123456789012:parameter/cadfleet/staging/app.env';
          throw new Error(`no stand-in for \${${e}}`);
        });
      for (const [name, statements] of Object.entries(deployPolicies())) {
        const document = {
          Version: '2012-10-17',
          Statement: statements.map((s) => ({
            Sid: s.sid,
            Effect: s.effect,
            Action: s.actions,
            Resource: s.resources.map(fill),
            Condition: Object.fromEntries(s.conditions.map((c) => [c.test, { [c.variable]: c.values }])),
          })),
        };
        expect(JSON.stringify(document).length, name).toBeLessThan(6144);
      }
    });
  });

  it('writes the deployment outputs of DESIGN.md, and no secret among them', () => {
    const outputs = plan.configuration.root_module.outputs ?? {};
    expect(Object.keys(outputs).sort()).toEqual(
      ['bastion', 'buckets', 'config_parameter', 'deploy_role_arn', 'environment', 'hosts', 'lb_address', 'lb_public_ip', 'log_groups', 'postgres', 'redis', 'region', 'ssh_user'].sort(),
    );
    for (const [name, output] of Object.entries(outputs)) {
      expect(output.description, name).toBeTruthy();
      expect(output.sensitive ?? false, name).toBe(false);
      for (const ref of output.expression?.references ?? []) expect(ref, name).not.toMatch(/password|auth_token|secret_string|passwords/);
    }
    for (const [name, output] of Object.entries(plan.planned_values.outputs ?? {})) expect(output.sensitive, name).toBe(false);
    const after = Object.fromEntries(Object.entries(plan.output_changes ?? {}).map(([k, v]) => [k, v.after]));
    expect(after).toMatchObject({
      environment: ENV,
      region: 'us-east-1',
      ssh_user: 'admin',
      config_parameter: `/cadfleet/${ENV}/app.env`,
      hosts: { worker: { filters: { [`tag:${TAG_ENVIRONMENT}`]: ENV, [`tag:${TAG_ROLE}`]: 'worker' }, auto_scaling_group: `cadfleet-${ENV}-worker` } },
      redis: { port: 6379, tls: true, auth: 'iam', user: `cadfleet-${ENV}-app` },
      postgres: { port: 5432, database: 'cadfleet', user: 'cadfleet', sslmode: 'verify-full' },
      log_groups: { journal: logGroupName('journal', ENV), metrics: logGroupName('metrics', ENV) },
    });
    expect(Object.keys((after.postgres ?? {}) as object)).not.toContain('password');
  });

  it('keeps secrets out of the plan, the app settings and the boot scripts', () => {
    for (const resource of plan.planned_values.root_module.resources ?? []) {
      for (const key of ['password', 'auth_token', 'passwords', 'secret_string', 'master_password']) {
        expect(resource.values?.[key] ?? null, `${resource.address}.${key}`).toBeNull();
      }
    }
    expect(planned(plan, 'aws_secretsmanager_secret_version')).toEqual([]);
    expect(valuesOf(settingsParameter().address).type).toBe('String');
    const settingsValue = String(expr(settingsParameter(), 'value').constant_value);
    const keys = settingsValue.split('\n').map((l) => l.split('=')[0]);
    expect(keys).toEqual(expect.arrayContaining(['CADFLEET_DATABASE_URL', 'CADFLEET_DATABASE_SECRET_ARN', 'CADFLEET_REDIS_URL', 'CADFLEET_S3_MODELS_BUCKET']));
    expect(settingsValue).not.toMatch(/password=|:[^@/]+@|auth_token|secret_string/i);
    const scripts = Object.values(synthesized.locals as Record<string, string>);
    expect(scripts).toHaveLength(4);
    for (const script of scripts) {
      expect(script.startsWith('#!/bin/bash\n')).toBe(true);
      for (const [, text] of strings(script)) expect(text).not.toMatch(/password|secret_string|AKIA|aws_secret_access_key/i);
    }
  });

  it('plans the other choices too: per-zone NAT, a domain with its certificate, a licence, no SSH, protection on', async () => {
    const alternative = path.join(workDir, 'alternative.tfvars');
    fs.writeFileSync(
      alternative,
      [
        'nat_gateway_mode = "per_az"',
        'admin_cidrs = []',
        'ssh_key_name = ""',
        'ssm_access = false',
        'domain_name = "cad.example.com"',
        'tls_certificate_parameter = "/cadfleet/staging/lb/tls.pem"',
        'converter_license_parameter = "/vendor/licence"',
        'releases_bucket_name = "acme-cadfleet-releases"',
        'deletion_protection = true',
        'final_snapshot = false',
        'empty_buckets_on_destroy = true',
        'cache = { replicas = 0 }',
        'github_repository = ""',
        'alarm_email = "ops@example.com"',
      ].join('\n'),
    );
    await tf.ok(['plan', '-input=false', '-lock=false', `-var-file=${exampleVars}`, `-var-file=${offlineVars}`, `-var-file=${alternative}`, '-out=alternative.bin']);
    const other = JSON.parse((await tf.ok(['show', '-json', 'alternative.bin'])).stdout) as Plan;
    const values = (type: string): Array<Record<string, Json>> => planned(other, type).map((r) => r.values as Record<string, Json>);
    expect(values('aws_nat_gateway')).toHaveLength(2);
    expect(values('aws_launch_template').map((t) => t.key_name ?? null)).toEqual([null, null, null, null]);
    expect(values('aws_vpc_security_group_ingress_rule').filter((r) => r.from_port === PORTS.ssh && r.cidr_ipv4)).toEqual([]);
    expect(values('aws_s3_bucket_cors_configuration')[0]!.cors_rule[0].allowed_origins).toEqual(['https://cad.example.com']);
    // Asked for: destroy empties the buckets and leaves no snapshot (outside prod*); protection
    // is a separate matter.
    expect(values('aws_s3_bucket').map((b) => [b.bucket ?? b.bucket_prefix, b.force_destroy]).sort()).toEqual([
      ['acme-cadfleet-releases', true],
      [`cadfleet-${ENV}-models-`, true],
    ]);
    expect(values('aws_db_instance')[0]).toMatchObject({ deletion_protection: true, skip_final_snapshot: true, delete_automated_backups: true });
    expect(values('aws_elasticache_replication_group')[0]).toMatchObject({ num_cache_clusters: 1, automatic_failover_enabled: false });
    // The optional grants exist now, each for its one parameter; Session Manager's are gone.
    const policies = values('aws_iam_role_policy').map((p) => String(p.name).replace(`cadfleet-${ENV}-`, '')).sort();
    expect(policies).toEqual(['api-host', 'lb-host', 'lb-tls-certificate', 'streamer-drain', 'streamer-host', 'worker-converter-license', 'worker-drain', 'worker-host']);
    expect((other.output_changes?.lb_address as { after?: unknown }).after).toBe('cad.example.com');
    // No repository: no deploy role, no identity provider. An address: alarms mail it.
    expect(values('aws_iam_openid_connect_provider')).toEqual([]);
    expect(values('aws_iam_role').map((r) => String(r.name).replace(`cadfleet-${ENV}-`, '')).sort()).toEqual(['api', 'lb', 'streamer', 'worker']);
    expect(values('aws_iam_policy')).toEqual([]);
    expect(values('aws_sns_topic').map((t) => t.name)).toEqual([`cadfleet-${ENV}-alarms`]);
    expect(values('aws_sns_topic_subscription').map((t) => [t.protocol, t.endpoint])).toEqual([['email', 'ops@example.com']]);
    const alarmActions = configured(other, 'aws_cloudwatch_metric_alarm').map((a) => referencedResources(expr(a, 'alarm_actions')));
    expect(alarmActions).toHaveLength(4);
    for (const actions of alarmActions) expect(actions).toEqual([configured(other, 'aws_sns_topic')[0]!.address]);
  });

  describe('refuses bad variable values, naming the variable', () => {
    const badPlan = async (extra: string[], varFile = exampleVars): Promise<string> => {
      const result = await tf.run(['plan', '-input=false', '-lock=false', '-refresh=false', `-var-file=${varFile}`, `-var-file=${offlineVars}`, ...extra]);
      expect(result.code, result.stdout.slice(-2000)).not.toBe(0);
      return oneLine(result.stderr);
    };

    // Terraform reports every failed variable of one plan, so the cases share plans: a group
    // sets each variable at most once, and each case still looks for its own message (a
    // message only the value of that case can produce). Three plans for these fourteen cases.
    const cases: Array<[name: string, group: number, extra: string[], messages: string[]]> = [
      ['a CIDR that is not one', 1, ['-var', 'vpc_cidr=10.0.0.0/33'], ['vpc_cidr must be an IPv4 network address with a prefix from /16 to /20, such as "10.40.0.0/16", got "10.0.0.0/33"']],
      ['a VPC range too large', 2, ['-var', 'vpc_cidr=10.0.0.0/8'], ['vpc_cidr must be an IPv4 network address with a prefix from /16 to /20, such as "10.40.0.0/16", got "10.0.0.0/8"']],
      ['a worker fleet of 0', 1, ['-var', 'worker_fleet={instance_type="c6i.large",min_size=0,max_size=4}'], ['worker_fleet.min_size must be a whole number of at least 1 (the role must always run), got 0']],
      ['an api fleet of 0', 1, ['-var', 'api_fleet={instance_type="t3.medium",min_size=0,max_size=0}'], ['api_fleet.min_size must be a whole number of at least 1']],
      ['an unknown instance type family', 2, ['-var', 'api_fleet={instance_type="z9.large",min_size=2,max_size=4}'], ['api_fleet.instance_type must be an x86_64 instance type of a known family']],
      ['an ARM instance type for an x64 bundle', 1, ['-var', 'lb_instance_type=t4g.small'], ['lb_instance_type must be an x86_64 instance type of a known family']],
      ['SSH open to the internet', 1, ['-var', 'admin_cidrs=["0.0.0.0/0"]'], ['admin_cidrs must not open SSH to the internet']],
      ['an admin CIDR that is not one', 2, ['-var', 'admin_cidrs=["203.0.113.300/32"]'], ['admin_cidrs must contain only IPv4 CIDR blocks']],
      ['no admin CIDR with a key pair', 3, ['-var', 'admin_cidrs=[]', '-var', 'ssh_key_name=cadfleet-admin'], ['admin_cidrs must list at least one CIDR block when ssh_key_name is set']],
      ["another environment's values", 1, ['-var', 'environment=prod'], ['environment must be "staging" (this stack was synthesized with CADFLEET_ENV=staging), got "prod"']],
      ['zones of another region', 1, ['-var', 'availability_zones=["eu-west-1a","eu-west-1b"]'], ['availability_zones must be empty (look them up) or list at least 2 distinct zones of region us-east-1']],
      ['a cache with 9 replicas', 1, ['-var', 'cache={replicas=9}'], ['cache.replicas must be a whole number from 0 to 5, got 9']],
      [
        'a repository with a wildcard, a deploy environment with one, another provider',
        2,
        ['-var', 'github_repository=acme/*', '-var', 'github_deploy_environment=prod*', '-var', 'github_oidc_provider_arn=arn:aws:iam::123456789012:oidc-provider/gitlab.com'],
        [
          'github_repository must be empty or "owner/repo" (a GitHub repository, no wildcards), got "acme/*"',
          'github_deploy_environment must be a GitHub environment name of letters, digits, ".", "_" or "-" (no wildcards), got "prod*"',
          'github_oidc_provider_arn must be empty or the ARN of an IAM OIDC provider for token.actions.githubusercontent.com, got "arn:aws:iam::123456789012:oidc-provider/gitlab.com"',
        ],
      ],
      [
        'a subject instead of a repository, without Session Manager; alarms and logs out of range',
        3,
        ['-var', 'github_repository=repo:acme/cadfleet', '-var', 'ssm_access=false', '-var', 'alarms={sessions_capacity_percent=150}', '-var', 'log_retention_days=42', '-var', 'alarm_email=ops'],
        [
          'github_repository must be empty or "owner/repo" (a GitHub repository, no wildcards), got "repo:acme/cadfleet"',
          'github_repository needs ssm_access = true',
          'alarms.sessions_capacity_percent must be from 1 to 100, got 150',
          'log_retention_days must be one of 1, 3, 5, 7, 14, 30',
          'alarm_email must be empty or an e-mail address, got "ops"',
        ],
      ],
    ];
    const groups = new Map<number, Promise<string>>();
    const groupPlan = (group: number): Promise<string> => {
      if (!groups.has(group)) {
        const members = cases.filter((c) => c[1] === group);
        const vars = members.flatMap((c) => c[2].filter((_, i) => i % 2 === 1).map((v) => v.split('=')[0]));
        // A variable set twice in one plan would hide the first value: the grouping must not.
        expect(new Set(vars).size, `group ${group} sets a variable twice: ${vars.join(', ')}`).toBe(vars.length);
        groups.set(group, badPlan(members.flatMap((c) => c[2])));
      }
      return groups.get(group)!;
    };

    it.concurrent.each(cases)('%s', async (_case, group, _extra, messages) => {
      const stderr = await groupPlan(group);
      for (const message of messages) expect(stderr).toContain(message);
    });

    it('a missing admin_cidrs', async () => {
      const withoutAdmins = path.join(workDir, 'no-admin-cidrs.tfvars');
      const example = fs.readFileSync(exampleVars, 'utf8');
      expect(example).toMatch(/^admin_cidrs\s*=/m);
      fs.writeFileSync(withoutAdmins, example.replace(/^admin_cidrs\s*=.*$/m, ''));
      expect(await badPlan([], withoutAdmins)).toContain('The root module input variable "admin_cidrs" is not set, and has no default value');
    });
  });
});

describe('the synthesized S3 backend', () => {
  // Terraform's S3 backend against s3rver, an S3-compatible server: proves that the backend
  // block as synthesized (with use_lockfile, added by override) is one Terraform accepts, and
  // that it locks with a lock file next to the state rather than a DynamoDB table.
  it('initializes and takes a native S3 lock file during plan', async () => {
    const dir = fs.mkdtempSync(path.join(workDir, 's3-backend-'));
    const stack = path.join(dir, 'stack');
    fs.mkdirSync(stack);
    fs.copyFileSync(path.join(stackDir, 'cdk.tf.json'), path.join(stack, 'cdk.tf.json'));
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const s3rver = spawn(
      process.execPath,
      [path.join(repoRoot, 'node_modules/s3rver/bin/s3rver.js'), '--silent', '-a', '127.0.0.1', '-p', String(port), '-d', path.join(dir, 's3'), '--configure-bucket', config.state.kind === 's3' ? config.state.bucket : ''],
      { stdio: 'ignore' },
    );
    try {
      await expect.poll(() => new Promise((resolve) => net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.end(); resolve(true); }).on('error', () => resolve(false))), { timeout: 10_000 }).toBe(true);
      const backendConfig = path.join(dir, 'backend.hcl');
      fs.writeFileSync(
        backendConfig,
        [
          `endpoints = { s3 = "http://127.0.0.1:${port}" }`,
          'use_path_style = true',
          'access_key = "S3RVER"',
          'secret_key = "S3RVER"',
          'skip_credentials_validation = true',
          'skip_requesting_account_id = true',
          'skip_metadata_api_check = true',
          'skip_s3_checksum = true',
        ].join('\n'),
      );
      const s3tf = offlineTerraform(stack, dir, { backend: 'as-synthesized' });
      await s3tf.ok(['init', '-input=false', `-backend-config=${backendConfig}`]);
      const planned = await s3tf.ok(['plan', '-input=false', '-refresh=false', `-var-file=${exampleVars}`, `-var-file=${offlineVars}`], { TF_LOG: 'INFO' });
      expect(planned.stderr).toContain('Locked remote state (S3 Native only)');
      expect(planned.stderr).toContain('Unlocked remote state (S3 Native only)');
      expect(planned.stderr).not.toMatch(/dynamodb/i);
    } finally {
      s3rver.kill();
    }
  }, 120_000);
});
