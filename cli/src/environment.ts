import path from 'node:path';
import { discoverAwsHosts } from './aws/hosts';
import { bastionProxyCommand, ssmProxyCommand } from './aws/inventory';
import { authorizeRunKey, ensureRunKey } from './aws/run-key';
import { awsEnvironment, readAwsOutputs } from './aws/terraform';
import { ansibleDir } from './deploy/deploy';
import { systemRunner, type Runner } from './local/exec';
import { ROLES, type Environment, type HostRoute, type Outputs, type TargetHost } from './contract';
import { defaultContext, openFleet, type LocalContext } from './local/local-fleet';
import { localOutputs } from './outputs';
import { sshCommand } from './local/commands';

/** The local fleet's name: `cf` unless CADFLEET_LOCAL_FLEET says otherwise (tests use their own). */
export const localFleetName = (): string => process.env.CADFLEET_LOCAL_FLEET ?? 'cf';

/** The repository the CLI runs from (the stacks, environments/, ansible/). */
export const repoRoot = (): string => path.dirname(ansibleDir());

/** Where this machine keeps an AWS environment's deploy files (inventory, vars, logs): .cadfleet/deploy/<env>. */
export const awsStateRoot = (name: string): string => path.join(repoRoot(), '.cadfleet', 'deploy', name);

/** The route to AWS hosts: CADFLEET_HOST_ROUTE (ssm, the default, or bastion). */
export function hostRoute(): HostRoute {
  const route = process.env.CADFLEET_HOST_ROUTE ?? 'ssm';
  if (route !== 'ssm' && route !== 'bastion') throw new Error(`CADFLEET_HOST_ROUTE must be ssm or bastion, got ${JSON.stringify(route)}`);
  return route;
}

export interface LoadOptions {
  makeContext?: () => LocalContext;
  runner?: Runner;
  /** Progress and warnings (a host that did not take the run key). @default stderr */
  log?: (line: string) => void;
}

/**
 * An environment as the operator commands see it. `local`: the fleet on this machine. Any other
 * name: an applied AWS environment, its outputs read from the stack's state and its hosts listed
 * by the aws_ec2 inventory, so they are the hosts the playbooks reach.
 */
export async function loadEnvironment(name: string, options: LoadOptions = {}): Promise<Environment> {
  if (name !== 'local') {
    const runner = options.runner ?? systemRunner;
    const outputs = await readAwsOutputs(runner, awsEnvironment(name, repoRoot()));
    const route = hostRoute();
    const stateRoot = awsStateRoot(name);
    const own = process.env.CADFLEET_SSH_KEY;
    const keyFile = own ?? (await ensureRunKey(runner, stateRoot)).keyFile;
    const { hosts, inventory } = await discoverAwsHosts(runner, outputs, route, stateRoot, keyFile);
    if (!own) {
      const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
      await authorizeRunKey(runner, stateRoot, outputs.region!, outputs.ssh.user, hosts.map((h) => h.name), log);
    }
    return { name, outputs, hosts, route, inventory, keyFile };
  }
  const makeContext = options.makeContext ?? (() => defaultContext(systemRunner, () => undefined));
  const { fleet, paths } = openFleet(makeContext(), localFleetName());
  const outputs = localOutputs('local', fleet, paths);
  return { name, outputs, hosts: hostsOf(outputs), route: 'direct' };
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

/** The ssh argv for a host of an environment (through the bastion or Session Manager where that is the route). */
export function sshTo(env: Environment, host: TargetHost, remote: readonly string[], options: { tty?: boolean } = {}): readonly string[] {
  const { ssh } = env.outputs;
  const route = env.route ?? (ssh.bastion ? 'bastion' : 'direct');
  const tty = options.tty ? ['-t'] : [];
  // The local fleet: its own key and its pinned host keys.
  if (env.outputs.provider === 'local') {
    const jump = route === 'bastion' && ssh.bastion ? ['-J', `${ssh.user}@${ssh.bastion}`] : [];
    return sshCommand({ user: ssh.user, ip: host.address, keyFile: ssh.keyFile ?? '', knownHosts: ssh.knownHostsFile ?? '' }, remote, [...tty, ...jump]);
  }
  // AWS: this machine's run key (authorized on the hosts through SSM for a while), or
  // CADFLEET_SSH_KEY; the operator's known_hosts. Through Session Manager the session goes to
  // the instance id IAM allowed, by the host's name; a first host key is taken (accept-new).
  if (route === 'ssm' && !env.outputs.region) throw new Error(`the outputs of ${env.name} name no region; run cadfleet apply --env ${env.name} once more`);
  const key = env.keyFile ?? process.env.CADFLEET_SSH_KEY;
  const proxy = route === 'ssm' ? ssmProxyCommand(env.outputs.region!) : route === 'bastion' ? bastionProxyCommand(env.outputs, key) : undefined;
  return [
    'ssh',
    ...(key ? ['-i', key, '-o', 'IdentitiesOnly=yes'] : []),
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=accept-new',
    '-o', 'ConnectTimeout=20',
    '-o', 'LogLevel=ERROR',
    ...(proxy ? ['-o', `ProxyCommand=${proxy}`] : []),
    ...tty,
    `${ssh.user}@${route === 'ssm' ? host.name : host.address}`,
    ...remote,
  ];
}

export type { Environment, Runner, TargetHost };
