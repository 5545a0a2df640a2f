import { ROLES, outputsSchema, type Outputs } from './contract';
import type { Fleet } from './local/fleet';
import type { FleetPaths } from './local/hosts';

// The schema is the environment contract's (./contract); kept importable from here.
export { outputsSchema, type Outputs };

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
