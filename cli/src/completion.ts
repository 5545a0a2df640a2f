// Shell completion scripts for bash and zsh, generated from the commander tree, so a command or
// option added to the CLI completes without anyone editing a script. Both scripts walk the
// words typed so far down the tree (a word descends only when it names a subcommand of where
// we are, so option values such as `--env staging` never do), then offer that command's
// subcommands and options. After `--env` they offer `local` and the environments that have a
// tfvars file in ./environments; after another option that takes a value, file names; after
// `--` (the remote command of ssh and exec), nothing of ours.
import type { Command } from 'commander';

export interface CompletionOption {
  flags: string[];
  description: string;
  takesValue: boolean;
}

export interface CompletionNode {
  /** Command names from the root, e.g. ['cadfleet', 'local', 'up']. */
  path: string[];
  subcommands: Array<{ name: string; description: string }>;
  options: CompletionOption[];
}

const HELP: CompletionOption = { flags: ['-h', '--help'], description: 'display help for command', takesValue: false };

/** Every command of the tree, root first, with what can follow it. */
export function completionTree(program: Command): CompletionNode[] {
  const nodes: CompletionNode[] = [];
  const visit = (cmd: Command, parent: string[]): void => {
    const path = [...parent, cmd.name()];
    nodes.push({
      path,
      subcommands: cmd.commands.map((c) => ({ name: c.name(), description: c.description() })),
      options: [
        ...cmd.options
          .filter((o) => !o.hidden)
          .map((o) => ({ flags: [o.short, o.long].filter((f): f is string => !!f), description: o.description, takesValue: o.required || o.optional })),
        HELP,
      ],
    });
    for (const c of cmd.commands) visit(c, path);
  };
  visit(program, []);
  return nodes;
}

/** What the scripts call a node: its path joined by `/` (command names have no `/`). */
const key = (node: CompletionNode): string => node.path.join('/');
/** `node:flag` for every option that takes a value (--env aside, which has its own completion). */
const valueFlags = (nodes: CompletionNode[]): string[] =>
  nodes.flatMap((n) => n.options.filter((o) => o.takesValue).flatMap((o) => o.flags.filter((f) => f !== '--env').map((f) => `${key(n)}:${f}`)));
const edges = (nodes: CompletionNode[]): string[] => nodes.flatMap((n) => n.subcommands.map((s) => `${key(n)}/${s.name}`));

/** One line of a description: the first sentence, short enough for a completion menu. */
const summary = (text: string): string => {
  const first = text.split(/(?<=\.)\s/)[0] ?? '';
  return (first.length > 72 ? `${first.slice(0, 71)}…` : first).replace(/\.$/, '');
};

export function bashCompletion(program: Command): string {
  const nodes = completionTree(program);
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const cases = nodes.map((n) => `    ${key(n)}) words="${[...n.subcommands.map((s) => s.name), ...n.options.flatMap((o) => o.flags)].join(' ')}" ;;`);
  return `# ${name} completion for bash. Load it in this shell: source <(${name} completion bash)
# or for every shell: ${name} completion bash > /etc/bash_completion.d/${name}
${fn}_envs() {
  local f
  for f in environments/*.tfvars; do [ -e "$f" ] && basename "$f" .tfvars; done
}
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} node=${name} words i
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    # After --, the words are a command for the host: leave them to the default completion.
    [ "\${COMP_WORDS[i]}" = -- ] && return
    case "$node/\${COMP_WORDS[i]}" in
      ${edges(nodes).join('|') || '""'}) node="$node/\${COMP_WORDS[i]}" ;;
    esac
  done
  case "$node:$prev" in
    *:--env) mapfile -t COMPREPLY < <(compgen -W "local $(${fn}_envs)" -- "$cur"); return ;;
    ${valueFlags(nodes).join('|') || '""'}) return ;;
  esac
  case "$node" in
${cases.join('\n')}
  esac
  mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -o default -F ${fn} ${name}
`;
}

/** A `name:description` item for zsh's _describe, quoted for the script. */
const zshItem = (name: string, description: string): string => `'${`${name.replace(/:/g, '\\:')}:${summary(description)}`.replace(/'/g, `'\\''`)}'`;

export function zshCompletion(program: Command): string {
  const nodes = completionTree(program);
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const cases = nodes.map((n) => {
    const subs = n.subcommands.map((s) => zshItem(s.name, s.description));
    const opts = n.options.flatMap((o) => o.flags.map((f) => zshItem(f, o.description)));
    return `    (${key(n)}) subs=(${subs.join(' ')}); opts=(${opts.join(' ')}) ;;`;
  });
  return `#compdef ${name}
# ${name} completion for zsh. Load it in this shell: source <(${name} completion zsh)
# or for every shell: ${name} completion zsh > "\${fpath[1]}/${fn}" (then restart zsh)
${fn}() {
  local node=${name} i
  local -a subs opts envs
  for ((i = 2; i < CURRENT; i++)); do
    # After --, the words are a command for the host.
    [[ \${words[i]} == -- ]] && { _default; return }
    case "$node/\${words[i]}" in
      (${edges(nodes).join('|') || '""'}) node="$node/\${words[i]}" ;;
    esac
  done
  case "$node:\${words[CURRENT-1]}" in
    (*:--env) envs=(local environments/*.tfvars(N:t:r)); _describe -t environments environment envs; return ;;
    (${valueFlags(nodes).join('|') || '""'}) _files; return ;;
  esac
  case "$node" in
${cases.join('\n')}
  esac
  if [[ $PREFIX == -* ]] || (( \${#subs} == 0 )); then
    _describe -t options option opts
  else
    _describe -t commands command subs
  fi
}
# Autoloaded from fpath the file is the function's body; sourced, it registers the function.
if [[ \${funcstack[1]} == ${fn} ]]; then ${fn} "$@"; else compdef ${fn} ${name}; fi
`;
}
