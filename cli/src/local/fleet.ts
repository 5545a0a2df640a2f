import { z } from 'zod';
import { ROLES, type Role } from '../contract';

// The roles are the environment contract's; kept importable from here.
export { ROLES, type Role };

const name = z
  .string()
  .regex(/^[a-z][a-z0-9]{0,3}$/, 'must be 1 to 4 lower-case letters or digits, starting with a letter (it prefixes interface names, which Linux limits to 15 characters)');

/** The local fleet's shape. Defaults give DESIGN's fleet: lb, data, api x2, worker x2, streamer x2. */
/** The environment name the local fleet goes by (`--env local`): its settings parameter's path, its CA's name. */
export const LOCAL_ENVIRONMENT = 'local';

export const fleetSpecSchema = z.object({
  /** Prefixes every bridge, namespace, interface and host name of this fleet, so fleets can coexist. */
  name: name.default('cf'),
  /** A /24 the fleet owns: .1 is this machine on the bridge, hosts get fixed addresses above it. */
  subnet: z
    .string()
    .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/, 'must be a /24 written as A.B.C.0/24')
    .refine((s) => s.split('/')[0]!.split('.').every((o) => Number(o) <= 255), 'has an octet over 255')
    .default('10.213.0.0/24'),
  counts: z
    .object({
      api: z.number().int().min(1).max(9).default(2),
      worker: z.number().int().min(1).max(9).default(2),
      streamer: z.number().int().min(1).max(9).default(2),
    })
    .default({ api: 2, worker: 2, streamer: 2 }),
  /** The SSH user on every host, as on Debian's AWS images. */
  sshUser: z.string().default('admin'),
});
export type FleetSpec = z.infer<typeof fleetSpecSchema>;

export interface HostSpec {
  /** The host's name inside the fleet, e.g. `api-1`; its hostname is `<fleet>-<name>`. */
  name: string;
  hostname: string;
  role: Role;
  index: number;
  ip: string;
  /** Network namespace, veth (this machine's end) and nspawn machine name. */
  netns: string;
  veth: string;
}

export interface Fleet {
  spec: FleetSpec;
  bridge: string;
  gateway: string;
  prefix: string;
  hosts: HostSpec[];
}

/** The role's block of host numbers: lb .10, data .11, api .21.., worker .31.., streamer .41.. */
const ROLE_BASE: Readonly<Record<Role, number>> = { lb: 10, data: 11, api: 21, worker: 31, streamer: 41 };

export function parseFleetSpec(input: unknown): FleetSpec {
  const parsed = fleetSpecSchema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`local fleet setting \`${issue.path.join('.') || 'spec'}\` ${issue.message}`);
  }
  return parsed.data;
}

/** Every name and address of a fleet, derived from its spec and nothing else. */
export function planFleet(spec: FleetSpec): Fleet {
  const base = spec.subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  const hosts: HostSpec[] = [];
  const add = (role: Role, index: number, hostName: string): void => {
    const hostname = `${spec.name}-${hostName}`;
    hosts.push({
      name: hostName,
      hostname,
      role,
      index,
      ip: `${base}.${ROLE_BASE[role] + index - 1}`,
      netns: hostname,
      // `<fleet>v-<host>` stays within IFNAMSIZ: 4 + 2 + 11 at the most.
      veth: `${spec.name}v${hostName.replace('streamer', 'st').replace('worker', 'wk')}`.slice(0, 15),
    });
  };
  add('lb', 1, 'lb');
  add('data', 1, 'data');
  for (const role of ['api', 'worker', 'streamer'] as const) {
    for (let i = 1; i <= spec.counts[role]; i++) add(role, i, `${role}-${i}`);
  }
  return { spec, bridge: `${spec.name}-br0`, gateway: `${base}.1`, prefix: '24', hosts };
}

/** `api`, `api/2`, `api-2` or `cf-api-2`: the hosts a user means. */
export function selectHosts(fleet: Fleet, selector: string): HostSpec[] {
  const exact = fleet.hosts.filter((h) => h.name === selector || h.hostname === selector || h.ip === selector);
  if (exact.length) return exact;
  const [role, index] = selector.split('/');
  const ofRole = fleet.hosts.filter((h) => h.role === role);
  if (!ofRole.length) {
    throw new Error(`no host or role ${JSON.stringify(selector)} in fleet ${fleet.spec.name}; hosts: ${fleet.hosts.map((h) => h.name).join(', ')}`);
  }
  if (index === undefined) return ofRole;
  const host = ofRole.find((h) => h.index === Number(index));
  if (!host) throw new Error(`role ${role} has hosts 1 to ${ofRole.length}, not ${index}`);
  return [host];
}
