import type { Argv } from '../local/commands';
import type { Outputs } from '../outputs';
import { ROLES } from '../local/fleet';

export interface PlaybookRun {
  playbook: string;
  inventory: string;
  /** Variables, secrets among them, come from a file: never the command line. */
  varsFile: string;
  limit?: string;
  check?: boolean;
}

export const ansiblePlaybookArgv = (run: PlaybookRun): Argv => [
  'ansible-playbook',
  '-i',
  run.inventory,
  '--extra-vars',
  `@${run.varsFile}`,
  ...(run.limit ? ['--limit', run.limit] : []),
  ...(run.check ? ['--check', '--diff'] : []),
  run.playbook,
];

/** The Ansible inventory (YAML inventory plugin; JSON is YAML) generated from the deployment outputs. */
export function inventoryFrom(outputs: Outputs): Record<string, unknown> {
  const { ssh } = outputs;
  const sshArgs = [
    ...(ssh.knownHostsFile ? [`-o UserKnownHostsFile=${ssh.knownHostsFile}`, '-o StrictHostKeyChecking=yes'] : []),
    ...(ssh.bastion ? [`-o ProxyJump=${ssh.user}@${ssh.bastion}`] : []),
    '-o IdentitiesOnly=yes',
  ];
  return {
    all: {
      vars: {
        ansible_user: ssh.user,
        ...(ssh.keyFile ? { ansible_ssh_private_key_file: ssh.keyFile } : {}),
        ansible_ssh_common_args: sshArgs.join(' '),
        cadfleet_environment: outputs.environment,
        cadfleet_provider: outputs.provider,
      },
      children: Object.fromEntries(
        ROLES.filter((role) => (outputs.hosts[role] ?? []).length > 0).map((role) => [
          role,
          { hosts: Object.fromEntries((outputs.hosts[role] ?? []).map((h) => [h.name, { ansible_host: h.address, cadfleet_private_address: h.address }])) },
        ]),
      ),
    },
  };
}

export interface PlayFailure {
  host: string;
  task: string;
  message: string;
}

/**
 * Reads ansible-playbook's default output for what failed: the task banner before each
 * `fatal:` or `UNREACHABLE!` line, and the host it names.
 */
export function playFailures(output: string): PlayFailure[] {
  const failures: PlayFailure[] = [];
  let task = '';
  for (const line of output.split('\n')) {
    const banner = /^TASK \[(.+?)\]/.exec(line);
    if (banner) task = banner[1]!;
    const fatal = /^fatal: \[([^\]]+)\]: (FAILED!|UNREACHABLE!) => (.*)$/.exec(line);
    if (fatal) {
      let message = fatal[3]!;
      try {
        const parsed = JSON.parse(message) as { msg?: string; stderr?: string };
        message = parsed.msg || parsed.stderr || message;
      } catch {
        // Not JSON: keep the line.
      }
      failures.push({ host: fatal[1]!, task: fatal[2] === 'UNREACHABLE!' ? `${task} (host unreachable)` : task, message: message.trim().slice(0, 500) });
    }
  }
  return failures;
}

export interface RecapLine {
  host: string;
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

/** The PLAY RECAP at the end of a run: per host, how many tasks changed something or failed. */
export function playRecap(output: string): RecapLine[] {
  return [...output.matchAll(/^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)].map((m) => ({
    host: m[1]!,
    ok: Number(m[2]),
    changed: Number(m[3]),
    unreachable: Number(m[4]),
    failed: Number(m[5]),
  }));
}
