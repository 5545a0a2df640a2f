// The host contract: every fact about a cadfleet host that more than one part relies on (the
// roles, each role's systemd units, port, health and ready paths, limits, and where a release is
// installed), owned by one data file, ansible/playbooks/group_vars/all/host_contract.json. The
// release carries it (it is under ansible/); every playbook loads it as `cadfleet_host_contract`
// (a group variable), a role run from another playbook reads the file itself (its
// `<role>_host_contract` default), and the stacks, the CLI and the service's defaults read it
// through this typed view. Change a port there, and only there: test/contract/host-contract.test.ts
// fails on a copy anywhere else.
import file from '../../../ansible/playbooks/group_vars/all/host_contract.json' with { type: 'json' };

/** Every role a cadfleet host plays; `data` exists only in the local fleet (RDS, ElastiCache and S3 stand in for it on AWS). */
export type ContractRole = 'lb' | 'data' | 'api' | 'worker' | 'streamer';

export interface RoleContract {
  /** The systemd units the role runs (without `.service`), in the order they start. */
  readonly units: readonly string[];
  /** The port its health and ready paths answer on, over HTTP on the host; null: none (data). */
  readonly port: number | null;
  /** Process alive. */
  readonly health: string | null;
  /** Ready for traffic (dependencies reached, not draining): what an upgrade waits for. */
  readonly ready: string | null;
  /** The units that run from the release: an upgrade stops them, switches `current`, starts them (the LB's nginx keeps serving). */
  readonly release_units: readonly string[];
  /** The app roles' unit limits: cgroup MemoryMax, and the seconds systemd waits for a graceful stop (the playbooks derive a longer one from the service's own grace). */
  readonly memory_max?: string;
  readonly stop_timeout?: number;
}

export interface HostContract {
  readonly install: {
    /** Where releases live: `releases/<version>`, and `current` pointing at one. */
    readonly dir: string;
    readonly releases: string;
    readonly current: string;
    /** The services' environment files: `<config_dir>/<role>.env`. */
    readonly config_dir: string;
    readonly state_dir: string;
    /** The system user the services run as. */
    readonly user: string;
  };
  readonly roles: Readonly<Record<ContractRole, RoleContract>>;
}

export const HOST_CONTRACT: HostContract = file.cadfleet_host_contract as HostContract;

/** The port of a role that has one. */
export function portOf(role: Exclude<ContractRole, 'data'>): number {
  const port = HOST_CONTRACT.roles[role].port;
  if (port === null) throw new Error(`the host contract gives ${role} no port`);
  return port;
}

/** The role's environment file, as the cadfleet_service role writes it. */
export const envFileOf = (role: ContractRole): string => `${HOST_CONTRACT.install.config_dir}/${role}.env`;

/** The role's units as systemctl names them. */
export const unitsOf = (role: ContractRole): string[] => HOST_CONTRACT.roles[role].units.map((u) => `${u}.service`);

/** http://127.0.0.1:<port><path> of the role's ready (or health) path, as asked on the host itself. */
export function localUrlOf(role: Exclude<ContractRole, 'data'>, which: 'ready' | 'health'): string {
  const port = portOf(role);
  return `http://127.0.0.1${port === 80 ? '' : `:${port}`}${HOST_CONTRACT.roles[role][which]}`;
}

/** The folder of one release on a host. */
export const releaseDirOf = (version: string): string => `${HOST_CONTRACT.install.releases}/${version}`;
