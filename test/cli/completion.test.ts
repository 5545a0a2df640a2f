// The completion scripts, run by the real shells: bash through its completion variables
// (COMP_WORDS, COMP_CWORD, COMPREPLY), zsh with the completion system's _describe, _files and
// compdef replaced by functions that print what they were given. What is expected is read from
// the commander tree directly, so a command or option the scripts miss fails here.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { bashCompletion, zshCompletion } from '../../cli/src/completion';
import { buildProgram } from '../../cli/src/program';

const program = buildProgram();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-completion-'));
// Environments with variables files: what --env offers besides local.
fs.mkdirSync(path.join(dir, 'environments'));
for (const env of ['staging', 'prod']) fs.writeFileSync(path.join(dir, 'environments', `${env}.tfvars`), '');

/** Commands with their paths, walked with commander's own API. */
function commands(cmd: Command, at: string[] = []): Array<{ words: string[]; cmd: Command }> {
  const here = [...at, cmd.name()];
  return [{ words: here, cmd }, ...cmd.commands.flatMap((c) => commands(c, here))];
}
const expected = (cmd: Command): string[] =>
  [...cmd.commands.map((c) => c.name()), ...cmd.options.flatMap((o) => [o.short, o.long].filter((f): f is string => !!f)), '-h', '--help'].sort();

/** Runs each case (the words typed, the last one being completed) in one shell; returns the candidates per case. */
function complete(shell: 'bash' | 'zsh', cases: string[][]): string[][] {
  const script = path.join(dir, `completion.${shell}`);
  fs.writeFileSync(script, shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
  const q = (w: string): string => `'${w.replace(/'/g, `'\\''`)}'`;
  const body =
    shell === 'bash'
      ? [
          `source ${q(script)}`,
          ...cases.map((words) => `COMP_WORDS=(${words.map(q).join(' ')}); COMP_CWORD=${words.length - 1}; _cadfleet; echo '>>'; printf '%s\\n' "\${COMPREPLY[@]}"`),
        ]
      : [
          // Stand-ins for the completion system: print the candidates instead of offering them.
          'compdef() { :; }',
          '_describe() { [[ $1 == -t ]] && shift 2; local arr=$2 item; for item in "${(@P)arr}"; do print -r -- "${item%%:*}"; done; }',
          '_files() { print -r -- "<files>"; }',
          '_default() { print -r -- "<default>"; }',
          `source ${q(script)}`,
          ...cases.map((words) => `words=(${words.map(q).join(' ')}); CURRENT=${words.length}; PREFIX=${q(words.at(-1)!)}; print -r -- '>>'; _cadfleet | grep -e "^\${PREFIX}" -e '^<' | sort -u`),
        ];
  const argv = shell === 'bash' ? ['bash', ['--norc', '--noprofile', '-c', body.join('\n')]] : ['zsh', ['-f', '-c', body.join('\n')]];
  const r = spawnSync(argv[0] as string, argv[1] as string[], { cwd: dir, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  return r.stdout.split('>>\n').slice(1).map((block) => block.split('\n').filter(Boolean).sort());
}

describe.each(['bash', 'zsh'] as const)('%s completion', (shell) => {
  it('offers exactly the subcommands and options of every command in the tree', () => {
    const all = commands(program);
    const results = complete(shell, all.map((c) => [...c.words, '']));
    // zsh offers options when a command has no subcommands, else subcommands (options after a `-`).
    all.forEach((c, i) => {
      const want = shell === 'bash' || c.cmd.commands.length === 0 ? expected(c.cmd) : c.cmd.commands.map((s) => s.name()).sort();
      expect(results[i], c.words.join(' ')).toEqual(want);
    });
    const dashed = complete(shell, all.map((c) => [...c.words, '-']));
    all.forEach((c, i) => expect(dashed[i], `${c.words.join(' ')} -`).toEqual(expected(c.cmd).filter((w) => w.startsWith('-'))));
  });

  it('completes a prefix, and keeps its place after option values', () => {
    const [local, up, upgrade] = complete(shell, [
      ['cadfleet', 'lo'],
      ['cadfleet', 'local', 'u'],
      ['cadfleet', 'upgrade', '--env', 'staging', '--version', '1.4.0', '--'],
    ]);
    expect(local).toEqual(['local', 'lock', 'logs']);
    expect(up).toEqual(['up']);
    expect(upgrade).toEqual(['--batch', '--env', '--help', '--json', '--lock-wait', '--version']);
  });

  it('offers local and the environments with a tfvars file after --env; files after other values; nothing of its own after --', () => {
    const [env, envPrefix, since, remote] = complete(shell, [
      ['cadfleet', 'status', '--env', ''],
      ['cadfleet', 'upgrade', '--env', 's'],
      ['cadfleet', 'logs', '--env', 'local', 'worker', '--since', ''],
      ['cadfleet', 'ssh', '--env', 'local', 'api', '--', 'sys'],
    ]);
    expect(env).toEqual(['local', 'prod', 'staging']);
    expect(envPrefix).toEqual(['staging']);
    // bash: an empty reply falls back to file names (complete -o default); zsh: _files, _default.
    expect(since).toEqual(shell === 'bash' ? [] : ['<files>']);
    expect(remote).toEqual(shell === 'bash' ? [] : ['<default>']);
  });
});

describe('cadfleet completion', () => {
  it('prints the script for the shell asked, through the built CLI', () => {
    const cli = path.resolve(import.meta.dirname, '../../bin/cadfleet.js');
    const bash = spawnSync(process.execPath, [cli, 'completion', 'bash'], { encoding: 'utf8' });
    expect(bash.status).toBe(0);
    expect(bash.stdout).toBe(bashCompletion(buildProgram()));
    expect(spawnSync('bash', ['-n'], { input: bash.stdout }).status).toBe(0);
    const zsh = spawnSync(process.execPath, [cli, 'completion', 'zsh'], { encoding: 'utf8' });
    expect(zsh.stdout.startsWith('#compdef cadfleet\n')).toBe(true);
    expect(spawnSync('zsh', ['-n'], { input: zsh.stdout }).status).toBe(0);
    const fish = spawnSync(process.execPath, [cli, 'completion', 'fish'], { encoding: 'utf8' });
    expect(fish.status).not.toBe(0);
    expect(fish.stderr).toMatch(/Allowed choices are bash, zsh/);
  });
});
