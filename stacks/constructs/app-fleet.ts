// An auto scaling group of one app role in the private subnets. It scales on CPU, on a
// fleet-wide cadfleet metric divided by the hosts in service (queued jobs per worker), or on
// the average of a metric each host publishes for itself (sessions per streamer), and can
// hold terminating hosts so they drain before they go.
import type { ITerraformDependable } from '../cdk';
import { AutoscalingGroup, AutoscalingPolicy } from '../aws';
import { Construct } from 'constructs';
import { HEALTH_CHECK_GRACE_SECONDS } from '../boot-timing';
import { DRAIN_HOOK } from '../contract';
import { METRICS_DIMENSION, METRICS_NAMESPACE, type MetricName } from '../metrics';
import { must, mustBeIntegerIn } from '../validate';
import { HostLaunchTemplate, type HostLaunchTemplateProps } from './host-launch-template';

/** Scale so that the fleet's average CPU stays near a target. */
export interface CpuScaling {
  readonly kind: 'cpu';
  /** @default 60 */
  readonly targetPercent?: number;
}

/** Scale so that a fleet-wide cadfleet metric divided by the hosts in service stays near a target. */
export interface PerHostScaling {
  readonly kind: 'per-host';
  readonly metric: MetricName;
  /** Value of the metric per host the group aims at. */
  readonly targetPerHost: number;
}

/** Scale so that the average of a cadfleet metric that each host publishes for itself stays near a target. */
export interface HostAverageScaling {
  readonly kind: 'host-average';
  readonly metric: MetricName;
  /** Average value per host the group aims at. */
  readonly target: number;
}

export interface AppFleetProps extends HostLaunchTemplateProps {
  readonly subnetIds: string[];
  readonly minSize: number;
  readonly maxSize: number;
  readonly scaling: CpuScaling | PerHostScaling | HostAverageScaling;
  /**
   * Hold a terminating host this long (a lifecycle hook) so it can finish its work; the host
   * ends the wait itself when it has drained. @default no hook
   */
  readonly drainTimeoutSeconds?: number;
  /** Seconds a new host needs before its metrics count. @default 180 */
  readonly warmupSeconds?: number;
  /**
   * What the hosts' boot script reads by name, which Terraform cannot see in any reference:
   * their role's policies, the settings parameter, a route out of the subnets. The group, and so
   * every host it launches on the first apply, is created only after them (depends_on).
   * @default none
   */
  readonly bootDependencies?: ITerraformDependable[];
}

export function validateAppFleetProps(props: AppFleetProps): void {
  must(props.role !== 'lb', 'role', 'be an app role (api, worker, streamer)', props.role);
  must(props.subnetIds.length > 0, 'subnetIds', 'name at least one subnet', props.subnetIds);
  mustBeIntegerIn(props.minSize, 'minSize', 1, 100);
  mustBeIntegerIn(props.maxSize, 'maxSize', 1, 100);
  // AWS bounds on lifecycle hook heartbeats.
  mustBeIntegerIn(props.drainTimeoutSeconds, 'drainTimeoutSeconds', 30, 7200);
  mustBeIntegerIn(props.warmupSeconds, 'warmupSeconds', 0, 3600);
  if (props.scaling.kind === 'cpu') mustBeIntegerIn(props.scaling.targetPercent, 'scaling.targetPercent', 10, 95);
}

export class AppFleet extends Construct {
  readonly launchTemplate: HostLaunchTemplate;
  readonly group: AutoscalingGroup;

  constructor(scope: Construct, id: string, props: AppFleetProps) {
    super(scope, id);
    validateAppFleetProps(props);
    this.launchTemplate = new HostLaunchTemplate(this, 'launch-template', props);

    this.group = new AutoscalingGroup(this, 'group', {
      name: props.name,
      vpcZoneIdentifier: props.subnetIds,
      minSize: props.minSize,
      maxSize: props.maxSize,
      launchTemplate: { id: this.launchTemplate.template.id, version: this.launchTemplate.template.latestVersion.toString() },
      // EC2 status checks, and the host's own report when its boot or its service fails.
      healthCheckType: 'EC2',
      healthCheckGracePeriod: HEALTH_CHECK_GRACE_SECONDS,
      defaultInstanceWarmup: props.warmupSeconds ?? 180,
      // GroupInServiceInstances is the divisor of the per-host scaling metric.
      enabledMetrics: ['GroupInServiceInstances', 'GroupDesiredCapacity', 'GroupMinSize', 'GroupMaxSize'],
      metricsGranularity: '1Minute',
      ...(props.drainTimeoutSeconds === undefined
        ? {}
        : {
            initialLifecycleHook: [
              {
                name: DRAIN_HOOK,
                lifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
                heartbeatTimeout: props.drainTimeoutSeconds,
                // A host that never reports back is terminated anyway after the timeout.
                defaultResult: 'CONTINUE',
              },
            ],
            // Deleting the group (destroy, or a replacement) terminates its hosts without the
            // drain hook: otherwise each waits out the hook's timeout (a host that never got a
            // release runs no lifecycle watcher to complete it), past the provider's 10-minute
            // wait. Work is not lost: a conversion a host took is retried by another worker once
            // its lock lapses, and a viewer resumes on another streamer.
            forceDelete: true,
            timeouts: { delete: '30m' },
          }),
      tag: [{ key: 'Name', value: props.name, propagateAtLaunch: false }],
      dependsOn: props.bootDependencies,
    });

    const scaling = props.scaling;
    if (scaling.kind === 'cpu') {
      new AutoscalingPolicy(this, 'scaling', {
        name: `${props.name}-cpu`,
        autoscalingGroupName: this.group.name,
        policyType: 'TargetTrackingScaling',
        targetTrackingConfiguration: {
          predefinedMetricSpecification: { predefinedMetricType: 'ASGAverageCPUUtilization' },
          targetValue: scaling.targetPercent ?? 60,
        },
      });
    } else if (scaling.kind === 'host-average') {
      new AutoscalingPolicy(this, 'scaling', {
        name: `${props.name}-${scaling.metric}-per-host`,
        autoscalingGroupName: this.group.name,
        policyType: 'TargetTrackingScaling',
        targetTrackingConfiguration: {
          targetValue: scaling.target,
          customizedMetricSpecification: {
            metrics: [
              {
                id: 'perhost',
                label: `${scaling.metric} per host`,
                returnData: true,
                metricStat: {
                  // Every host publishes its own value under the same dimension: their average.
                  stat: 'Average',
                  metric: { namespace: METRICS_NAMESPACE, metricName: scaling.metric, dimensions: [{ name: METRICS_DIMENSION, value: props.environment }] },
                },
              },
            ],
          },
        },
      });
    } else {
      new AutoscalingPolicy(this, 'scaling', {
        name: `${props.name}-${scaling.metric}-per-host`,
        autoscalingGroupName: this.group.name,
        policyType: 'TargetTrackingScaling',
        targetTrackingConfiguration: {
          targetValue: scaling.targetPerHost,
          customizedMetricSpecification: {
            metrics: [
              {
                id: 'fleet',
                label: `${scaling.metric} of ${props.environment}`,
                returnData: false,
                metricStat: {
                  // Maximum: several hosts may publish the same fleet-wide value.
                  stat: 'Maximum',
                  metric: { namespace: METRICS_NAMESPACE, metricName: scaling.metric, dimensions: [{ name: METRICS_DIMENSION, value: props.environment }] },
                },
              },
              {
                id: 'hosts',
                label: 'hosts in service',
                returnData: false,
                metricStat: {
                  stat: 'Average',
                  metric: { namespace: 'AWS/AutoScaling', metricName: 'GroupInServiceInstances', dimensions: [{ name: 'AutoScalingGroupName', value: this.group.name }] },
                },
              },
              { id: 'perhost', label: `${scaling.metric} per host`, expression: 'fleet / hosts', returnData: true },
            ],
          },
        },
      });
    }
  }
}
