// The deployment outputs of a made-up applied staging environment, as the CLI reads them from
// `terraform output -json` (the same shape the tests of the AWS side share).
import { awsOutputs } from '../../cli/src/aws/terraform';
import type { Outputs } from '../../cli/src/outputs';

export function stagingOutputs(region?: string): Outputs {
  return awsOutputs({
    environment: { value: 'staging' },
    ...(region ? { region: { value: region } } : {}),
    lb_address: { value: '203.0.113.7' },
    redis: { value: { host: 'redis.example', port: 6379, tls: true } },
    postgres: { value: { host: 'pg.example', port: 5432, database: 'cadfleet' } },
    buckets: { value: { models: 'm', releases: 'r' } },
    ssh_user: { value: 'admin' },
    bastion: { value: { host: '203.0.113.7', user: 'admin' } },
  });
}
