import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * The local fleet's secrets, generated once and kept with its state (mode 0600). AWS
 * environments keep theirs in Secrets Manager and SSM; these never leave this machine except
 * in the Ansible vars file of a deploy, which is written 0600 and passed by path.
 */
export const localSecretsSchema = z.object({
  postgresPassword: z.string().min(16),
  redisPassword: z.string().min(16),
  streamTokenSecret: z.string().min(32),
});
export type LocalSecrets = z.infer<typeof localSecretsSchema>;

const token = (bytes: number): string => randomBytes(bytes).toString('base64url');

export function ensureLocalSecrets(fleetRoot: string): LocalSecrets {
  const file = path.join(fleetRoot, 'secrets.json');
  if (fs.existsSync(file)) return localSecretsSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
  const secrets: LocalSecrets = {
    postgresPassword: token(24),
    redisPassword: token(24),
    streamTokenSecret: token(48),
  };
  fs.writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}

/** Shows what a secret-bearing value is without showing it. */
export const redact = (text: string, secrets: LocalSecrets): string =>
  Object.values(secrets).reduce((out, secret) => out.split(secret).join('[REDACTED]'), text);
