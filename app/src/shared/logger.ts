import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths that could carry secrets; pino writes `[REDACTED]` in their place. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'password',
  '*.password',
  'key',
  '*.key',
  'secret',
  '*.secret',
  'databaseUrl',
];

/** JSON lines on stdout (fd 2 for commands whose stdout is their answer); children add the component. */
export function createLogger(options: { level: string; role: string; nodeId?: string; version?: string; fd?: 1 | 2 }): Logger {
  return pino(
    {
      level: options.level,
      base: { role: options.role, node: options.nodeId, version: options.version, pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: options.fd ?? 1, sync: true }),
  );
}
