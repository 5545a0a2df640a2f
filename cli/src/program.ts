import { Command } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { completionCommand } from './commands/completion';
import { convertCommand } from './commands/convert';
import { deployCommand } from './commands/deploy';
import { keysCommand } from './commands/keys';
import { modelsCommand } from './commands/models';
import { stackCommands } from './commands/stack';
import { statusCommand } from './commands/status';
import { doctorCommand } from './commands/doctor';
import { upgradeCommands } from './commands/upgrade';
import { localCommand, outputsCommand } from './commands/local';
import { execCommandLine, logsCommandLine, sshCommandLine } from './commands/ops';

/**
 * Builds the CLI afresh on each call: no global commander state for tests to tear down. Apart
 * from main.ts (which parses argv) so that tests and the completion generator can walk the
 * command tree without running it.
 */
export function buildProgram(): Command {
  const program = new Command('cadfleet')
    .description('Deploy and operate a CAD conversion and 3D streaming fleet, on AWS or locally.')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    // Options after a command belong to it: `cadfleet upgrade --version 1.2` names a release, it does not print ours.
    .enablePositionalOptions();
  program.addCommand(convertCommand());
  program.addCommand(localCommand());
  program.addCommand(outputsCommand());
  for (const cmd of stackCommands()) program.addCommand(cmd);
  program.addCommand(deployCommand());
  for (const cmd of upgradeCommands()) program.addCommand(cmd);
  program.addCommand(statusCommand());
  program.addCommand(doctorCommand());
  program.addCommand(keysCommand());
  program.addCommand(modelsCommand());
  program.addCommand(sshCommandLine());
  program.addCommand(execCommandLine());
  program.addCommand(logsCommandLine());
  // The completion script is generated from the tree above, so it is added last.
  program.addCommand(completionCommand(() => program));
  return program;
}
