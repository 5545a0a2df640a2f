// The environments the operator commands work on, whichever target they are (cli/src/target/):
// loading one, finding its hosts, the ssh command for a host.
import { ROLES, type Environment, type TargetHost } from './contract';
import type { Runner } from './local/exec';
import { targetNamed, targetOf, type LoadOptions } from './target';

export { awsStateRoot, hostRoute, localFleetName, repoRoot } from './target/places';
export { hostsOf } from './target/local';
export type { LoadOptions };

/**
 * An environment as the operator commands see it. `local`: the fleet on this machine. Any other
 * name: an applied AWS environment, its outputs read from the stack's state and its hosts listed
 * by the aws_ec2 inventory, so they are the hosts the playbooks reach.
 */
export function loadEnvironment(name: string, options: LoadOptions = {}): Promise<Environment> {
  return targetNamed(name).load(options);
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

/** The ssh argv for a host of an environment (through the bastion or Session Manager where that is the route). */
export function sshTo(env: Environment, host: TargetHost, remote: readonly string[], options: { tty?: boolean } = {}): readonly string[] {
  return targetOf(env).ssh(env, host, remote, options);
}

export type { Environment, Runner, TargetHost };
