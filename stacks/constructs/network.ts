// VPC across zones: public subnets (load balancer, NAT), private subnets (everything else),
// NAT for the private subnets' egress, and an S3 gateway endpoint so that bundle and model
// traffic skips the NAT (cheaper, and it stays on the AWS network).
import { Fn, type ITerraformDependable, Op, TerraformCount, Token } from '../cdk';
import { DefaultSecurityGroup, Eip, InternetGateway, NatGateway, Route, RouteTable, RouteTableAssociation, Subnet, Vpc, VpcEndpoint } from '../aws';
import { Construct } from 'constructs';
import { splat } from '../tf';
import { isToken, must, mustBeIntegerIn } from '../validate';

export interface NetworkProps {
  /** Prefix of resource names, e.g. `cadfleet-staging`. */
  readonly name: string;
  /** IPv4 range of the VPC (/16 to /20). */
  readonly cidr: string;
  /** Zones to use, in order; at least `zoneCount` of them. */
  readonly availabilityZones: string[];
  /** How many zones the subnets span. @default 2 */
  readonly zoneCount?: number;
  /** `single` NAT gateway or one `per_az`. @default "single" */
  readonly natGatewayMode?: string;
  readonly region: string;
}

export function validateNetworkProps(props: NetworkProps): void {
  mustBeIntegerIn(props.zoneCount, 'zoneCount', 2, 6);
  if (!isToken(props.natGatewayMode) && props.natGatewayMode !== undefined) {
    must(['single', 'per_az'].includes(props.natGatewayMode), 'natGatewayMode', 'be "single" or "per_az"', props.natGatewayMode);
  }
  if (!isToken(props.availabilityZones)) {
    must(props.availabilityZones.length >= (props.zoneCount ?? 2), 'availabilityZones', `list at least ${props.zoneCount ?? 2} zones`, props.availabilityZones);
  }
}

/** Subnets are 1/16 of the VPC each: public ones from index 0, private ones from index 8. */
const PRIVATE_OFFSET = 8;

export class Network extends Construct {
  readonly vpc: Vpc;
  readonly publicSubnets: Subnet[] = [];
  readonly privateSubnets: Subnet[] = [];
  /**
   * What makes a public subnet reach the internet: the default route to the internet gateway
   * and each subnet's association with its table. A host there needs them before it boots.
   */
  readonly publicEgress: ITerraformDependable[] = [];
  /**
   * What makes a private subnet reach AWS and the internet: each default route through a NAT
   * gateway (which waits for the gateway to be available), each subnet's association with its
   * table, and the S3 gateway endpoint (adding it later changes the routes under connections
   * already open to S3).
   */
  readonly privateEgress: ITerraformDependable[] = [];

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    validateNetworkProps(props);
    const zones = props.zoneCount ?? 2;
    const name = props.name;

    this.vpc = new Vpc(this, 'vpc', { cidrBlock: props.cidr, enableDnsHostnames: true, enableDnsSupport: true, tags: { Name: name } });

    // AWS gives every VPC a default security group that lets its members talk freely; no
    // cadfleet host uses it, and an empty one cannot be attached by mistake to open a path.
    new DefaultSecurityGroup(this, 'default-sg', { vpcId: this.vpc.id, tags: { Name: `${name}-default-unused` } });

    const igw = new InternetGateway(this, 'igw', { vpcId: this.vpc.id, tags: { Name: name } });
    const publicRoutes = new RouteTable(this, 'public-routes', { vpcId: this.vpc.id, tags: { Name: `${name}-public` } });
    this.publicEgress.push(new Route(this, 'public-default-route', { routeTableId: publicRoutes.id, destinationCidrBlock: '0.0.0.0/0', gatewayId: igw.id }));

    for (let i = 0; i < zones; i++) {
      const zone = Fn.element(props.availabilityZones, i);
      const pub = new Subnet(this, `public-${i}`, {
        vpcId: this.vpc.id,
        availabilityZone: zone,
        cidrBlock: Fn.cidrsubnet(props.cidr, 4, i),
        // The load balancer's launch template asks for a public address explicitly; nothing
        // else launched here gets one by accident.
        mapPublicIpOnLaunch: false,
        tags: { Name: `${name}-public-${i}`, 'cadfleet:tier': 'public' },
      });
      this.publicEgress.push(new RouteTableAssociation(this, `public-${i}-routes`, { subnetId: pub.id, routeTableId: publicRoutes.id }));
      this.publicSubnets.push(pub);
    }

    const natCount = TerraformCount.of(Token.asNumber(Fn.conditional(Op.eq(props.natGatewayMode ?? 'single', 'per_az'), zones, 1)));
    const natIps = new Eip(this, 'nat-ip', { count: natCount, domain: 'vpc', tags: { Name: `${name}-nat-${Token.asString(natCount.index)}` } });
    const nats = new NatGateway(this, 'nat', {
      count: natCount,
      allocationId: Fn.element(splat(natIps, 'id'), Token.asNumber(natCount.index)),
      subnetId: Fn.element(this.publicSubnets.map((s) => s.id), Token.asNumber(natCount.index)),
      tags: { Name: `${name}-nat-${Token.asString(natCount.index)}` },
      dependsOn: [igw],
    });

    const routeTables = [publicRoutes.id];
    for (let i = 0; i < zones; i++) {
      const priv = new Subnet(this, `private-${i}`, {
        vpcId: this.vpc.id,
        availabilityZone: Fn.element(props.availabilityZones, i),
        cidrBlock: Fn.cidrsubnet(props.cidr, 4, PRIVATE_OFFSET + i),
        mapPublicIpOnLaunch: false,
        tags: { Name: `${name}-private-${i}`, 'cadfleet:tier': 'private' },
      });
      const routes = new RouteTable(this, `private-${i}-routes`, { vpcId: this.vpc.id, tags: { Name: `${name}-private-${i}` } });
      // element() wraps around: with a single NAT gateway every zone uses it.
      this.privateEgress.push(
        new Route(this, `private-${i}-default-route`, {
          routeTableId: routes.id,
          destinationCidrBlock: '0.0.0.0/0',
          natGatewayId: Fn.element(splat(nats, 'id'), i),
        }),
        new RouteTableAssociation(this, `private-${i}-association`, { subnetId: priv.id, routeTableId: routes.id }),
      );
      this.privateSubnets.push(priv);
      routeTables.push(routes.id);
    }

    this.privateEgress.push(
      new VpcEndpoint(this, 's3-endpoint', {
        vpcId: this.vpc.id,
        serviceName: `com.amazonaws.${props.region}.s3`,
        vpcEndpointType: 'Gateway',
        routeTableIds: routeTables,
        tags: { Name: `${name}-s3` },
      }),
    );
  }
}

