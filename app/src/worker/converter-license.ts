// A commercial converter's licence, read by the worker at start from an SSM SecureString
// parameter (the stack's `converter_license_parameter`; only the worker role may read it) and
// handed to converter processes as CADFLEET_CONVERTER_LICENSE in their environment, never on a
// command line and never in a file or a log. Rotation: put the new value, then restart the
// workers one host at a time (docs/operations.md, "Rotate the converter licence").
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';

/** The environment variable converter processes find the licence in. */
export const LICENSE_ENV = 'CADFLEET_CONVERTER_LICENSE';

/** Where the licence comes from: SSM in production; anything with `read` in tests. */
export interface LicenseSource {
  readonly parameter: string;
  read(): Promise<string>;
}

export function ssmLicenseSource(options: { parameter: string; region: string; endpoint?: string }): LicenseSource {
  return {
    parameter: options.parameter,
    async read() {
      const client = new SSMClient({ region: options.region, endpoint: options.endpoint });
      try {
        const out = await client.send(new GetParameterCommand({ Name: options.parameter, WithDecryption: true }));
        return out.Parameter?.Value ?? '';
      } finally {
        client.destroy();
      }
    },
  };
}

/** Says what went wrong in terms of what to do; the value itself never appears. */
function explain(parameter: string, err: unknown): Error {
  const name = (err as { name?: string }).name ?? '';
  if (name === 'ParameterNotFound') {
    return new Error(`the converter licence parameter ${parameter} does not exist: create it (aws ssm put-parameter --type SecureString --name ${parameter} --value file://license.txt) or unset converter_license_parameter`);
  }
  if (name === 'AccessDeniedException' || name === 'AccessDenied') {
    return new Error(`this host's role may not read the converter licence parameter ${parameter}: only the worker role may; check converter_license_parameter and run cadfleet apply`);
  }
  return new Error(`cannot read the converter licence parameter ${parameter}: ${(err as Error).message ?? String(err)}`);
}

/**
 * The extra environment of converter processes: `{CADFLEET_CONVERTER_LICENSE: value}` when a
 * licence parameter is configured, `{}` when none is. A missing, empty or unreadable
 * licence stops the worker at start with what to do: a worker without its licence would fail
 * every job it takes.
 */
export async function converterEnvironment(source: LicenseSource | undefined): Promise<Record<string, string>> {
  if (!source) return {};
  let value: string;
  try {
    value = await source.read();
  } catch (err) {
    throw explain(source.parameter, err);
  }
  if (!value.trim()) throw new Error(`the converter licence parameter ${source.parameter} is empty: put the licence in it (aws ssm put-parameter --overwrite ...)`);
  return { [LICENSE_ENV]: value };
}
