import { Command } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { convertCommand } from './commands/convert';
import { localCommand, outputsCommand } from './commands/local';

/** Builds the CLI afresh on each call: no global commander state for tests to tear down. */
export function buildProgram(): Command {
  const program = new Command('cadfleet')
    .description('Deploy and operate a CAD conversion and 3D streaming fleet, on AWS or locally.')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)');
  program.addCommand(convertCommand());
  program.addCommand(localCommand());
  program.addCommand(outputsCommand());
  return program;
}

await buildProgram().parseAsync(process.argv);
