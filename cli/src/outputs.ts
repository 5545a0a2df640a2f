import { z } from 'zod';
import { ROLES } from './local/fleet';
import type { Fleet } from './local/fleet';
import type { FleetPaths } from './local/hosts';

/**
 * The deployment outputs: the one document that joins apply and deploy, the same shape for the
 * local fleet and for AWS. The Ansible inventory is generated from it. No secrets, ever.
 */
export const outputsSchema = z.object({
  environment: z.string(),
  provider: z.enum(['local', 'aws']),
  /** The AWS region (null for the local fleet). */
  region: z.string().nullable().default(null),
  lb: z.object({ address: z.string(), url: z.string() }),
  /** Hosts by role. On AWS, auto scaling groups own the hosts: `hostFilter` finds them by tag. */
  hosts: z.record(z.enum(ROLES), z.array(z.object({ name: z.string(), address: z.string() }))),
  hostFilter: z.record(z.string(), z.string()).nullable(),
  redis: z.object({ host: z.string(), port: z.number(), tls: z.boolean() }),
  postgres: z.object({ host: z.string(), port: z.number(), database: z.string(), tls: z.boolean() }),
  buckets: z.object({ models: z.string(), releases: z.string(), endpoint: z.string().nullable() }),
  ssh: z.object({ user: z.string(), keyFile: z.string().nullable(), knownHostsFile: z.string().nullable(), bastion: z.string().nullable() }),
});
export type Outputs = z.infer<typeof outputsSchema>;

export function localOutputs(environment: string, fleet: Fleet, paths: FleetPaths): Outputs {
  const byRole = Object.fromEntries(ROLES.map((role) => [role, fleet.hosts.filter((h) => h.role === role).map((h) => ({ name: h.hostname, address: h.ip }))]));
  const data = fleet.hosts.find((h) => h.role === 'data')!;
  const lb = fleet.hosts.find((h) => h.role === 'lb')!;
  return outputsSchema.parse({
    environment,
    provider: 'local',
    lb: { address: lb.ip, url: `https://${lb.ip}` },
    hosts: byRole,
    hostFilter: null,
    redis: { host: data.ip, port: 6379, tls: true },
    postgres: { host: data.ip, port: 5432, database: 'cadfleet', tls: true },
    buckets: { models: 'cadfleet-models', releases: 'cadfleet-releases', endpoint: `https://${data.ip}:9000` },
    ssh: { user: fleet.spec.sshUser, keyFile: paths.keyFile, knownHostsFile: paths.knownHosts, bastion: null },
  });
}
