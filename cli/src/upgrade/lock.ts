import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Who holds an environment: one deploy, upgrade or rollback at a time. */
export interface LockRecord {
  who: string;
  host: string;
  pid: number;
  action: string;
  version?: string;
  since: string;
}

export class LockHeldError extends Error {
  constructor(readonly holder: LockRecord) {
    super(`the environment is locked by ${holder.who}@${holder.host} (pid ${holder.pid}) for ${holder.action}${holder.version ? ` ${holder.version}` : ''} since ${holder.since}; wait for it (--lock-wait 10m), or if that run is dead: cadfleet lock release`);
    this.name = 'LockHeldError';
  }
}

export function parseDuration(value: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new Error(`a duration must look like 30s, 10m or 1h, got ${JSON.stringify(value)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

export function readLock(file: string): LockRecord | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockRecord;
  } catch {
    return null;
  }
}

/** A lock file created with O_EXCL: whoever creates it holds the environment. */
export async function acquireLock(file: string, action: string, options: { version?: string; waitMs?: number; pollMs?: number } = {}): Promise<() => void> {
  const record: LockRecord = { who: os.userInfo().username, host: os.hostname(), pid: process.pid, action, ...(options.version ? { version: options.version } : {}), since: new Date().toISOString() };
  const deadline = Date.now() + (options.waitMs ?? 0);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (;;) {
    try {
      fs.writeFileSync(file, `${JSON.stringify(record)}\n`, { flag: 'wx', mode: 0o600 });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        if (readLock(file)?.pid === process.pid) fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readLock(file);
      if (!holder) continue;
      if (Date.now() >= deadline) throw new LockHeldError(holder);
      await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
    }
  }
}

export interface AuditEntry {
  at: string;
  who: string;
  action: 'deploy' | 'upgrade' | 'rollback' | 'scale-out' | 'replace';
  version: string;
  previous: string | null;
  ok: boolean;
  seconds: number;
  detail?: string;
}

export function appendAudit(file: string, entry: Omit<AuditEntry, 'at' | 'who'>): void {
  fs.appendFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), who: `${os.userInfo().username}@${os.hostname()}`, ...entry })}\n`, { mode: 0o600 });
}

export function readAudit(file: string): AuditEntry[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry);
}
