// An AWS environment as a target: outputs from the applied stack's state, hosts from the
// aws_ec2 inventory (the hosts the playbooks reach), reached through Session Manager or the
// bastion with this machine's run key; hosts configure themselves at boot, so the playbooks get
// only the release; the lock and the releases are in the environment's releases bucket.
import fs from 'node:fs';
import { discoverAwsHosts } from '../aws/hosts';
import { bastionProxyCommand, ssmProxyCommand } from '../aws/inventory';
import { awsReleaseVars } from '../aws/release-vars';
import { authorizeRunKey, ensureRunKey } from '../aws/run-key';
import { awsEnvironment, readAwsOutputs } from '../aws/terraform';
import { systemRunner } from '../local/exec';
import { releaseStore } from '../release/store';
import { s3Lock } from '../upgrade/env-lock';
import { awsStateRoot, hostRoute, repoRoot } from './places';
import type { Check, Target } from './types';

/** The machine's checks an AWS environment has no use for: the local fleet's own. */
const LOCAL_FLEET_ONLY = new Set(['root', 'systemd-nspawn', 'debootstrap']);
/** What an AWS environment cannot work without: required here, optional elsewhere. */
const AWS_REQUIRED = new Set(['AWS credentials', 'boto3 (for Ansible)', 'session-manager-plugin', 'AWS CLI', 'amazon.aws (Ansible collection)']);

export function awsTarget(name: string): Target {
  const outputs = () => readAwsOutputs(systemRunner, awsEnvironment(name, repoRoot()));
  return {
    kind: 'aws',
    name,
    outputs,
    async load(options = {}) {
      const runner = options.runner ?? systemRunner;
      const out = await readAwsOutputs(runner, awsEnvironment(name, repoRoot()));
      const route = hostRoute();
      const stateRoot = awsStateRoot(name);
      const own = process.env.CADFLEET_SSH_KEY;
      const keyFile = own ?? (await ensureRunKey(runner, stateRoot)).keyFile;
      const { hosts, inventory } = await discoverAwsHosts(runner, out, route, stateRoot, keyFile);
      if (!own) {
        const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
        await authorizeRunKey(runner, stateRoot, out.region!, out.ssh.user, hosts.map((h) => h.name), log);
      }
      return { name, outputs: out, hosts, route, inventory, keyFile };
    },
    async workspace() {
      const out = await outputs();
      return { root: awsStateRoot(name), lock: s3Lock({ bucket: out.buckets.releases, region: out.region ?? undefined }) };
    },
    ssh(env, host, remote, options = {}) {
      // This machine's run key (authorized on the hosts through SSM for a while), or
      // CADFLEET_SSH_KEY; the operator's known_hosts. Through Session Manager the session goes to
      // the instance id IAM allowed, by the host's name; a first host key is taken (accept-new).
      const { ssh } = env.outputs;
      const route = env.route ?? (ssh.bastion ? 'bastion' : 'direct');
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
        ...(options.tty ? ['-t'] : []),
        `${ssh.user}@${route === 'ssm' ? host.name : host.address}`,
        ...remote,
      ];
    },
    inventory(env) {
      if (!env.inventory) throw new Error(`no aws_ec2 inventory for ${env.name}: load the environment with loadEnvironment`);
      // The digest takes the aws_ec2 configuration file (the hosts it lists change with the groups).
      return { file: env.inventory, text: fs.existsSync(env.inventory) ? fs.readFileSync(env.inventory, 'utf8') : env.inventory };
    },
    playbookVars: (opts, release) => awsReleaseVars(opts.env.outputs, release),
    secrets: () => null,
    releaseStore: (out) => releaseStore({ bucket: out.buckets.releases, region: out.region ?? undefined }),
    publishesAfterDeploy: false,
    // AWS hosts are configured by their image and boot program (stacks/boot/), not by the site
    // playbook; what changes on them is the release, and that is the upgrade's.
    deployRefusal:
      `on AWS (${name}) hosts configure themselves at boot from the host image and the environment's settings; ` +
      `ship a release with: cadfleet upgrade --env ${name} [--version V] (it publishes the release, moves releases/current and rolls the hosts to it)`,
    pointerFile: () => undefined,
    runningHint: (host) => `is it running, and its SSM agent online? (aws ssm describe-instance-information --filters Key=InstanceIds,Values=${host.name})`,
    async api(caFile) {
      const out = await outputs();
      return { url: out.lb.url, ca: caFile ? fs.readFileSync(caFile) : undefined };
    },
    async doctorChecks(machine: Check[]) {
      return machine.filter((c) => !LOCAL_FLEET_ONLY.has(c.name)).map((c) => (AWS_REQUIRED.has(c.name) ? { ...c, optional: false } : c));
    },
  };
}
