// The nginx load balancer: one EC2 host behind an Elastic IP, in an auto scaling group of
// exactly one. An ELB cannot route a WebSocket to the streamer a session names, so nginx
// does it (DESIGN.md); the group replaces a dead host, and the new host takes the Elastic IP
// over at boot, so the address users know never changes.
import type { ITerraformDependable } from '../cdk';
import { AutoscalingGroup, type Eip } from '../aws';
import { Construct } from 'constructs';
import { HEALTH_CHECK_GRACE_SECONDS } from '../boot-timing';
import { must } from '../validate';
import { HostLaunchTemplate, type HostLaunchTemplateProps } from './host-launch-template';

export interface LoadBalancerProps extends Omit<HostLaunchTemplateProps, 'role' | 'publicIp'> {
  /** Public subnets, one per zone: the group relaunches in another zone if one fails. */
  readonly subnetIds: string[];
  /** The address the host claims at boot (its boot script must do so). */
  readonly elasticIp: Eip;
  /**
   * What the host's boot script reads by name, besides the Elastic IP: its role's policies, the
   * settings parameter, the route to the internet gateway. The group is created after them
   * (depends_on). @default the Elastic IP only
   */
  readonly bootDependencies?: ITerraformDependable[];
}

export class LoadBalancer extends Construct {
  readonly launchTemplate: HostLaunchTemplate;
  readonly group: AutoscalingGroup;

  constructor(scope: Construct, id: string, props: LoadBalancerProps) {
    super(scope, id);
    must(props.subnetIds.length > 0, 'subnetIds', 'name at least one public subnet', props.subnetIds);
    this.launchTemplate = new HostLaunchTemplate(this, 'launch-template', { ...props, role: 'lb', publicIp: true });
    this.group = new AutoscalingGroup(this, 'group', {
      name: props.name,
      vpcZoneIdentifier: props.subnetIds,
      minSize: 1,
      maxSize: 1,
      launchTemplate: { id: this.launchTemplate.template.id, version: this.launchTemplate.template.latestVersion.toString() },
      // EC2 status checks: a host that stops answering them is replaced; so is one that reports
      // its boot failed.
      healthCheckType: 'EC2',
      healthCheckGracePeriod: HEALTH_CHECK_GRACE_SECONDS,
      tag: [{ key: 'Name', value: props.name, propagateAtLaunch: false }],
      dependsOn: [props.elasticIp, ...(props.bootDependencies ?? [])],
    });
  }
}
