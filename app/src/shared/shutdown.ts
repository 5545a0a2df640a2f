// Graceful shutdown: the first SIGTERM/SIGINT runs the stop steps in order; a second signal or
// the deadline ends the process at once.
import type { Logger } from './logger';

export function onShutdown(log: Logger, deadlineMs: number, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    // The deadline leaves room after the steps' own timeouts; it only catches a stuck close.
    const timer = setTimeout(() => {
      log.error({ deadlineMs }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, deadlineMs + 10_000);
    timer.unref();
    stop(signal).then(
      () => {
        log.info('stopped');
        process.exitCode = 0;
        clearTimeout(timer);
        // Sockets of libraries that linger (SDK keep-alive) must not keep the process up.
        setTimeout(() => process.exit(0), 200).unref();
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
