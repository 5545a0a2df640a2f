// CloudWatch alarms on cadfleet's own metrics (namespace and dimension from stacks/metrics.ts,
// the names the scaling policies use), optionally sent to an e-mail address through an SNS
// topic that only this environment's alarms may publish to.
import { Construct } from 'constructs';
import { CloudwatchMetricAlarm, DataAwsIamPolicyDocument, SnsTopic, SnsTopicPolicy, SnsTopicSubscription } from '../aws';
import { METRICS, METRICS_DIMENSION, METRICS_NAMESPACE, type MetricName } from '../metrics';
import { countIf, isNotEmpty, only, splat } from '../tf';
import { isToken, must, mustBeIntegerIn } from '../validate';

export type AlarmStatistic = 'Maximum' | 'Minimum' | 'Average' | 'Sum';
export type MissingData = 'missing' | 'notBreaching' | 'breaching' | 'ignore';

export interface MetricAlarmSpec {
  /** The cadfleet metric (a value of METRICS). */
  readonly metric: MetricName;
  /** Ends the alarm's name `<name>-<metric>-<suffix>`, e.g. `high`. */
  readonly suffix: string;
  readonly statistic: AlarmStatistic;
  /** The alarm fires when the statistic is at least this. */
  readonly threshold: number;
  /** @default 60 */
  readonly periodSeconds?: number;
  /** Consecutive periods over the threshold before the alarm fires. */
  readonly evaluationPeriods: number;
  /**
   * The metric is one value per host of this auto scaling group: alarm on the fleet's total,
   * its average times the hosts in service (robust to hosts scraped twice or not at all in a
   * period). `statistic` then applies per host. @default a fleet-wide metric
   */
  readonly perHostOfGroup?: string;
  /** What a period without data counts as. @default "missing" */
  readonly treatMissingData?: MissingData;
  /** Says what is wrong and where to look. */
  readonly description: string;
}

export interface MetricAlarmsProps {
  /** Prefix of alarm and topic names, e.g. `cadfleet-staging`. */
  readonly name: string;
  /** Value of the metrics' environment dimension. */
  readonly environment: string;
  readonly alarms: MetricAlarmSpec[];
  /** Where alarms and recoveries are mailed (the address must confirm the subscription); empty: no topic. @default "" */
  readonly notificationEmail?: string;
}

const KNOWN_METRICS = new Set<string>(Object.values(METRICS));

export function validateMetricAlarmsProps(props: MetricAlarmsProps): void {
  must(/^[a-z][a-z0-9-]{0,200}$/.test(props.name), 'name', 'be lowercase letters, digits or dashes', props.name);
  must(props.alarms.length > 0, 'alarms', 'list at least one alarm', props.alarms);
  const names = new Set<string>();
  props.alarms.forEach((a, i) => {
    must(KNOWN_METRICS.has(a.metric), `alarms[${i}].metric`, `be a cadfleet metric (${[...KNOWN_METRICS].join(', ')})`, a.metric);
    must(/^[a-z][a-z0-9-]{0,40}$/.test(a.suffix), `alarms[${i}].suffix`, 'be lowercase letters, digits or dashes', a.suffix);
    const name = `${a.metric}-${a.suffix}`;
    must(!names.has(name), `alarms[${i}]`, 'be unique by metric and suffix', name);
    names.add(name);
    if (!isToken(a.threshold)) must(Number.isFinite(a.threshold) && a.threshold >= 0, `alarms[${i}].threshold`, 'be a number of at least 0', a.threshold);
    const period = a.periodSeconds ?? 60;
    must(period === 10 || period === 30 || (Number.isInteger(period) && period % 60 === 0 && period > 0), `alarms[${i}].periodSeconds`, 'be 10, 30 or a multiple of 60', period);
    mustBeIntegerIn(a.evaluationPeriods, `alarms[${i}].evaluationPeriods`, 1, 1440);
    if (!isToken(a.evaluationPeriods)) must(period * a.evaluationPeriods <= 86_400, `alarms[${i}]`, 'evaluate at most one day (periodSeconds x evaluationPeriods)', period * a.evaluationPeriods);
  });
}

export class MetricAlarms extends Construct {
  readonly alarms: CloudwatchMetricAlarm[];
  /** The notification topic; count 0 without an e-mail address. */
  readonly topic: SnsTopic;

  constructor(scope: Construct, id: string, props: MetricAlarmsProps) {
    super(scope, id);
    validateMetricAlarmsProps(props);
    const email = props.notificationEmail ?? '';
    const notify = isToken(email) ? isNotEmpty(email) : email !== '';

    // No server-side encryption: CloudWatch cannot publish to a topic under the AWS-managed
    // SNS key, and alarm messages carry no secrets (a customer key would cost a key per env).
    this.topic = new SnsTopic(this, 'topic', { count: countIf(notify), name: `${props.name}-alarms` });
    const topicArn = only(this.topic, 'arn');
    const publish = new DataAwsIamPolicyDocument(this, 'topic-policy-document', {
      count: countIf(notify),
      statement: [
        {
          sid: 'OnlyThisEnvironmentsAlarms',
          effect: 'Allow',
          actions: ['sns:Publish'],
          principals: [{ type: 'Service', identifiers: ['cloudwatch.amazonaws.com'] }],
          resources: [topicArn],
          condition: [
            { test: 'ArnLike', variable: 'aws:SourceArn', values: [`arn:*:cloudwatch:*:*:alarm:${props.name}-*`] },
            { test: 'StringEquals', variable: 'aws:SourceAccount', values: [only(this.topic, 'owner')] },
          ],
        },
      ],
    });
    new SnsTopicPolicy(this, 'topic-policy', { count: countIf(notify), arn: topicArn, policy: only(publish, 'json') });
    new SnsTopicSubscription(this, 'email', { count: countIf(notify), topicArn, protocol: 'email', endpoint: email });

    const actions = splat(this.topic, 'arn');
    this.alarms = props.alarms.map((a) => {
      const period = a.periodSeconds ?? 60;
      const dimensions = { [METRICS_DIMENSION]: props.environment };
      const what =
        a.perHostOfGroup === undefined
          ? { namespace: METRICS_NAMESPACE, metricName: a.metric, dimensions, statistic: a.statistic, period }
          : {
              metricQuery: [
                { id: 'perhost', returnData: false, metric: { namespace: METRICS_NAMESPACE, metricName: a.metric, dimensions, stat: a.statistic, period } },
                {
                  id: 'hosts',
                  returnData: false,
                  metric: { namespace: 'AWS/AutoScaling', metricName: 'GroupInServiceInstances', dimensions: { AutoScalingGroupName: a.perHostOfGroup }, stat: 'Average', period },
                },
                { id: 'fleet', label: `${a.metric} across the fleet`, expression: 'perhost * hosts', returnData: true },
              ],
            };
      return new CloudwatchMetricAlarm(this, `${a.metric}-${a.suffix}`, {
        alarmName: `${props.name}-${a.metric}-${a.suffix}`,
        alarmDescription: a.description,
        ...what,
        evaluationPeriods: a.evaluationPeriods,
        threshold: a.threshold,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        treatMissingData: a.treatMissingData ?? 'missing',
        alarmActions: actions,
        okActions: actions,
      });
    });
  }
}
