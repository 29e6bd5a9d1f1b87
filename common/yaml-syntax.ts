import { isAlias, isMap, isScalar, isSeq, visit, type Document, type Node, type YAMLError } from 'yaml';

/**
 * Turns a `yaml` parse error into the place an IT admin must fix and a hint in plain words.
 *
 * yaml reports where its parser gave up, which is not always the line at fault: an unclosed quote
 * is reported at the end of the file, a key without its ':' may be reported at the next key (a
 * comment line in between is enough), an over-indented line at the value of the line above.
 * Each rule below was reproduced with the real `yaml` package (see test/common/config-file.test.ts).
 * When no rule fits, yaml's own position is kept and there is no hint: no hint beats a wrong one.
 */

export interface SyntaxProblem {
  /** Offset in the text of the place to fix. */
  offset: number;
  /** Where yaml noticed the problem, when that is elsewhere. */
  noticedAt?: number;
  hint?: string;
}

export const HINTS = {
  missingColon: "this line is missing the ':' after its key (write key: value, with a space after the ':')",
  tabs: 'YAML indents with spaces, not tabs: replace the tab with spaces',
  indent: 'indentation does not line up with the lines above (keys of one block start in the same column; indent with spaces)',
  colonInValue: "the value contains ': ' (a colon and a space): put the whole value in quotes",
  backslash: "inside double quotes a backslash starts an escape: write Windows paths in single quotes ('C:\\data\\in') or with forward slashes",
  reservedStart: 'a value that starts with this character must be put in quotes',
  textAfterQuote: "there is text after the closing quote: quote the whole value (inside '...' write a ' as '')",
  strayBracket: 'this closing bracket has no opening one',
  oneDocument: "the file holds more than one YAML document (a '---' line): a config file is one document",
  unclosedQuote: (q: string) => `a quoted value is not closed: add the closing ${q}`,
  unclosedFlow: (open: string, close: string) => `a '${open}' is not closed with '${close}'`,
  duplicateKey: (firstLine: number | undefined) =>
    firstLine === undefined ? 'the key appears twice: keep one' : `the key appears twice (first on line ${firstLine}): keep one`,
  alias: (source: string) => `a value that starts with '*' must be put in quotes, e.g. '*${source}'`,
} as const;

export function explainYamlError(err: YAMLError, doc: Document, text: string): SyntaxProblem {
  const pos = err.pos[0];
  const message = err.message;
  switch (err.code) {
    case 'TAB_AS_INDENT':
      return { offset: pos, hint: HINTS.tabs };
    case 'BAD_DQ_ESCAPE':
      return { offset: pos, hint: HINTS.backslash };
    case 'BAD_SCALAR_START':
      return { offset: pos, hint: HINTS.reservedStart };
    case 'MULTIPLE_DOCS':
      return { offset: pos, hint: HINTS.oneDocument };
    case 'DUPLICATE_KEY':
      return { offset: pos, hint: HINTS.duplicateKey(firstKeyLine(doc, text, pos)) };
    case 'MULTILINE_IMPLICIT_KEY':
      return implicitKeyOnTwoLines(text, pos);
    case 'BLOCK_AS_IMPLICIT_KEY':
      if (message.startsWith('Nested mappings')) {
        // `title: Orders: daily` — or `a: 1` followed by an over-indented line.
        return /:(\s|$)/.test(restOfLine(text, pos)) ? { offset: pos, hint: HINTS.colonInValue } : overIndentedNextLine(text, pos);
      }
      return lineProblem(doc, text, pos, HINTS.indent);
    case 'MISSING_CHAR': {
      const quote = /Missing closing (["'])quote/.exec(message);
      if (quote) {
        const type = quote[1] === '"' ? 'QUOTE_DOUBLE' : 'QUOTE_SINGLE';
        return moved(pos, unclosedStart(doc, pos, (n) => isScalar(n) && n.type === type), HINTS.unclosedQuote(quote[1]!));
      }
      if (message.startsWith('Implicit map keys need to be followed by map values')) {
        return isKeyWithoutColon(restOfLine(text, pos)) ? { offset: pos, hint: HINTS.missingColon } : { offset: pos };
      }
      if (message.startsWith('Sequence item without - indicator')) return lineProblem(doc, text, pos, HINTS.indent);
      return { offset: pos };
    }
    case 'BAD_INDENT': {
      const flow = /^Flow (sequence|map)/.exec(message);
      if (flow) {
        const [open, close] = flow[1] === 'sequence' ? ['[', ']'] : ['{', '}'];
        return moved(pos, unclosedStart(doc, pos, (n) => (isSeq(n) || isMap(n)) && n.flow === true), HINTS.unclosedFlow(open, close));
      }
      return lineProblem(doc, text, pos, HINTS.indent);
    }
    case 'UNEXPECTED_TOKEN':
      if (/flow-(seq|map)-end/.test(message)) return { offset: pos, hint: HINTS.strayBracket };
      if (atLineStart(text, pos)) return lineProblem(doc, text, pos, HINTS.indent);
      if (message.startsWith('Unexpected scalar at node end')) return { offset: pos, hint: HINTS.textAfterQuote };
      return { offset: pos };
    default:
      return { offset: pos };
  }
}

/** `*.csv` unquoted is an alias to an anchor named `.csv`: yaml only fails on it in toJS(), with no position. */
export interface UnresolvedAlias {
  offset: number;
  path: PropertyKey[];
  source: string;
}

export function unresolvedAliases(doc: Document): UnresolvedAlias[] {
  const found: UnresolvedAlias[] = [];
  const walk = (node: unknown, path: PropertyKey[]): void => {
    if (isAlias(node)) {
      if (!node.resolve(doc)) found.push({ offset: node.range?.[0] ?? 0, path, source: node.source });
    } else if (isMap(node)) {
      for (const pair of node.items) walk(pair.value, [...path, isScalar(pair.key) ? String(pair.key.value) : String(pair.key)]);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
  };
  walk(doc.contents, []);
  return found;
}

// ---------------------------------------------------------------------------------------------
// The rules

/**
 * "Implicit keys need to be on a single line". At the start of a line (`site wh-1`, `- type x`)
 * the key on that line lacks its ':' and yaml read it together with the next line. In the middle
 * of a line (a value) the next line is indented deeper than its key, so yaml read it as more of
 * that value.
 */
function implicitKeyOnTwoLines(text: string, pos: number): SyntaxProblem {
  const line = lineAt(text, pos);
  const before = text.slice(line.start, pos);
  if (!/^\s*(-\s+)*$/.test(before)) return overIndentedNextLine(text, pos);
  return isKeyWithoutColon(restOfLine(text, pos)) ? { offset: pos, hint: HINTS.missingColon } : { offset: pos };
}

function overIndentedNextLine(text: string, pos: number): SyntaxProblem {
  const next = contentLineAfter(text, lineAt(text, pos));
  return next ? moved(pos, firstCharOf(next), HINTS.indent) : { offset: pos };
}

/**
 * yaml complains about a whole line (its indentation, or that it cannot continue the document).
 * When the content line above is a bare `key value` with no ':', that line is the culprit: yaml
 * took it as a plain value and only stumbled on the line after it.
 */
function lineProblem(doc: Document, text: string, pos: number, hint: string): SyntaxProblem {
  if (atLineStart(text, pos)) {
    const prev = contentLineBefore(text, lineAt(text, pos));
    if (prev && isKeyWithoutColon(prev.text) && startsPlainScalar(doc, firstCharOf(prev))) return moved(pos, firstCharOf(prev), HINTS.missingColon);
    // yaml may place the problem on a comment or blank line: the line to fix is the next one with content.
    const here = lineAt(text, pos);
    const next = isContent(here) ? undefined : contentLineAfter(text, here);
    if (next) return moved(pos, firstCharOf(next), hint);
  }
  return { offset: pos, hint };
}

function moved(noticedAt: number, offset: number | undefined, hint: string): SyntaxProblem {
  if (offset === undefined || offset === noticedAt) return { offset: noticedAt, hint };
  return { offset, noticedAt, hint };
}

/** Start of the last node matching `is` that begins before `pos` and runs up to it (an unclosed quote or bracket). */
function unclosedStart(doc: Document, pos: number, is: (n: Node) => boolean): number | undefined {
  let start: number | undefined;
  visit(doc, {
    Node(_key, node) {
      const r = node.range;
      if (r && is(node) && r[0] < pos && r[1] >= pos && (start === undefined || r[0] > start)) start = r[0];
    },
  });
  return start;
}

/** The line of the first occurrence of the key whose duplicate starts at `pos`. */
function firstKeyLine(doc: Document, text: string, pos: number): number | undefined {
  let line: number | undefined;
  visit(doc, {
    Map(_key, map) {
      const dup = map.items.find((p) => isScalar(p.key) && p.key.range?.[0] === pos);
      if (!dup || !isScalar(dup.key)) return;
      const dupKey = dup.key;
      const first = map.items.find((p) => isScalar(p.key) && p.key.value === dupKey.value);
      const at = isScalar(first?.key) ? first.key.range?.[0] : undefined;
      if (at !== undefined && at !== pos) line = lineNumber(text, at);
    },
  });
  return line;
}

/** A plain (unquoted) scalar starts exactly here: the line is a value of its own, not the rest of a multi-line one. */
function startsPlainScalar(doc: Document, offset: number): boolean {
  let found = false;
  visit(doc, {
    Scalar(_key, node) {
      if (node.type === 'PLAIN' && node.range?.[0] === offset) found = true;
    },
  });
  return found;
}

// ---------------------------------------------------------------------------------------------
// Lines of the text

interface Line {
  start: number;
  /** Without the line break (and without a `\r`). */
  text: string;
}

function lineAt(text: string, offset: number): Line {
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  const nl = text.indexOf('\n', start);
  const end = nl === -1 ? text.length : nl;
  return { start, text: text.slice(start, end).replace(/\r$/, '') };
}

const isContent = (l: Line) => l.text.trim() !== '' && !l.text.trimStart().startsWith('#');
const firstCharOf = (l: Line) => l.start + l.text.length - l.text.trimStart().length;

function contentLineAfter(text: string, line: Line): Line | undefined {
  for (let next = text.indexOf('\n', line.start); next !== -1 && next + 1 < text.length; next = text.indexOf('\n', next + 1)) {
    const l = lineAt(text, next + 1);
    if (isContent(l)) return l;
  }
  return undefined;
}

function contentLineBefore(text: string, line: Line): Line | undefined {
  for (let start = line.start; start > 0; ) {
    const l = lineAt(text, start - 1);
    if (isContent(l)) return l;
    start = l.start;
  }
  return undefined;
}

function lineNumber(text: string, offset: number): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function atLineStart(text: string, pos: number): boolean {
  return text.slice(lineAt(text, pos).start, pos).trim() === '';
}

function restOfLine(text: string, pos: number): string {
  const line = lineAt(text, pos);
  return line.text.slice(pos - line.start);
}

/** `site wh-1`, `transport`, `name orders # x`: starts like a key, has no `key:` colon. */
function isKeyWithoutColon(line: string): boolean {
  const s = line.replace(/(^|\s)#.*$/, '').trim();
  return /^[A-Za-z0-9_]/.test(s) && !/:(\s|$)/.test(s);
}
