// Who may talk to whom, in one place. Only the load balancer is reachable from the
// internet, on 80/443; SSH reaches it from the admin networks only, and the private hosts
// only through it (it is the bastion). App ports, PostgreSQL and Redis are open to named
// security groups, never to address ranges.
import { Fn, TerraformCount } from '../cdk';
import { SecurityGroup, VpcSecurityGroupEgressRule, VpcSecurityGroupIngressRule } from '../aws';
import { Construct } from 'constructs';
import { APP_ROLES, HOST_ROLES, PORTS, type AppRole } from '../contract';
import { must } from '../validate';

export interface SecurityGroupsProps {
  /** Prefix of resource names, e.g. `cadfleet-staging`. */
  readonly name: string;
  readonly vpcId: string;
  /** IPv4 blocks allowed to SSH to the load balancer (bastion). May be an empty list. */
  readonly adminCidrs: string[];
}

export type GroupName = 'lb' | AppRole | 'database' | 'cache';

const WORLD = '0.0.0.0/0';

export class SecurityGroups extends Construct {
  readonly groups: Record<GroupName, SecurityGroup>;

  constructor(scope: Construct, id: string, props: SecurityGroupsProps) {
    super(scope, id);
    must(props.name.length > 0, 'name', 'be set', props.name);

    const group = (key: GroupName, description: string): SecurityGroup =>
      // Rules are separate resources below; a group with no egress argument has no egress.
      new SecurityGroup(this, key, {
        name: `${props.name}-${key}`,
        description,
        vpcId: props.vpcId,
        tags: { Name: `${props.name}-${key}` },
      });
    this.groups = {
      lb: group('lb', 'cadfleet load balancer and bastion: HTTP(S) from anywhere, SSH from admin networks'),
      api: group('api', 'cadfleet api hosts'),
      worker: group('worker', 'cadfleet conversion workers'),
      streamer: group('streamer', 'cadfleet streaming hosts'),
      database: group('database', 'cadfleet PostgreSQL: from app hosts only'),
      cache: group('cache', 'cadfleet Redis: from the load balancer and app hosts only'),
    };
    const g = this.groups;

    const ingress = (key: string, to: SecurityGroup, port: number, from: SecurityGroup, description: string): void => {
      new VpcSecurityGroupIngressRule(this, `${key}-in`, {
        securityGroupId: to.id,
        referencedSecurityGroupId: from.id,
        ipProtocol: 'tcp',
        fromPort: port,
        toPort: port,
        description,
      });
    };
    const egress = (key: string, from: SecurityGroup, port: number, to: SecurityGroup | typeof WORLD, description: string): void => {
      new VpcSecurityGroupEgressRule(this, `${key}-out`, {
        securityGroupId: from.id,
        ...(to === WORLD ? { cidrIpv4: WORLD } : { referencedSecurityGroupId: to.id }),
        ipProtocol: 'tcp',
        fromPort: port,
        toPort: port,
        description,
      });
    };

    // Internet -> load balancer: the only rules with a world-wide source.
    for (const port of [PORTS.http, PORTS.https]) {
      new VpcSecurityGroupIngressRule(this, `lb-${port}-from-world`, {
        securityGroupId: g.lb.id,
        cidrIpv4: WORLD,
        ipProtocol: 'tcp',
        fromPort: port,
        toPort: port,
        description: port === PORTS.http ? 'HTTP (redirect, ACME challenges)' : 'HTTPS',
      });
    }
    const admins = TerraformCount.of(Fn.lengthOf(props.adminCidrs));
    new VpcSecurityGroupIngressRule(this, 'lb-ssh-from-admins', {
      count: admins,
      securityGroupId: g.lb.id,
      cidrIpv4: Fn.element(props.adminCidrs, admins.index),
      ipProtocol: 'tcp',
      fromPort: PORTS.ssh,
      toPort: PORTS.ssh,
      description: 'SSH from an admin network',
    });

    // Load balancer -> app ports; bastion -> SSH on private hosts.
    ingress('api-from-lb', g.api, PORTS.api, g.lb, 'api traffic from nginx');
    egress('lb-to-api', g.lb, PORTS.api, g.api, 'api upstreams');
    ingress('streamer-from-lb', g.streamer, PORTS.streamer, g.lb, 'WebSocket sessions from nginx');
    egress('lb-to-streamer', g.lb, PORTS.streamer, g.streamer, 'streamer upstreams');
    for (const role of APP_ROLES) {
      ingress(`${role}-ssh-from-bastion`, g[role], PORTS.ssh, g.lb, 'SSH through the bastion');
      egress(`lb-ssh-to-${role}`, g.lb, PORTS.ssh, g[role], 'SSH jump to private hosts');
    }

    // Data stores: PostgreSQL for app hosts; Redis for app hosts and the load balancer,
    // whose sync service follows the node registry.
    for (const role of APP_ROLES) {
      ingress(`database-from-${role}`, g.database, PORTS.postgres, g[role], `PostgreSQL from ${role} hosts`);
      egress(`${role}-to-database`, g[role], PORTS.postgres, g.database, 'PostgreSQL');
    }
    for (const role of HOST_ROLES) {
      ingress(`cache-from-${role}`, g.cache, PORTS.redis, g[role], `Redis from ${role} hosts`);
      egress(`${role}-to-cache`, g[role], PORTS.redis, g.cache, 'Redis');
    }

    // Egress to the internet: HTTPS for AWS APIs, the RDS CA bundle and ACME; HTTP for the
    // Debian mirror (apt verifies signatures). Security groups do not filter the Amazon DNS
    // server, the time service or instance metadata, so those need no rule.
    for (const role of HOST_ROLES) {
      egress(`${role}-https`, g[role], PORTS.https, WORLD, 'HTTPS: AWS APIs, S3, packages');
      egress(`${role}-http`, g[role], PORTS.http, WORLD, 'HTTP: Debian package mirror');
    }
  }
}
