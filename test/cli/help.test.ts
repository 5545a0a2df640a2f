// Every command the operator can run has --help with at least one example that runs that very
// command, so `cadfleet <anything> --help` always ends with something to copy.
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../cli/src/program';

/** Every command with no subcommands, with its path from the root. */
function leaves(cmd: Command, path: string[] = []): Array<{ path: string[]; cmd: Command }> {
  const here = [...path, cmd.name()];
  return cmd.commands.length ? cmd.commands.flatMap((c) => leaves(c, here)) : [{ path: here, cmd }];
}

/** The help text as `--help` prints it, addHelpText blocks included (helpInformation() leaves those out). */
function helpOf(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (out += s) });
  cmd.outputHelp();
  return out;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('--help', () => {
  const all = leaves(buildProgram());

  it('covers the whole tree', () => {
    const names = all.map((l) => l.path.slice(1).join(' '));
    // A few known leaves, so a broken walk cannot pass by finding nothing.
    expect(names).toEqual(expect.arrayContaining(['upgrade', 'local up', 'keys revoke', 'lock release', 'completion', 'apply']));
    expect(names.length).toBeGreaterThanOrEqual(25);
  });

  it.each(all.map((l) => [l.path.join(' '), l.cmd] as const))('%s has a description and examples that run it', (path, cmd) => {
    const help = helpOf(cmd);
    expect(cmd.description(), path).not.toBe('');
    expect(help, path).toMatch(/^Examples?:$/m);
    const examples = help.slice(help.search(/^Examples?:$/m)).split('\n').filter((l) => /^\s+\$ /.test(l));
    expect(examples.length, path).toBeGreaterThan(0);
    // `$ cadfleet local up`, `$ sudo cadfleet ...`, `$ source <(cadfleet completion bash)`
    const runsIt = new RegExp(`\\b${escape(path)}(\\s|\\)|$)`);
    for (const line of examples) expect(line, `${path}: ${line}`).toMatch(runsIt);
  });
});
