import { Argument, Command } from 'commander';
import { bashCompletion, zshCompletion } from '../completion';

/** `cadfleet completion bash|zsh`: prints the script; `program` is the finished tree it describes. */
export function completionCommand(program: () => Command): Command {
  return new Command('completion')
    .description('Print the shell completion script for bash or zsh (commands, options, environment names).')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .addHelpText(
      'after',
      '\nExamples:\n  $ source <(cadfleet completion bash)                            # this shell\n  $ cadfleet completion bash > /etc/bash_completion.d/cadfleet    # every bash\n  $ cadfleet completion zsh > "${fpath[1]}/_cadfleet"             # every zsh',
    )
    .action((shell: 'bash' | 'zsh') => {
      process.stdout.write(shell === 'bash' ? bashCompletion(program()) : zshCompletion(program()));
    });
}
