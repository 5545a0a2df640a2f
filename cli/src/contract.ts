// The environment contract: what the local fleet and an AWS environment both provide, and what
// the operator commands read. A leaf: it imports nothing from the CLI, so every side (local/,
// aws/, deploy/, upgrade/) and the commands on top can import it without a circle.
import { z } from 'zod';

/** The roles a cadfleet host plays. `data` exists only locally: it stands in for RDS, ElastiCache and S3. */
export const ROLES = ['lb', 'data', 'api', 'worker', 'streamer'] as const;
export type Role = (typeof ROLES)[number];

/**
 * The deployment outputs: the one document that joins apply and deploy, the same shape for the
 * local fleet and for AWS. The Ansible inventory is generated from it. No secrets, ever.
 */
export const outputsSchema = z.object({
  environment: z.string(),
  provider: z.enum(['local', 'aws']),
  /** The AWS region (null for the local fleet). */
  region: z.string().nullable().default(null),
  lb: z.object({ address: z.string(), url: z.string() }),
  /** Hosts by role. On AWS, auto scaling groups own the hosts: `hostFilter` finds them by tag. */
  hosts: z.record(z.enum(ROLES), z.array(z.object({ name: z.string(), address: z.string() }))),
  hostFilter: z.record(z.string(), z.string()).nullable(),
  redis: z.object({ host: z.string(), port: z.number(), tls: z.boolean() }),
  postgres: z.object({ host: z.string(), port: z.number(), database: z.string(), tls: z.boolean() }),
  buckets: z.object({ models: z.string(), releases: z.string(), endpoint: z.string().nullable() }),
  ssh: z.object({ user: z.string(), keyFile: z.string().nullable(), knownHostsFile: z.string().nullable(), bastion: z.string().nullable() }),
});
export type Outputs = z.infer<typeof outputsSchema>;

/** How ssh reaches the hosts of an AWS environment: inside Session Manager, or through the bastion (aws/inventory.ts). */
export type HostRoute = 'ssm' | 'bastion';

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
  /**
   * How ssh (and Ansible) reach the hosts: straight to the address (the local fleet), through
   * the bastion, or inside a Session Manager session to the host's name, its instance id.
   * @default `bastion` when the outputs name one, else `direct`
   */
  route?: 'direct' | HostRoute;
  /** An aws_ec2 inventory the playbooks run on (AWS); without it, one is generated from the outputs. */
  inventory?: string;
  /** The ssh key for AWS hosts: this machine's run key (authorized for a while through SSM), or CADFLEET_SSH_KEY. */
  keyFile?: string;
}
