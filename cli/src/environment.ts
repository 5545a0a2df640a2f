import { systemRunner, type Runner } from './local/exec';
import { ROLES, type Role } from './local/fleet';
import { defaultContext, openFleet, type LocalContext } from './local/local-fleet';
import { localOutputs, type Outputs } from './outputs';
import { sshCommand } from './local/commands';

/** One host as the operator tools see it, whatever environment it is in. */
export interface TargetHost {
  name: string;
  role: Role;
  index: number;
  address: string;
}

export interface Environment {
  name: string;
  outputs: Outputs;
  hosts: TargetHost[];
}

/** The local fleet's name: `cf` unless CADFLEET_LOCAL_FLEET says otherwise (tests use their own). */
export const localFleetName = (): string => process.env.CADFLEET_LOCAL_FLEET ?? 'cf';

export function loadEnvironment(name: string, makeContext: () => LocalContext = () => defaultContext(systemRunner, () => undefined)): Environment {
  if (name !== 'local') {
    throw new Error(`environment ${JSON.stringify(name)} is not known here: only "local" can be reached until AWS environments are applied (cadfleet apply --env ${name})`);
  }
  const { fleet, paths } = openFleet(makeContext(), localFleetName());
  const outputs = localOutputs('local', fleet, paths);
  return { name, outputs, hosts: hostsOf(outputs) };
}

export function hostsOf(outputs: Outputs): TargetHost[] {
  return ROLES.flatMap((role) => (outputs.hosts[role] ?? []).map((h, i) => ({ name: h.name, role, index: i + 1, address: h.address })));
}

/** `api` (every api host), `api/2`, `cf-api-2`, `api-2` or an address. */
export function resolveHosts(env: Environment, selector: string): TargetHost[] {
  const [role, index] = selector.split('/');
  if ((ROLES as readonly string[]).includes(role!)) {
    const ofRole = env.hosts.filter((h) => h.role === role);
    if (index === undefined) return ofRole;
    const host = ofRole.find((h) => h.index === Number(index));
    if (!host) throw new Error(`role ${role} has ${ofRole.length} host(s) in ${env.name}; ${selector} is not one of them`);
    return [host];
  }
  const exact = env.hosts.filter((h) => h.name === selector || h.address === selector || h.name.endsWith(`-${selector}`));
  if (!exact.length) throw new Error(`no host ${JSON.stringify(selector)} in ${env.name}; hosts: ${env.hosts.map((h) => h.name).join(', ')}`);
  return exact;
}

/** The ssh argv for a host of an environment (through the bastion where there is one). */
export function sshTo(env: Environment, host: TargetHost, remote: readonly string[], options: { tty?: boolean } = {}): readonly string[] {
  const { ssh } = env.outputs;
  const extra = [...(options.tty ? ['-t'] : []), ...(ssh.bastion ? ['-J', `${ssh.user}@${ssh.bastion}`] : [])];
  return sshCommand({ user: ssh.user, ip: host.address, keyFile: ssh.keyFile ?? '', knownHosts: ssh.knownHostsFile ?? '' }, remote, extra);
}

export type { Runner };
