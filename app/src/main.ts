// The one entry point of the service bundle. The role comes from argv or CADFLEET_ROLE:
//   main.ts api | worker | streamer   long-running roles (systemd units cadfleet-api, cadfleet-worker, cadfleet-streamer)
//   main.ts migrate | keys ...    operator commands (see admin.ts)
import { Command } from 'commander';
import { adminCommands } from './admin/commands';
import { type Config, ConfigError, ROLES, type Role, type StreamerConfig, loadConfig, loadStreamerConfig, nodeIdFor } from './shared/config';
import { createLogger, type Logger } from './shared/logger';
import { EvictionPolicyError } from './shared/redis';
import { VERSION } from './shared/version';

async function runRole(role: Role): Promise<void> {
  // The streamer has its own, smaller configuration: it never talks to PostgreSQL.
  let loaded: { role: 'streamer'; config: StreamerConfig } | { role: 'api' | 'worker'; config: Config };
  try {
    loaded = role === 'streamer' ? { role, config: loadStreamerConfig() } : { role, config: loadConfig() };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cadfleet ${role}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { config } = loaded;
  const log: Logger = createLogger({ level: config.logLevel, role, nodeId: nodeIdFor(config, role), version: VERSION });
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'));
  try {
    // Each role loads only its own modules: a streamer has no use for BullMQ or the converter.
    if (loaded.role === 'streamer') await (await import('./streamer/process')).runStreamer(loaded.config, log);
    else if (loaded.role === 'api') await (await import('./api/process')).runApi(loaded.config, log);
    else await (await import('./worker/process')).runWorker(loaded.config, log);
  } catch (err) {
    if (err instanceof EvictionPolicyError) log.fatal(err.message);
    else log.fatal({ err }, `the ${role} could not start: ${(err as Error).message}`);
    // Give pino a moment to flush.
    setTimeout(() => process.exit(err instanceof EvictionPolicyError ? 3 : 1), 50);
  }
}

export function program(): Command {
  const cmd = new Command('cadfleet-service')
    .description('The cadfleet service: api, worker and streamer roles, migrations and API keys.')
    .version(VERSION)
    .argument('[role]', `${ROLES.join(' | ')} (default: CADFLEET_ROLE)`)
    .action(async (role: string | undefined) => {
      const chosen = role ?? process.env.CADFLEET_ROLE;
      if (!chosen || !(ROLES as readonly string[]).includes(chosen)) {
        process.stderr.write(`cadfleet-service: choose a role: ${ROLES.join(', ')} (argument or CADFLEET_ROLE), got ${JSON.stringify(chosen ?? '')}\n`);
        process.exit(2);
      }
      await runRole(chosen as Role);
    });
  for (const sub of adminCommands()) cmd.addCommand(sub);
  return cmd;
}

program()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    const message = err instanceof ConfigError ? err.message : ((err as Error).message ?? String(err));
    process.stderr.write(`cadfleet-service: ${message}\n`);
    process.exitCode = 1;
  });
