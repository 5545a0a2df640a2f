import type { Environment } from '../contract';
import type { Runner } from '../local/exec';

/** What a deploy (or an upgrade's playbook run) is given. */
export interface DeployOptions {
  env: Environment;
  /** The local fleet's state folder (keys, PKI, secrets); deploy files go in `deploy/` there. */
  stateRoot: string;
  runner: Runner;
  limit?: string;
  /** Each line of ansible-playbook's output, secrets redacted. */
  onLine?: (line: string) => void;
  /** Progress of the steps before Ansible (building the release). */
  log?: (line: string) => void;
  /** A release version to build and install; by default the working tree's content hash names it. */
  version?: string;
  /** Where built releases are kept. @default /var/lib/cadfleet/releases as root, else ~/.cache/cadfleet/releases */
  releasesDir?: string;
  /**
   * Publish the release to the local fleet's releases bucket and point `releases/current` at it
   * once the deploy succeeded, for hosts that boot by themselves. @default true without `limit`
   */
  publish?: boolean;
  /** Configure every host in full, even those whose record says this deploy already configured them. */
  full?: boolean;
}
