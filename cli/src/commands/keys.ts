import { Command } from 'commander';
import { execa } from 'execa';
import { loadEnvironment, sshTo, type Environment } from '../environment';
import { serviceKeysArgv } from '../remote';
import { shellQuote } from '../shell';

// Kept importable from here (the fleet tests take it from this module).
export { shellQuote };

async function runOnApi(env: Environment, args: string[]): Promise<number> {
  const api = env.hosts.find((h) => h.role === 'api');
  if (!api) throw new Error(`${env.name} has no api host`);
  const argv = sshTo(env, api, serviceKeysArgv(args));
  // 255, as ssh says it failed itself, also when ssh could not be started; 1 for a signal.
  const r = await execa(argv[0]!, argv.slice(1), { stdin: 'ignore', stdout: 'inherit', stderr: 'inherit', reject: false });
  return r.exitCode ?? (r.signal ? 1 : 255);
}

export function keysCommand(): Command {
  const keys = new Command('keys').description("Manage an environment's API keys (stored hashed; a new key is shown once).");
  const run = (build: (opts: Record<string, unknown>, rest: string[]) => string[]) =>
    async (...args: unknown[]): Promise<void> => {
      const opts = args.find((a): a is Record<string, unknown> & { env: string } => typeof a === 'object' && a !== null && 'env' in a)!;
      const rest = args.filter((a): a is string => typeof a === 'string');
      try {
        const env = await loadEnvironment(opts.env);
        const code = await runOnApi(env, build(opts, rest));
        if (code === 255) process.stderr.write(`cadfleet keys: the api host did not answer SSH; see cadfleet status --env ${env.name}\n`);
        process.exitCode = code;
      } catch (err) {
        process.stderr.write(`cadfleet keys: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    };
  keys
    .command('create')
    .description('Create a key; it is printed alone on the last line of stdout.')
    .requiredOption('--env <name>', 'environment')
    .requiredOption('--project <project>', 'the project (tenant) the key belongs to')
    .option('--admin', 'an admin key: manages keys, reads /status, sees every project')
    .option('--name <name>', 'a label to recognise the key by')
    .addHelpText('after', '\nExamples:\n  $ cadfleet keys create --env local --project acme --name ci\n  $ cadfleet keys create --env local --project ops --admin')
    .action(run((o) => ['create', '--project', String(o.project), ...(o.admin ? ['--admin'] : []), ...(o.name ? ['--name', String(o.name)] : [])]));
  keys
    .command('list')
    .description('List keys (never the keys themselves).')
    .requiredOption('--env <name>', 'environment')
    .option('--project <project>', 'only this project')
    .option('--json', 'JSON')
    .addHelpText('after', '\nExamples:\n  $ cadfleet keys list --env local --project acme\n  $ cadfleet keys list --env local --json')
    .action(run((o) => ['list', '--all', ...(o.project ? ['--project', String(o.project)] : []), ...(o.json ? ['--json'] : [])]));
  keys
    .command('revoke')
    .description('Revoke a key by its id (from `keys list`).')
    .requiredOption('--env <name>', 'environment')
    .argument('<id>', 'key id')
    .addHelpText('after', '\nExample:\n  $ cadfleet keys revoke --env local Xq3v9TkPp2aL   # an id from cadfleet keys list')
    .action(run((_o, rest) => ['revoke', rest[0]!]));
  return keys;
}
