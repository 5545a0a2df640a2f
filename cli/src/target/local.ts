// The local fleet as a target: hosts from the fleet's own state on this machine, reached
// directly with the fleet's key; the site playbook pushes everything, with secrets this machine
// keeps; the releases bucket is on the data host.
import fs from 'node:fs';
import path from 'node:path';
import { ROLES, type Outputs, type TargetHost } from '../contract';
import { inventoryFrom } from '../deploy/ansible';
import { localVars, localReleaseStore } from '../deploy/local-vars';
import { ensureLocalSecrets } from '../deploy/local-secrets';
import { sshCommand } from '../local/commands';
import { systemRunner } from '../local/exec';
import { defaultContext, openFleet } from '../local/local-fleet';
import { pkiPaths } from '../local/pki';
import { localPrerequisites } from '../local/prerequisites';
import { localOutputs } from '../outputs';
import { fileLock } from '../upgrade/env-lock';
import { localFleetName } from './places';
import type { Check, Target } from './types';

/** The machine's checks the local fleet has no use for (AWS access, the host image's tools). */
const NOT_LOCAL = new Set([
  'AWS credentials',
  'boto3 (for Ansible)',
  'session-manager-plugin',
  'AWS CLI',
  'amazon.aws (Ansible collection)',
  'community.general, ansible.posix (Ansible collections)',
  'packer',
]);
/** Checked by the fleet's own prerequisites below, which `cadfleet local up` runs too. */
const FLEET_OWN = new Set(['root', 'systemd-nspawn', 'debootstrap']);

/** The hosts of the outputs, numbered within their role. */
export function hostsOf(outputs: Outputs): TargetHost[] {
  return ROLES.flatMap((role) => (outputs.hosts[role] ?? []).map((h, i) => ({ name: h.name, role, index: i + 1, address: h.address })));
}

export function localTarget(name: string): Target {
  const open = (makeContext = () => defaultContext(systemRunner, () => undefined)) => openFleet(makeContext(), localFleetName());
  return {
    kind: 'local',
    name,
    async outputs() {
      const { fleet, paths } = open();
      return localOutputs(name, fleet, paths);
    },
    async load(options = {}) {
      const { fleet, paths } = open(options.makeContext);
      const outputs = localOutputs(name, fleet, paths);
      return { name, outputs, hosts: hostsOf(outputs), route: 'direct' };
    },
    async workspace() {
      const root = open().paths.root;
      return { root, lock: fileLock(path.join(root, 'lock.json')) };
    },
    ssh(env, host, remote, options = {}) {
      // The fleet's own key and its pinned host keys; a bastion only where the outputs name one.
      const { ssh } = env.outputs;
      const route = env.route ?? (ssh.bastion ? 'bastion' : 'direct');
      const jump = route === 'bastion' && ssh.bastion ? ['-J', `${ssh.user}@${ssh.bastion}`] : [];
      return sshCommand({ user: ssh.user, ip: host.address, keyFile: ssh.keyFile ?? '', knownHosts: ssh.knownHostsFile ?? '' }, remote, [...(options.tty ? ['-t'] : []), ...jump]);
    },
    inventory(env, dir) {
      const file = path.join(dir, 'inventory.json');
      const text = `${JSON.stringify(inventoryFrom(env.outputs), null, 2)}\n`;
      fs.writeFileSync(file, text);
      return { file, text };
    },
    playbookVars: localVars,
    secrets: (stateRoot) => ensureLocalSecrets(stateRoot),
    releaseStore: localReleaseStore,
    publishesAfterDeploy: true,
    deployRefusal: undefined,
    pointerFile: (root) => path.join(root, 'release-pointer'),
    runningHint: () => 'is it running? (cadfleet local status)',
    async api(caFile) {
      const { fleet, paths } = open();
      const lb = fleet.hosts.find((h) => h.role === 'lb');
      if (!lb) throw new Error('the local fleet has no LB host');
      return { url: `https://${lb.ip}`, ca: caFile ? fs.readFileSync(caFile) : fs.readFileSync(pkiPaths(paths.root).caCert) };
    },
    async doctorChecks(machine: Check[]) {
      const kept = machine.filter((c) => !NOT_LOCAL.has(c.name) && !FLEET_OWN.has(c.name));
      const names = new Set(kept.map((c) => c.name));
      const local = (await localPrerequisites(systemRunner)).filter((c) => !names.has(c.name));
      return [...kept, ...local.map((c) => ({ ...c, optional: false }))];
    },
  };
}
