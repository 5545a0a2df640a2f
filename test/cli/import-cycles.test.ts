// No import circle among the CLI's modules: shared types and the environment contract live in
// leaf modules (cli/src/contract.ts, cli/src/shell.ts), the local and AWS sides build on them,
// and commands sit on top. Type-only imports count too: a circle of types is the same tangle.
// Read with TypeScript's own parser, so no import is missed or invented by a regular expression.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../cli/src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = path.join(dir, e.name);
    return e.isDirectory() ? sources(file) : e.name.endsWith('.ts') ? [file] : [];
  });
}

/** Each module (relative to cli/src) and the cli/src modules it imports or re-exports from. */
export function importGraph(root: string = SRC): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(root)) {
    const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
    const targets = new Set<string>();
    for (const statement of source.statements) {
      if (!(ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement))) continue;
      const specifier = statement.moduleSpecifier;
      if (!specifier || !ts.isStringLiteral(specifier) || !specifier.text.startsWith('.')) continue;
      const resolved = [`${path.resolve(path.dirname(file), specifier.text)}.ts`, path.resolve(path.dirname(file), specifier.text, 'index.ts')].find((f) => fs.existsSync(f));
      if (resolved?.startsWith(`${root}${path.sep}`)) targets.add(path.relative(root, resolved));
    }
    graph.set(path.relative(root, file), [...targets].sort());
  }
  return graph;
}

/** Every elementary circle, each once, starting at its smallest module name. */
export function importCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const nodes = [...graph.keys()].sort();
  for (const start of nodes) {
    // Circles through `start` whose other modules all sort after it: each circle is found once.
    const walk = (node: string, trail: string[]): void => {
      for (const next of graph.get(node) ?? []) {
        if (next === start) cycles.push([...trail, start]);
        else if (next > start && !trail.includes(next)) walk(next, [...trail, next]);
      }
    };
    walk(start, [start]);
  }
  return cycles;
}

describe("the CLI's import graph", () => {
  it('has no circle', () => {
    const graph = importGraph();
    expect(graph.size).toBeGreaterThan(40);
    expect(importCycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('finds a circle, type-only imports included, when there is one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-cycle-check-'));
    try {
      fs.mkdirSync(path.join(dir, 'aws'));
      fs.writeFileSync(path.join(dir, 'environment.ts'), "import { run } from './aws/run-key';\nexport interface Environment { name: string }\nexport const go = run;\n");
      fs.writeFileSync(path.join(dir, 'aws/run-key.ts'), "import type { Environment } from '../environment';\nexport const run = (e: Environment) => e.name;\n");
      fs.writeFileSync(path.join(dir, 'leaf.ts'), "export { run } from './aws/run-key';\n");
      expect(importCycles(importGraph(dir))).toEqual([['aws/run-key.ts', 'environment.ts', 'aws/run-key.ts']]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
