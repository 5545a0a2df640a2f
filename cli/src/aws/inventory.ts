// How Ansible (and ssh) reach the hosts of an AWS environment. Auto scaling groups own the
// hosts, so there is no host list: the `amazon.aws.aws_ec2` inventory plugin finds the running
// instances by the tags the stack puts on them. Two routes to a host:
// - `ssm` (GitHub Actions, and anyone without a path to the bastion): SSH inside a Session
//   Manager session, so no port is open to the runner; IAM decides per instance tag and
//   document (the deploy role allows this document on this environment's instances only);
// - `bastion` (an operator in admin_cidrs): SSH through the LB host.
import { HOST_ROLES, SSH_SESSION_DOCUMENT, TAG_ENVIRONMENT, TAG_ROLE } from '../../../stacks/contract';
import type { HostRoute, Outputs } from '../contract';

export type { HostRoute };

/** ssh's ProxyCommand that tunnels to instance `%h` through Session Manager (needs the AWS CLI and its session-manager-plugin). */
export const ssmProxyCommand = (region: string): string =>
  `aws ssm start-session --target %h --document-name ${SSH_SESSION_DOCUMENT} --parameters portNumber=%p --region ${region}`;

/** The ssh options of a route, as one string (Ansible's ansible_ssh_common_args splits it like a shell). */
export function sshCommonArgs(outputs: Outputs, region: string, route: HostRoute, keyFile?: string): string {
  // A new instance's host key is taken on first contact and checked from then on (the session
  // reaches the instance id IAM allowed, or the private address behind the bastion).
  const hostKeys = '-o StrictHostKeyChecking=accept-new';
  if (route === 'ssm') return `-o ProxyCommand="${ssmProxyCommand(region)}" ${hostKeys}`;
  if (!outputs.ssh.bastion) throw new Error(`${outputs.environment} has no bastion; use the ssm route`);
  return `-o ProxyCommand="${bastionProxyCommand(outputs, keyFile)}" ${hostKeys}`;
}

/**
 * ssh's ProxyCommand through the bastion. Not -J/ProxyJump: the jump's own ssh does not get the
 * command line's -i, and the bastion must take the same key as the hosts.
 */
export function bastionProxyCommand(outputs: Outputs, keyFile?: string): string {
  if (!outputs.ssh.bastion) throw new Error(`${outputs.environment} has no bastion; use the ssm route`);
  const key = keyFile ? `-i ${keyFile} -o IdentitiesOnly=yes ` : '';
  return `ssh ${key}-o BatchMode=yes -o StrictHostKeyChecking=accept-new -W %h:%p ${outputs.ssh.user}@${outputs.ssh.bastion}`;
}

/** A Jinja string literal: `compose` values are expressions, and these are constants. */
const literal = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * An `amazon.aws.aws_ec2` inventory (write it as `<name>.aws_ec2.yml`; JSON is YAML) of the
 * environment's running hosts, one group per role, with the variables the playbooks read
 * (`cadfleet_provider: aws` turns the CloudWatch agent on).
 */
export function awsEc2Inventory(outputs: Outputs, region: string, route: HostRoute = 'ssm', keyFile?: string): Record<string, unknown> {
  return {
    plugin: 'amazon.aws.aws_ec2',
    regions: [region],
    filters: { [`tag:${TAG_ENVIRONMENT}`]: outputs.environment, 'instance-state-name': 'running' },
    // Every host of a role has the same Name tag (one launch template per role): named by it,
    // the plugin would keep one worker and drop the rest. The instance id is unique, and it
    // is what Session Manager's --target takes.
    hostnames: ['instance-id'],
    compose: {
      ansible_host: route === 'ssm' ? 'instance_id' : 'private_ip_address',
      // What other hosts, the LB and the registry know a host by; ansible_host is only the ssh target.
      cadfleet_private_address: 'private_ip_address',
      ansible_user: literal(outputs.ssh.user),
      // The key the hosts take for this run (./run-key.ts), or CADFLEET_SSH_KEY; else ssh's defaults.
      ...(keyFile ? { ansible_ssh_private_key_file: literal(keyFile) } : {}),
      ansible_ssh_common_args: literal(sshCommonArgs(outputs, region, route, keyFile)),
      cadfleet_environment: literal(outputs.environment),
      cadfleet_provider: literal('aws'),
    },
    groups: Object.fromEntries(HOST_ROLES.map((role) => [role, `tags.get('${TAG_ROLE}') == '${role}'`])),
  };
}
