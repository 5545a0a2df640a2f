import fs from 'node:fs';
import os from 'node:os';

/** One line of a benchmark table: a measured median, optionally as a ratio against a baseline row of the same run. */
export interface Row {
  name: string;
  median: number;
  unit: string;
  /** Min..max over the runs, as text. */
  spread?: string;
  /** The name of the row this one is compared with, and the ratio (this / baseline). */
  baseline?: string;
  ratio?: number;
  note?: string;
}

export interface Section {
  title: string;
  rows: Row[];
  notes?: string[];
}

/** The p-th percentile of values sorted ascending (nearest rank). */
export const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const spread = (values: number[], digits = 3): string =>
  `${Math.min(...values).toFixed(digits)}..${Math.max(...values).toFixed(digits)}`;

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
}

const fmt = (n: number): string => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toFixed(3));

export function table(section: Section): string {
  const lines = [`### ${section.title}`, '', '| measure | median | spread | vs baseline |', '|---|---:|---|---|'];
  for (const row of section.rows) {
    const vs = row.baseline && row.ratio !== undefined ? `${row.ratio.toFixed(2)}x ${row.baseline}` : '';
    lines.push(`| ${row.name} | ${fmt(row.median)} ${row.unit} | ${row.spread ?? ''} | ${vs}${row.note ? ` (${row.note})` : ''} |`);
  }
  for (const note of section.notes ?? []) lines.push('', note);
  return lines.join('\n');
}

/** Replaces the named section of docs/benchmarks.md, keeping the others from earlier runs. */
export function writeReport(file: string, name: string, section: Section): void {
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const header = '# Benchmarks\n\nWritten by `npm run bench`; each section is replaced when its benchmark runs again.\nEvery ratio compares two figures measured in the same run on the same machine.\n';
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : header;
  const block = `${begin}\n${table(section)}\n\nMeasured ${new Date().toISOString().slice(0, 10)} on ${machine()}.\n${end}`;
  const at = text.indexOf(begin);
  if (at >= 0) text = text.slice(0, at) + block + text.slice(text.indexOf(end) + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, text);
}
