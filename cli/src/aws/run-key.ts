// The login inside the Session Manager tunnel. Session Manager decides who reaches a host (IAM,
// per instance tag and document); sshd still wants a key, and a GitHub runner has none for the
// hosts' user, nor may the deploy role read a secret. So the CLI makes its own key pair on the
// machine it runs on, and authorizes the public half on each host for a limited time with
// `ssm:SendCommand` (AWS-RunShellScript, which the deploy role may send to this environment's
// instances only). The line carries OpenSSH's `expiry-time`, so sshd stops taking the key by
// itself; each push also drops run keys that have expired, and never touches other keys.
import fs from 'node:fs';
import path from 'node:path';
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { shellQuote } from '../shell';
import type { Runner } from '../local/exec';

/** How long a pushed key is taken by sshd. A run that lasts longer pushes it again (every load of the environment does). */
export const RUN_KEY_TTL_MS = 2 * 3_600_000;

const stamp = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').slice(0, 12);

/** An ed25519 key pair of this machine for an environment (made once, 0600), and its public line. */
export async function ensureRunKey(runner: Runner, dir: string): Promise<{ keyFile: string; publicKey: string }> {
  const keyFile = path.join(dir, 'run_ed25519');
  if (!fs.existsSync(keyFile)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const r = await runner.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'cadfleet-run', '-f', keyFile]);
    if (r.code !== 0) throw new Error(`ssh-keygen could not make the run key ${keyFile}: ${r.stderr.trim() || `exit ${r.code}`} (apt-get install openssh-client)`);
  }
  const [type, blob] = fs.readFileSync(`${keyFile}.pub`, 'utf8').trim().split(/\s+/);
  if (!type || !blob) throw new Error(`${keyFile}.pub is not a public key; remove ${keyFile} and its .pub to make a new pair`);
  return { keyFile, publicKey: `${type} ${blob}` };
}

/**
 * The script (run as root) that authorizes `publicKey` for `user` until `expires`: one line
 * `expiry-time="<UTC>" <key> cadfleet-run exp=<UTC>`, replacing this key's earlier line and any
 * expired run key; other keys stay as they are. Idempotent; the file is replaced atomically.
 */
export function authorizeKeyScript(user: string, publicKey: string, expires: Date): string {
  if (!/^[a-z_][a-z0-9_-]*$/.test(user)) throw new Error(`not a user name: ${JSON.stringify(user)}`);
  if (!/^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+$/.test(publicKey)) throw new Error('not an OpenSSH public key');
  const exp = stamp(expires);
  const blob = publicKey.split(' ')[1]!;
  const line = `expiry-time="${exp}Z" ${publicKey} cadfleet-run exp=${exp}`;
  return [
    'set -eu',
    `home=$(getent passwd ${user} | cut -d: -f6)`,
    `[ -n "$home" ] || { echo "no user ${user} on $(hostname)" >&2; exit 3; }`,
    `install -d -m 0700 -o ${user} -g ${user} "$home/.ssh"`,
    'f="$home/.ssh/authorized_keys"',
    'touch "$f"',
    'tmp=$(mktemp "$f.XXXXXX")',
    `now=$(date -u +%Y%m%d%H%M)`,
    // Drop this key's earlier line and run keys past their time; keep everything else.
    `awk -v now="$now" -v blob=${shellQuote(blob)} '{ if (index($0, blob) > 0) next; if ($0 ~ / cadfleet-run exp=[0-9]+$/) { n = split($0, a, "exp="); if (a[n] < now) next } print }' "$f" > "$tmp"`,
    `printf '%s\\n' ${shellQuote(line)} >> "$tmp"`,
    `chown ${user}:${user} "$tmp"`,
    'chmod 0600 "$tmp"',
    'mv -f "$tmp" "$f"',
  ].join('\n');
}

export interface PushResult {
  ok: string[];
  /** Instance id -> why (the agent is offline, the command failed). */
  failed: Map<string, string>;
}

/**
 * Runs the script on the instances with AWS-RunShellScript and waits for each one's result.
 * A host that fails is reported, not thrown: ssh to it then fails, and the commands say it is down.
 */
export async function pushRunKey(ssm: SSMClient, instanceIds: string[], script: string, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<PushResult> {
  const result: PushResult = { ok: [], failed: new Map() };
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  for (let i = 0; i < instanceIds.length; i += 50) {
    const batch = instanceIds.slice(i, i + 50);
    const sent = await ssm.send(
      new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: batch, Parameters: { commands: [script] }, TimeoutSeconds: 60, Comment: 'cadfleet: authorize the run key' }),
    );
    const commandId = sent.Command?.CommandId;
    if (!commandId) throw new Error('SendCommand returned no command id');
    const pending = new Set(batch);
    while (pending.size) {
      for (const id of [...pending]) {
        try {
          const got = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
          if (got.Status === 'Success') {
            result.ok.push(id);
            pending.delete(id);
          } else if (got.Status && ['Failed', 'TimedOut', 'Cancelled', 'Undeliverable', 'Terminated'].includes(got.Status)) {
            result.failed.set(id, `${got.Status}${got.StandardErrorContent ? `: ${got.StandardErrorContent.trim().split('\n').pop()}` : ''}`);
            pending.delete(id);
          }
        } catch (err) {
          // Right after SendCommand the invocation may not exist yet.
          if ((err as { name?: string }).name !== 'InvocationDoesNotExist') throw err;
        }
      }
      if (!pending.size) break;
      if (Date.now() > deadline) {
        for (const id of pending) result.failed.set(id, 'no result from its SSM agent in time (is the agent online? aws ssm describe-instance-information)');
        break;
      }
      await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
    }
  }
  return result;
}

/** Authorizes this machine's run key on every host for RUN_KEY_TTL_MS; the key file for ssh and Ansible. */
export async function authorizeRunKey(runner: Runner, dir: string, region: string, user: string, instanceIds: string[], log: (line: string) => void = () => undefined): Promise<string> {
  const { keyFile, publicKey } = await ensureRunKey(runner, dir);
  if (!instanceIds.length) return keyFile;
  const ssm = new SSMClient({ region });
  try {
    const pushed = await pushRunKey(ssm, instanceIds, authorizeKeyScript(user, publicKey, new Date(Date.now() + RUN_KEY_TTL_MS)));
    for (const [id, why] of pushed.failed) log(`could not authorize the run key on ${id}: ${why}`);
  } catch (err) {
    throw new Error(`cannot authorize this machine's ssh key on the hosts through SSM (ssm:SendCommand with AWS-RunShellScript): ${(err as Error).message}; or set CADFLEET_SSH_KEY to a key the hosts already take`);
  } finally {
    ssm.destroy();
  }
  return keyFile;
}
