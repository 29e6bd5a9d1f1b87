/**
 * Field paths of a mapping: `order_number`, `customer.name`, `lines[0].sku`, `fields['Order No']`
 * (quotes for names holding `.`, `[`, `]` or spaces at the ends). Parsed once when a mapping is
 * compiled; reading, writing and removing then walk the segments.
 */

/** A property name, or an array index. */
export type Segment = string | number;

const NAME = /^[^.[\]'"]+/;
const INDEX = /^\[(\d{1,6})\]/;
const QUOTED = /^\[(?:'([^']*)'|"([^"]*)")\]/;

/** The segments of a path, or a sentence saying what is wrong with it (for the config error). */
export function parsePath(text: string): Segment[] | string {
  const segs: Segment[] = [];
  let rest = text;
  let expectName = true;
  while (rest.length > 0) {
    let m: RegExpExecArray | null;
    if (expectName && (m = NAME.exec(rest))) {
      if (m[0] !== m[0].trim()) return `"${m[0]}" starts or ends with a space: quote it as ['${m[0]}']`;
      segs.push(m[0]);
    } else if ((m = INDEX.exec(rest))) {
      segs.push(Number(m[1]));
    } else if ((m = QUOTED.exec(rest))) {
      const name = m[1] ?? m[2] ?? '';
      if (name === '') return 'a quoted name is empty';
      segs.push(name);
    } else if (!expectName && rest.startsWith('.')) {
      rest = rest.slice(1);
      expectName = true;
      if (rest.length === 0) return 'ends with "."';
      continue;
    } else {
      return `cannot read "${rest}" (write a.b, a[0].b or a['name with . or spaces'])`;
    }
    rest = rest.slice(m[0].length);
    expectName = false;
  }
  if (segs.length === 0) return 'is empty';
  // A mapping writes into plain objects: these names would reach Object.prototype instead.
  const unsafe = segs.find((s) => s === '__proto__' || s === 'constructor' || s === 'prototype');
  if (unsafe !== undefined) return `"${unsafe}" cannot be a field name here`;
  return segs;
}

/** The path as a mapping error names it (the way it is written in the YAML, normalised). */
export function formatPath(segs: readonly Segment[]): string {
  let out = '';
  for (const s of segs) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z0-9_$-]+$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `['${s}']`;
  }
  return out;
}

export function getAt(root: unknown, segs: readonly Segment[]): unknown {
  let cur = root;
  for (const s of segs) {
    // Own fields only: `toString` or `constructor` in a path is a field the record lacks, not a
    // function every object inherits.
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, s)) return undefined;
    cur = (cur as Record<Segment, unknown>)[s];
  }
  return cur;
}

/**
 * Writes `value` at the path, creating objects (and arrays, before an index) on the way. A value
 * in the way that is not an object is an error: the mapping would silently lose it.
 */
export function setAt(root: Record<string, unknown>, segs: readonly Segment[], value: unknown): void {
  let cur: Record<Segment, unknown> = root;
  for (let i = 0; i < segs.length - 1; i++) {
    const s = segs[i]!;
    let next = cur[s];
    if (next === undefined || next === null) {
      next = typeof segs[i + 1] === 'number' ? [] : {};
      cur[s] = next;
    } else if (typeof next !== 'object') {
      throw new PathConflict(segs.slice(0, i + 1));
    }
    cur = next as Record<Segment, unknown>;
  }
  cur[segs[segs.length - 1]!] = value;
}

/** Removes the value at the path (nothing to do when absent); an array element is taken out, the rest move up. */
export function deleteAt(root: unknown, segs: readonly Segment[]): void {
  const parent = getAt(root, segs.slice(0, -1));
  if (parent === null || typeof parent !== 'object') return;
  const last = segs[segs.length - 1]!;
  if (Array.isArray(parent) && typeof last === 'number') {
    if (last < parent.length) parent.splice(last, 1);
  } else {
    delete (parent as Record<Segment, unknown>)[last];
  }
}

/** setAt found a plain value where the path needs an object. */
export class PathConflict extends Error {
  constructor(readonly at: readonly Segment[]) {
    super(`${formatPath(at)} holds a plain value, so nothing can be written below it`);
  }
}
