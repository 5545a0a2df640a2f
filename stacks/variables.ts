// The Terraform variables of an environment, each typed, described and validated. Their
// values come from a tfvars file (terraform.tfvars.example documents every one), so a bad
// value fails `terraform plan` with a message that names the variable and shows the value.
import { ref, TerraformVariable, Token } from './cdk';
import { isNotEmpty } from './tf';
import { hostImageParameterName, pinnedImageParameterName } from './contract';
import { Construct } from 'constructs';
import { GITHUB_ENVIRONMENT_PATTERN, GITHUB_OIDC_PROVIDER_ARN_PATTERN, GITHUB_REPOSITORY_PATTERN } from './constructs/github-deploy-role';

/** Retention periods CloudWatch Logs accepts, in days. */
export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/**
 * x86_64 instance families the fleet may use. The release bundle is linux-x64 (it carries
 * its own x64 Node runtime), so Graviton (t4g, m7g, ...) cannot run it.
 */
export const INSTANCE_FAMILIES = [
  't3', 't3a',
  'm5', 'm5a', 'm5n', 'm6i', 'm6a', 'm6in', 'm7i', 'm7i-flex', 'm7a',
  'c5', 'c5a', 'c5n', 'c6i', 'c6a', 'c6in', 'c7i', 'c7i-flex', 'c7a',
  'r5', 'r5a', 'r6i', 'r6a', 'r7i', 'r7a',
] as const;

/** Wraps an HCL expression for the JSON syntax, where strings are templates. */
const hcl = (expression: string): string => '${' + expression + '}';

const INSTANCE_TYPE_REGEX = String.raw`^(${INSTANCE_FAMILIES.join('|')})\\.[a-z0-9-]+$`;
const familyList = INSTANCE_FAMILIES.join(', ');

interface Rule {
  condition: string;
  message: string;
}

function instanceTypeRule(expression: string, name: string): Rule {
  return {
    condition: `can(regex("${INSTANCE_TYPE_REGEX}", ${expression}))`,
    message: `${name} must be an x86_64 instance type of a known family (${familyList}), got "${hcl(expression)}".`,
  };
}

function fleetRules(name: string): Rule[] {
  const v = `var.${name}`;
  return [
    instanceTypeRule(`${v}.instance_type`, `${name}.instance_type`),
    {
      condition: `${v}.min_size >= 1 && floor(${v}.min_size) == ${v}.min_size`,
      message: `${name}.min_size must be a whole number of at least 1 (the role must always run), got ${hcl(`${v}.min_size`)}.`,
    },
    {
      condition: `${v}.max_size >= ${v}.min_size && ${v}.max_size <= 100 && floor(${v}.max_size) == ${v}.max_size`,
      message: `${name}.max_size must be a whole number from min_size (${hcl(`${v}.min_size`)}) to 100, got ${hcl(`${v}.max_size`)}.`,
    },
    {
      condition: `${v}.root_volume_gb >= 8 && ${v}.root_volume_gb <= 1024`,
      message: `${name}.root_volume_gb must be from 8 to 1024, got ${hcl(`${v}.root_volume_gb`)}.`,
    },
  ];
}

const fleetType = (extra = ''): string =>
  `object({ instance_type = string, min_size = number, max_size = number, root_volume_gb = optional(number, 20)${extra} })`;

export interface FleetVariableValue {
  instance_type: string;
  min_size: number;
  max_size: number;
  root_volume_gb?: number;
}

export interface CadfleetVariablesProps {
  /** The environment this stack is synthesized for; `environment` in the tfvars must match it. */
  readonly environment: string;
  /** Default of `deletion_protection`. @default false */
  readonly production?: boolean;
  /** The state is in S3 (shared): a GitHub deploy role needs it, since a runner keeps nothing. @default false */
  readonly remoteState?: boolean;
}

/** All input variables of an environment's stack, with typed accessors. */
export class CadfleetVariables extends Construct {
  readonly region: TerraformVariable;
  readonly environment: TerraformVariable;
  readonly availabilityZones: TerraformVariable;
  readonly vpcCidr: TerraformVariable;
  readonly natGatewayMode: TerraformVariable;
  readonly adminCidrs: TerraformVariable;
  readonly sshKeyName: TerraformVariable;
  readonly ssmAccess: TerraformVariable;
  readonly amiId: TerraformVariable;
  readonly useHostImage: TerraformVariable;
  readonly lbInstanceType: TerraformVariable;
  readonly apiFleet: TerraformVariable;
  readonly workerFleet: TerraformVariable;
  readonly streamerFleet: TerraformVariable;
  readonly database: TerraformVariable;
  readonly cache: TerraformVariable;
  readonly domainName: TerraformVariable;
  readonly tlsCertificateParameter: TerraformVariable;
  readonly releasesBucketName: TerraformVariable;
  readonly converterLicenseParameter: TerraformVariable;
  readonly deletionProtection: TerraformVariable;
  readonly finalSnapshot: TerraformVariable;
  readonly emptyBucketsOnDestroy: TerraformVariable;
  readonly githubRepository: TerraformVariable;
  readonly githubDeployEnvironment: TerraformVariable;
  readonly githubOidcProviderArn: TerraformVariable;
  readonly alarms: TerraformVariable;
  readonly alarmEmail: TerraformVariable;
  readonly logRetentionDays: TerraformVariable;

  constructor(scope: Construct, id: string, props: CadfleetVariablesProps) {
    super(scope, id);
    // Logical ids are the names users write in tfvars (`var.<name>`), not path-derived ones.
    const variable = (name: string, config: { type: string; description: string; default?: unknown; rules?: Rule[] }): TerraformVariable => {
      const v = new TerraformVariable(this, name, {
        type: config.type,
        description: config.description,
        default: config.default,
        nullable: false,
        validation: config.rules?.map((r) => ({ condition: hcl(r.condition), errorMessage: r.message })),
      });
      v.overrideLogicalId(name);
      return v;
    };

    this.region = variable('region', {
      type: 'string',
      description: 'AWS region of the fleet, e.g. "eu-west-1".',
      rules: [{ condition: 'can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))', message: 'region must be an AWS region name such as "eu-west-1", got "${var.region}".' }],
    });
    this.environment = variable('environment', {
      type: 'string',
      description: `Environment name. Must be "${props.environment}": the tfvars file says which environment it is for, so that one environment's values are never applied to another.`,
      rules: [
        {
          condition: `var.environment == "${props.environment}"`,
          message: `environment must be "${props.environment}" (this stack was synthesized with CADFLEET_ENV=${props.environment}), got "\${var.environment}".`,
        },
      ],
    });
    this.availabilityZones = variable('availability_zones', {
      type: 'list(string)',
      default: [],
      description: 'Availability zones to spread the fleet over (the first two are used). Empty: the first two available zones of the region.',
      rules: [
        {
          condition:
            'length(var.availability_zones) == 0 || (length(var.availability_zones) >= 2 && length(distinct(var.availability_zones)) == length(var.availability_zones) && alltrue([for z in var.availability_zones : startswith(z, var.region)]))',
          message: 'availability_zones must be empty (look them up) or list at least 2 distinct zones of region ${var.region}, got ${jsonencode(var.availability_zones)}.',
        },
      ],
    });
    this.vpcCidr = variable('vpc_cidr', {
      type: 'string',
      default: '10.40.0.0/16',
      description: 'IPv4 range of the VPC, /16 to /20. Split into /20-sized (for a /16) public and private subnets per zone.',
      rules: [
        {
          condition: 'can(cidrhost(var.vpc_cidr, 0)) && !strcontains(var.vpc_cidr, ":") && can(regex("/(1[6-9]|20)$", var.vpc_cidr)) && try(cidrsubnet(var.vpc_cidr, 0, 0) == var.vpc_cidr, false)',
          message: 'vpc_cidr must be an IPv4 network address with a prefix from /16 to /20, such as "10.40.0.0/16", got "${var.vpc_cidr}".',
        },
      ],
    });
    this.natGatewayMode = variable('nat_gateway_mode', {
      type: 'string',
      default: 'single',
      description: '"single": one NAT gateway for the private subnets (cheaper; a zone outage cuts egress); "per_az": one per zone.',
      rules: [{ condition: 'contains(["single", "per_az"], var.nat_gateway_mode)', message: 'nat_gateway_mode must be "single" or "per_az", got "${var.nat_gateway_mode}".' }],
    });
    this.adminCidrs = variable('admin_cidrs', {
      type: 'list(string)',
      description: 'IPv4 CIDR blocks allowed to SSH to the bastion (the load balancer host). Required; [] only when ssh_key_name is empty (no SSH, Session Manager only).',
      rules: [
        {
          condition: 'alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && !strcontains(c, ":")])',
          message: 'admin_cidrs must contain only IPv4 CIDR blocks such as "203.0.113.7/32", got ${jsonencode(var.admin_cidrs)}.',
        },
        {
          condition: 'alltrue([for c in var.admin_cidrs : try(tonumber(split("/", c)[1]) >= 8, false)])',
          message: 'admin_cidrs must not open SSH to the internet: every block needs a prefix of /8 or longer, got ${jsonencode(var.admin_cidrs)}.',
        },
        {
          condition: 'length(var.admin_cidrs) > 0 || var.ssh_key_name == ""',
          message: 'admin_cidrs must list at least one CIDR block when ssh_key_name is set (SSH reaches the bastion only from these), got [].',
        },
      ],
    });
    this.sshKeyName = variable('ssh_key_name', {
      type: 'string',
      default: '',
      description: 'EC2 key pair installed for the SSH user on every host. Empty: no key pair; reach hosts through SSM Session Manager.',
      rules: [{ condition: 'length(var.ssh_key_name) <= 255', message: 'ssh_key_name must be at most 255 characters, got "${var.ssh_key_name}".' }],
    });
    this.ssmAccess = variable('ssm_access', {
      type: 'bool',
      default: true,
      description: 'Allow SSM Session Manager on every host (installs the agent at boot when the AMI lacks it, as Debian\'s do).',
    });
    this.amiId = variable('ami_id', {
      type: 'string',
      default: '',
      description:
        'AMI for every host (x86_64, Debian 12 based, root device /dev/xvda). Empty: the host image (use_host_image), else the official Debian 12 AMI that was newest at the first apply, pinned in SSM (/cadfleet/<environment>/pinned-ami) until an operator changes it.',
      rules: [{ condition: 'var.ami_id == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))', message: 'ami_id must be empty or an AMI id such as "ami-0123456789abcdef0", got "${var.ami_id}".' }],
    });
    this.useHostImage = variable('use_host_image', {
      type: 'bool',
      default: false,
      description: `Launch hosts from the AMI that images/aws/cadfleet-host.pkr.hcl built and published in SSM (${hostImageParameterName(props.environment)}), when ami_id is empty: packages and hardening are in place, so a new host serves sooner. false: the official Debian 12 AMI pinned at the first apply (${pinnedImageParameterName(props.environment)}).`,
    });
    this.lbInstanceType = variable('lb_instance_type', {
      type: 'string',
      default: 't3.small',
      description: 'Instance type of the nginx load balancer host.',
      rules: [instanceTypeRule('var.lb_instance_type', 'lb_instance_type')],
    });
    this.apiFleet = variable('api_fleet', {
      type: fleetType(),
      default: { instance_type: 't3.medium', min_size: 2, max_size: 4, root_volume_gb: 20 },
      description: 'api hosts: instance type, group size, root volume. Scales on CPU.',
      rules: fleetRules('api_fleet'),
    });
    this.workerFleet = variable('worker_fleet', {
      type: fleetType(', jobs_per_worker = optional(number, 2)'),
      default: { instance_type: 'c6i.large', min_size: 1, max_size: 4, root_volume_gb: 30, jobs_per_worker: 2 },
      description: 'Conversion workers: instance type, group size, root volume, and the queued jobs per worker the group scales to (QueueDepth / workers).',
      rules: [
        ...fleetRules('worker_fleet'),
        { condition: 'var.worker_fleet.jobs_per_worker >= 1', message: 'worker_fleet.jobs_per_worker must be at least 1, got ${var.worker_fleet.jobs_per_worker}.' },
      ],
    });
    this.streamerFleet = variable('streamer_fleet', {
      type: fleetType(', sessions_per_streamer = optional(number, 50)'),
      default: { instance_type: 't3.medium', min_size: 2, max_size: 4, root_volume_gb: 30, sessions_per_streamer: 50 },
      description: 'Streamers: instance type, group size, root volume (model cache), and the sessions per streamer the group scales to (ActiveSessions / streamers).',
      rules: [
        ...fleetRules('streamer_fleet'),
        { condition: 'var.streamer_fleet.sessions_per_streamer >= 1', message: 'streamer_fleet.sessions_per_streamer must be at least 1, got ${var.streamer_fleet.sessions_per_streamer}.' },
      ],
    });
    this.database = variable('database', {
      type: 'object({ instance_class = optional(string, "db.t4g.small"), allocated_storage_gb = optional(number, 20), max_allocated_storage_gb = optional(number, 100), multi_az = optional(bool, false), backup_retention_days = optional(number, 7) })',
      default: {},
      description: 'RDS PostgreSQL: instance class, storage (grows by itself up to max_allocated_storage_gb), Multi-AZ standby, days of automated backups.',
      rules: [
        { condition: String.raw`can(regex("^db\\.[a-z0-9-]+\\.[a-z0-9]+$", var.database.instance_class))`, message: 'database.instance_class must be an RDS instance class such as "db.t4g.small", got "${var.database.instance_class}".' },
        { condition: 'var.database.allocated_storage_gb >= 20 && var.database.allocated_storage_gb <= 65536', message: 'database.allocated_storage_gb must be from 20 to 65536, got ${var.database.allocated_storage_gb}.' },
        { condition: 'var.database.max_allocated_storage_gb >= var.database.allocated_storage_gb', message: 'database.max_allocated_storage_gb must be at least allocated_storage_gb (${var.database.allocated_storage_gb}), got ${var.database.max_allocated_storage_gb}.' },
        { condition: 'var.database.backup_retention_days >= 1 && var.database.backup_retention_days <= 35', message: 'database.backup_retention_days must be from 1 to 35 (backups stay on), got ${var.database.backup_retention_days}.' },
      ],
    });
    this.cache = variable('cache', {
      type: 'object({ node_type = optional(string, "cache.t4g.small"), replicas = optional(number, 1) })',
      default: {},
      description: 'ElastiCache Redis: node type and read replicas (1 or more: automatic failover across zones).',
      rules: [
        { condition: String.raw`can(regex("^cache\\.[a-z0-9-]+\\.[a-z0-9]+$", var.cache.node_type))`, message: 'cache.node_type must be an ElastiCache node type such as "cache.t4g.small", got "${var.cache.node_type}".' },
        { condition: 'var.cache.replicas >= 0 && var.cache.replicas <= 5 && floor(var.cache.replicas) == var.cache.replicas', message: 'cache.replicas must be a whole number from 0 to 5, got ${var.cache.replicas}.' },
      ],
    });
    this.domainName = variable('domain_name', {
      type: 'string',
      default: '',
      description: 'DNS name users reach the load balancer by (point an A record at the lb_public_ip output). Without tls_certificate_parameter the load balancer gets its certificate from Let\'s Encrypt for it (HTTP-01) and renews it. Empty: the Elastic IP, with a self-signed certificate.',
      rules: [
        {
          condition: String.raw`var.domain_name == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name))`,
          message: 'domain_name must be empty or a lowercase DNS name such as "cad.example.com", got "${var.domain_name}".',
        },
      ],
    });
    this.tlsCertificateParameter = variable('tls_certificate_parameter', {
      type: 'string',
      default: '',
      description: 'SSM SecureString parameter (a name starting with /) holding the PEM certificate chain and key for domain_name; the load balancer reads it at boot. Empty: Let\'s Encrypt for domain_name (a self-signed certificate until it arrives, and without domain_name; cadfleet status warns).',
      rules: [
        { condition: 'var.tls_certificate_parameter == "" || can(regex("^/[A-Za-z0-9_./-]+$", var.tls_certificate_parameter))', message: 'tls_certificate_parameter must be empty or an SSM parameter name starting with "/", got "${var.tls_certificate_parameter}".' },
        { condition: 'var.tls_certificate_parameter == "" || var.domain_name != ""', message: 'tls_certificate_parameter must be empty when domain_name is empty (a certificate is for a name), got "${var.tls_certificate_parameter}".' },
      ],
    });
    this.releasesBucketName = variable('releases_bucket_name', {
      type: 'string',
      default: '',
      description: 'Name of the releases bucket this stack creates. Empty: a unique name starting with cadfleet-<environment>-releases-.',
      rules: [
        { condition: 'var.releases_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.releases_bucket_name))', message: 'releases_bucket_name must be empty or an S3 bucket name, got "${var.releases_bucket_name}".' },
      ],
    });
    this.converterLicenseParameter = variable('converter_license_parameter', {
      type: 'string',
      default: '',
      description: 'SSM parameter (a name starting with /) with the licence of a commercial converter; only workers may read it. Empty: no licence.',
      rules: [
        { condition: 'var.converter_license_parameter == "" || can(regex("^/[A-Za-z0-9_./-]+$", var.converter_license_parameter))', message: 'converter_license_parameter must be empty or an SSM parameter name starting with "/", got "${var.converter_license_parameter}".' },
      ],
    });
    this.deletionProtection = variable('deletion_protection', {
      type: 'bool',
      default: props.production ?? false,
      description: 'Refuse to delete the database (RDS deletion protection): a destroy, or a change that replaces it, fails until this is false and applied. Default: true for environments named prod*.',
    });
    this.finalSnapshot = variable('final_snapshot', {
      type: 'bool',
      default: true,
      description:
        'On destroy, take a final snapshot of the database (cadfleet-<environment>-final-<VPC id>) and keep its automated backups. Always on for environments named prod*, whatever this says.',
    });
    this.emptyBucketsOnDestroy = variable('empty_buckets_on_destroy', {
      type: 'bool',
      default: false,
      description: 'Let destroy delete the models and releases buckets with every object and version in them. false: destroy stops at a bucket that holds objects.',
    });
    this.githubRepository = variable('github_repository', {
      type: 'string',
      default: '',
      description:
        'GitHub repository ("owner/repo", as GitHub spells it) whose deploy workflow may assume this environment\'s deploy role through GitHub OIDC. Empty: no deploy role.',
      rules: [
        {
          condition: `var.github_repository == "" || can(regex("${GITHUB_REPOSITORY_PATTERN.replaceAll('\\', '\\\\')}", var.github_repository))`,
          message: 'github_repository must be empty or "owner/repo" (a GitHub repository, no wildcards), got "${var.github_repository}".',
        },
        ...(props.remoteState
          ? []
          : [
              {
                condition: 'var.github_repository == ""',
                message: 'github_repository must be empty while the state is local: a GitHub runner keeps no state (synthesize with CADFLEET_STATE_BUCKET), got "${var.github_repository}".',
              },
            ]),
        {
          condition: 'var.github_repository == "" || var.ssm_access',
          message: 'github_repository needs ssm_access = true: the deploy workflow reaches hosts through Session Manager, got "${var.github_repository}" with ssm_access = false.',
        },
      ],
    });
    this.githubDeployEnvironment = variable('github_deploy_environment', {
      type: 'string',
      default: props.environment,
      description: `GitHub environment of the deploy job (its protection rules decide who may deploy). The role trusts exactly the subject repo:<github_repository>:environment:<this>. Default: "${props.environment}".`,
      rules: [
        {
          condition: `can(regex("${GITHUB_ENVIRONMENT_PATTERN}", var.github_deploy_environment))`,
          message: 'github_deploy_environment must be a GitHub environment name of letters, digits, ".", "_" or "-" (no wildcards), got "${var.github_deploy_environment}".',
        },
      ],
    });
    this.githubOidcProviderArn = variable('github_oidc_provider_arn', {
      type: 'string',
      default: '',
      description:
        'ARN of the account\'s IAM OIDC provider for token.actions.githubusercontent.com (an account has one per URL, shared by its environments; no environment creates it: docs/aws.md). Empty: looked up by its URL when github_repository is set.',
      rules: [
        {
          condition: `var.github_oidc_provider_arn == "" || can(regex("${GITHUB_OIDC_PROVIDER_ARN_PATTERN.replaceAll('\\', '\\\\')}", var.github_oidc_provider_arn))`,
          message: 'github_oidc_provider_arn must be empty or the ARN of an IAM OIDC provider for token.actions.githubusercontent.com, got "${var.github_oidc_provider_arn}".',
        },
      ],
    });
    this.alarms = variable('alarms', {
      type: 'object({ queue_depth = optional(number), queue_depth_minutes = optional(number, 15), oldest_job_age_seconds = optional(number, 900), http_5xx_per_5_minutes = optional(number, 10), sessions_capacity_percent = optional(number, 80) })',
      default: {},
      description:
        'Alarm thresholds: queued jobs (default: worker_fleet.max_size x jobs_per_worker, the backlog the largest worker fleet is sized for) for queue_depth_minutes; the oldest waiting job\'s age; 5xx responses per 5 minutes; open sessions as a percentage of the largest streamer fleet\'s capacity.',
      rules: [
        { condition: 'var.alarms.queue_depth == null || try(var.alarms.queue_depth >= 1, false)', message: 'alarms.queue_depth must be null (derived from worker_fleet) or at least 1, got ${jsonencode(var.alarms.queue_depth)}.' },
        {
          condition: 'var.alarms.queue_depth_minutes >= 1 && var.alarms.queue_depth_minutes <= 1440 && floor(var.alarms.queue_depth_minutes) == var.alarms.queue_depth_minutes',
          message: 'alarms.queue_depth_minutes must be a whole number from 1 to 1440, got ${var.alarms.queue_depth_minutes}.',
        },
        { condition: 'var.alarms.oldest_job_age_seconds >= 60', message: 'alarms.oldest_job_age_seconds must be at least 60, got ${var.alarms.oldest_job_age_seconds}.' },
        { condition: 'var.alarms.http_5xx_per_5_minutes >= 1', message: 'alarms.http_5xx_per_5_minutes must be at least 1, got ${var.alarms.http_5xx_per_5_minutes}.' },
        {
          condition: 'var.alarms.sessions_capacity_percent >= 1 && var.alarms.sessions_capacity_percent <= 100',
          message: 'alarms.sessions_capacity_percent must be from 1 to 100, got ${var.alarms.sessions_capacity_percent}.',
        },
      ],
    });
    this.alarmEmail = variable('alarm_email', {
      type: 'string',
      default: '',
      description: 'E-mail address that alarms and recoveries are sent to, through an SNS topic (the address must confirm the subscription). Empty: no topic; alarms show in the console only.',
      rules: [
        {
          condition: 'var.alarm_email == "" || can(regex("^[^@ ]+@[^@ ]+[.][^@ ]+$", var.alarm_email))',
          message: 'alarm_email must be empty or an e-mail address, got "${var.alarm_email}".',
        },
      ],
    });
    this.logRetentionDays = variable('log_retention_days', {
      type: 'number',
      default: 30,
      description: 'Days CloudWatch Logs keeps the hosts\' journald logs and metric records.',
      rules: [
        {
          condition: `contains([${LOG_RETENTION_DAYS.join(', ')}], var.log_retention_days)`,
          message: `log_retention_days must be one of ${LOG_RETENTION_DAYS.join(', ')}, got \${var.log_retention_days}.`,
        },
      ],
    });
  }

  /** A field of an object variable, e.g. `field(this.apiFleet, 'min_size')`. */
  static field(variable: TerraformVariable, name: string): string {
    return Token.asString(ref(`var.${variable.friendlyUniqueId}.${name}`));
  }

  static numberField(variable: TerraformVariable, name: string): number {
    return Token.asNumber(ref(`var.${variable.friendlyUniqueId}.${name}`));
  }

  /** `true` when the string variable is set (not empty), as a Terraform expression. */
  static isSet(variable: TerraformVariable): boolean {
    return isNotEmpty(variable.stringValue);
  }
}
