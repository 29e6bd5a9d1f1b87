import path, { type PlatformPath } from 'node:path';
import type { CollectorOverlap } from '../../host/collector.js';
import { nameMatcher, type NameRules } from './names.js';
import type { FileDropConfig } from './schema.js';

/**
 * Two file-drop collectors overlap when they watch the same folder and some file name is taken by
 * both: they would race to claim the file, and which one ingests it would be chance.
 *
 * Pure (no driver imports): `validate` runs it. Finding a shared name is a heuristic: candidate
 * names are built from the patterns (each wildcard filled with '', 'x', or the literal pieces of
 * the other pattern) and each is checked against both collectors' real matchers (nameMatcher:
 * include, exclude, temp names, case). It may miss an exotic overlap (extglobs, character classes,
 * several wildcards that must cooperate), but it never reports a false one: the witness is a name
 * both collectors accept.
 */
export function fileDropOverlap(a: FileDropConfig, b: FileDropConfig): CollectorOverlap | undefined {
  if (!sameFolder(a.path, b.path)) return undefined;
  const name = sharedName(a, b);
  if (name === undefined) return undefined;
  const folder = a.path === b.path ? a.path : `the same folder (${a.path} and ${b.path})`;
  return {
    key: 'path',
    description: `both watch ${folder} and would both take a file named "${name}" (give each its own folder, or include/exclude patterns that keep them apart)`,
  };
}

/**
 * Both paths are relative to the same config file, so resolving each against one base (the
 * current folder: any base gives the same answer) compares them; `./in`, `in/` and `in/../in` are
 * one folder. On Windows paths ignore case. Symlinks are not followed (no file system access).
 */
export function sameFolder(a: string, b: string, p: PlatformPath = path): boolean {
  const norm = (x: string) => (p.sep === '\\' ? p.resolve(x).toLowerCase() : p.resolve(x));
  return norm(a) === norm(b);
}

/** A file name both collectors take, or undefined when none is found (see fileDropOverlap). */
export function sharedName(a: NameRules, b: NameRules): string | undefined {
  const takesA = nameMatcher(a);
  const takesB = nameMatcher(b);
  for (const pa of a.include.flatMap((p) => expandBraces(p))) {
    for (const pb of b.include.flatMap((p) => expandBraces(p))) {
      for (const name of [...candidateNames(pa, pb), ...candidateNames(pb, pa)]) {
        if (isPlainName(name) && takesA(name) && takesB(name)) return name;
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Candidate names

/** A pattern split at its wildcards: literal pieces around holes (`*`, `?`, `[...]`). */
interface Shape {
  pieces: string[]; // pieces.length === holes.length + 1
  holes: Hole[];
}
type Hole = { kind: 'star' } | { kind: 'one' } | { kind: 'class'; sample: string };

/** Names `pattern` may match, its holes filled with '', 'x' and pieces of `other` (e.g. `orders*` + `*.csv` → `orders.csv`). */
export function candidateNames(pattern: string, other: string): string[] {
  const shape = shapeOf(pattern);
  const words = shapeOf(other).pieces.filter((w) => w !== '');
  const options = shape.holes.map((h) => fillersFor(h, words));
  return fill(shape, options);
}

function fillersFor(hole: Hole, words: string[]): string[] {
  if (hole.kind === 'class') return [hole.sample];
  if (hole.kind === 'one') return ['x', ...new Set(words.join(''))];
  // x-joined forms let a name carry the other's word and still differ from it (when that word is excluded).
  return ['x', '', ...words.flatMap((w) => [w, `${w}x`, `x${w}`])];
}

/** Every combination when there are few, else each hole varied alone (the others at their first option). */
function fill(shape: Shape, options: string[][]): string[] {
  const build = (choice: string[]) => shape.pieces.map((piece, i) => piece + (choice[i] ?? '')).join('');
  const total = options.reduce((n, o) => n * o.length, 1);
  if (total <= 512) return product(options).map(build);
  const base = options.map((o) => o[0]!);
  return options.flatMap((o, i) => o.map((f) => build(base.map((d, j) => (j === i ? f : d)))));
}

function product(options: string[][]): string[][] {
  return options.reduce<string[][]>((acc, o) => acc.flatMap((prefix) => o.map((f) => [...prefix, f])), [[]]);
}

function shapeOf(pattern: string): Shape {
  const pieces: string[] = [];
  const holes: Hole[] = [];
  let piece = '';
  const hole = (h: Hole) => (pieces.push(piece), holes.push(h), (piece = ''));
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    const classEnd = c === '[' ? pattern.indexOf(']', i + 2) : -1;
    if (c === '\\' && i + 1 < pattern.length) piece += pattern[++i];
    else if (c === '*') {
      while (pattern[i + 1] === '*') i++; // `**` is one hole here: names have no folders
      hole({ kind: 'star' });
    } else if (c === '?') hole({ kind: 'one' });
    else if (classEnd !== -1) {
      hole({ kind: 'class', sample: classSample(pattern.slice(i + 1, classEnd)) });
      i = classEnd;
    } else piece += c;
  }
  pieces.push(piece);
  return { pieces, holes };
}

/** A character `[body]` matches: its first one, or 'x' for a negated class (the matchers decide). */
function classSample(body: string): string {
  return body.startsWith('!') || body.startsWith('^') ? 'x' : body[0]!;
}

/** `{a,b}.csv` → `a.csv`, `b.csv` (nested braces too); capped, as patterns are short. */
export function expandBraces(pattern: string, limit = 64): string[] {
  const open = pattern.indexOf('{');
  if (open === -1) return [pattern];
  let depth = 0;
  const commas: number[] = [];
  for (let i = open; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') i++;
    else if (c === '{') depth++;
    else if (c === ',' && depth === 1) commas.push(i);
    else if (c === '}' && --depth === 0) {
      const bounds = [open, ...commas, i];
      const alternatives = bounds.slice(1).map((end, k) => pattern.slice(bounds[k]! + 1, end));
      const head = pattern.slice(0, open);
      const tail = pattern.slice(i + 1);
      return alternatives.flatMap((alt) => expandBraces(head + alt + tail, limit)).slice(0, limit);
    }
  }
  return [pattern]; // unbalanced: a literal '{'
}

/** The collector watches one folder, top level: a name with a separator is never one it sees. */
function isPlainName(name: string): boolean {
  return name !== '' && !/[\\/]/.test(name);
}
