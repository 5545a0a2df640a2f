// The hosts of an AWS environment, as Ansible will see them. Auto scaling groups own the hosts,
// so there is no list to read: `ansible-inventory --list` runs the environment's aws_ec2
// inventory (./inventory.ts) and the hosts come out of its answer, by role. The deploy, the
// upgrade and the operator commands (status, ssh, logs, exec) thus act on exactly the hosts
// the playbooks act on, and an upgrade re-reads them before each role, as DESIGN asks.
import fs from 'node:fs';
import path from 'node:path';
import { HOST_ROLES } from '../../../stacks/contract';
import type { Outputs, TargetHost } from '../contract';
import type { Runner } from '../local/exec';
import type { Role } from '../local/fleet';
import { awsEc2Inventory, type HostRoute } from './inventory';

/** What `ansible-inventory --list` prints: groups with their hosts, and every host's variables under _meta. */
export interface InventoryList {
  _meta?: { hostvars?: Record<string, Record<string, unknown>> };
  [group: string]: { hosts?: string[]; children?: string[] } | InventoryList['_meta'];
}

/**
 * The hosts of each role in an inventory listing. A host is named by its inventory name (the
 * instance id on AWS) and addressed by its private address (what the LB's upstreams and the
 * registry hold); hosts of a role are numbered in launch order (then by name), so `worker/1`
 * is the oldest worker. A host in no role group is left out; one in two role groups is refused.
 */
export function hostsFromInventory(list: InventoryList): TargetHost[] {
  const hostvars = list._meta?.hostvars ?? {};
  const roleOf = new Map<string, Role>();
  for (const role of HOST_ROLES) {
    const group = list[role] as { hosts?: string[] } | undefined;
    for (const name of group?.hosts ?? []) {
      const other = roleOf.get(name);
      if (other && other !== role) throw new Error(`instance ${name} is tagged into two roles (${other} and ${role}); fix its cadfleet:role tag`);
      roleOf.set(name, role);
    }
  }
  const launched = (name: string): string => String(hostvars[name]?.launch_time ?? '');
  return HOST_ROLES.flatMap((role) =>
    [...roleOf]
      .filter(([, r]) => r === role)
      .map(([name]) => name)
      .sort((a, b) => launched(a).localeCompare(launched(b)) || a.localeCompare(b))
      .map((name, i) => {
        const vars = hostvars[name] ?? {};
        const address = String(vars.cadfleet_private_address ?? vars.private_ip_address ?? vars.ansible_host ?? name);
        return { name, role, index: i + 1, address };
      }),
  );
}

/** The file name the aws_ec2 plugin accepts (it must end in aws_ec2.yml), in the environment's deploy folder. */
export const inventoryFile = (stateRoot: string): string => path.join(stateRoot, 'inventory.aws_ec2.yml');

/** Writes the environment's aws_ec2 inventory (JSON is YAML) and returns its path. */
export function writeAwsInventory(outputs: Outputs, route: HostRoute, stateRoot: string, keyFile?: string): string {
  if (!outputs.region) throw new Error(`the outputs of ${outputs.environment} name no region; run cadfleet apply --env ${outputs.environment} once more (it adds the output)`);
  fs.mkdirSync(stateRoot, { recursive: true, mode: 0o700 });
  const file = inventoryFile(stateRoot);
  fs.writeFileSync(file, `${JSON.stringify(awsEc2Inventory(outputs, outputs.region, route, keyFile), null, 2)}\n`);
  return file;
}

/**
 * Lists the running hosts of an AWS environment with `ansible-inventory` (the aws_ec2 plugin
 * asks EC2 with the caller's credentials). Each way it fails says what to do.
 */
export async function discoverAwsHosts(runner: Runner, outputs: Outputs, route: HostRoute, stateRoot: string, keyFile?: string): Promise<{ hosts: TargetHost[]; inventory: string }> {
  const inventory = writeAwsInventory(outputs, route, stateRoot, keyFile);
  const r = await runner.run(['ansible-inventory', '-i', inventory, '--list'], {
    timeoutMs: 180_000,
    // Only the aws_ec2 plugin reads the file, and its failure stops the listing (by default it
    // is a warning, and the listing comes back empty, as if the environment had no host).
    env: { ...process.env, ANSIBLE_INVENTORY_ENABLED: 'amazon.aws.aws_ec2', ANSIBLE_INVENTORY_UNPARSED_FAILED: '1' },
  });
  if (r.code === 127) throw new Error('ansible-inventory is not installed: apt-get install ansible python3-boto3 (or pipx install ansible, then boto3 beside it)');
  if (r.code !== 0) {
    throw new Error(
      `cannot list the hosts of ${outputs.environment} with the aws_ec2 inventory: ${inventoryError(r.stderr) || `exit ${r.code}`}. ` +
        `It needs boto3 beside Ansible (apt-get install python3-boto3) and AWS credentials that may call ec2:DescribeInstances in ${outputs.region} ` +
        '(aws sts get-caller-identity shows whose they are)',
    );
  }
  return { hosts: hostsFromInventory(JSON.parse(r.stdout) as InventoryList), inventory };
}

/** The plugin's own reason, out of ansible-inventory's wrapped warnings. */
export function inventoryError(stderr: string): string {
  const text = stderr.replace(/\s*\n\s*/g, ' ');
  const plugin = /aws_ec2 plugin: (.*?)(?: \[WARNING\]| ERROR!|$)/.exec(text);
  return (plugin?.[1] ?? text.replace(/\[WARNING\]:\s*/g, '')).trim().slice(0, 400);
}
