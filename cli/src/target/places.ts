// Where an environment's things are on this machine, whichever target it is: a leaf module, so
// the targets, the environment loader and the commands can all import it without a circle.
import path from 'node:path';
import { ansibleDir } from '../deploy/ansible-dir';
import type { HostRoute } from '../contract';

/** The local fleet's environment name. */
export const LOCAL = 'local';

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
