import { readFileSync } from 'node:fs';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parse, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ErpEdgeError } from './errors.js';
import { HINTS, explainYamlError, unresolvedAliases, type SyntaxProblem } from './yaml-syntax.js';

/**
 * YAML config loader that reports every problem as `<file>:<line>:<col> <key.path>: <problem>`,
 * so a site engineer can fix a config without reading a zod dump.
 */

type PathSeg = PropertyKey;
export interface ConfigIssue {
  line: number;
  col: number;
  /** Key path; '' for a YAML syntax error. */
  path: string;
  message: string;
  /** YAML syntax errors: what to do, in plain words. */
  hint?: string;
}

export function loadConfigFile<S extends z.ZodType>(path: string, schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    throw new ErpEdgeError('ERP_CONFIG_UNREADABLE', `cannot read config file ${path}: ${code}`, { file: path, code }, { cause: err });
  }
  return parseConfigText(text, path, schema, env);
}

export function parseConfigText<S extends z.ZodType>(text: string, fileLabel: string, schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  const lineCounter = new LineCounter();
  // prettyErrors off: we print our own position prefix, so yaml's "at line N, column M:" would repeat it.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (offset: number) => lineCounter.linePos(offset);

  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e): ConfigIssue => syntaxIssue(explainYamlError(e, doc, text), e.message.split('\n')[0]!, '', at));
    throw syntaxError(fileLabel, issues);
  }
  // Not `{}`: listing every required key would hide that the file itself is empty (wrong file, not yet written).
  if (isEmptyDocument(doc)) {
    const message = 'the config file is empty';
    throw new ErpEdgeError('ERP_CONFIG_INVALID', `${fileLabel}: ${message}`, { file: fileLabel, issues: [{ line: 1, col: 1, path: '', message }] });
  }
  // `include: *.csv` parses (as an alias) but fails in toJS() with a bare ReferenceError and no position.
  const aliases = unresolvedAliases(doc);
  if (aliases.length > 0) {
    const issues = aliases.map((a) => syntaxIssue({ offset: a.offset, hint: HINTS.alias(a.source) }, `unknown YAML alias *${a.source}`, formatPath(a.path), at));
    throw syntaxError(fileLabel, issues);
  }

  // Env values that went into the config, so zod's own messages can be scrubbed of them (secrets).
  const envValues = new Map<string, string>();
  substituteEnv(doc.contents, [], { fileLabel, env, at, envValues });

  const data: unknown = doc.toJS();
  const result = schema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;

  const issues = result.error.issues
    .flatMap((issue) => describeIssue(issue, doc, schema, data, at, envValues))
    .sort((a, b) => a.line - b.line || a.col - b.col);
  const message = issues.map((i) => `${fileLabel}:${i.line}:${i.col} ${i.path}: ${i.message}`).join('\n');
  // No `cause`: the zod error carries the raw input, which may include secrets.
  throw new ErpEdgeError('ERP_CONFIG_INVALID', message, { file: fileLabel, issues });
}

// ---------------------------------------------------------------------------------------------
// YAML syntax errors

/** No content at all: nothing, blanks, comments, or just the `---` marker (an empty node there; `~` is a written null, not empty). */
function isEmptyDocument(doc: Document): boolean {
  const c = doc.contents;
  return c === null || (isScalar(c) && c.value === null && c.range?.[0] === c.range?.[1]);
}

function syntaxIssue(p: SyntaxProblem, message: string, path: string, at: (offset: number) => { line: number; col: number }): ConfigIssue {
  const noticed = p.noticedAt === undefined ? undefined : at(p.noticedAt);
  const pos = at(p.offset);
  const where = noticed && noticed.line !== pos.line ? ` (noticed at line ${noticed.line})` : '';
  return { ...pos, path, message: message + where, ...(p.hint ? { hint: p.hint } : {}) };
}

/**
 * Only the first error, with its hint: yaml reports a missing ':' as a cascade (ten lines for one
 * culprit), and the later errors mostly follow from the first. `context.issues` keeps all of them.
 */
function syntaxError(fileLabel: string, issues: ConfigIssue[]): ErpEdgeError {
  const first = issues[0]!;
  const lines = [`${fileLabel}:${first.line}:${first.col} ${first.path ? `${first.path}: ` : ''}${first.message}`];
  if (first.hint) lines.push(`  hint: ${first.hint}`);
  const more = issues.length - 1;
  if (more > 0) lines.push(`  (${more} more YAML error${more === 1 ? '' : 's'})`);
  return new ErpEdgeError('ERP_CONFIG_INVALID', lines.join('\n'), { file: fileLabel, issues });
}

// ---------------------------------------------------------------------------------------------
// Environment substitution

interface SubstCtx {
  fileLabel: string;
  env: NodeJS.ProcessEnv;
  at: (offset: number) => { line: number; col: number };
  envValues: Map<string, string>;
}

const REF = /\$\$\{|\$\{([^}]*)\}/g;
const REF_BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/**
 * Replaces `${VAR}` / `${VAR:-default}` in string VALUES (never keys) after parsing, on the scalar
 * nodes themselves: positions survive, and a secret containing `:` or `#` cannot alter the YAML
 * structure. `$${` yields a literal `${`. As in the shell, `:-` also applies when VAR is empty.
 *
 * Typing rule: when an UNQUOTED scalar is exactly one reference (`port: ${PORT}`) and the
 * substituted text reads as a YAML number or boolean, the typed value is used, exactly as if it
 * had been written in the file. Quote it (`"${PIN}"`) to keep a string.
 */
function substituteEnv(node: unknown, path: PathSeg[], ctx: SubstCtx): void {
  if (isMap(node)) {
    for (const pair of node.items) substituteEnv(pair.value, [...path, keyOf(pair.key)], ctx);
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => substituteEnv(item, [...path, i], ctx));
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
    const raw = node.value;
    const pos = ctx.at(node.range?.[0] ?? 0);
    const keyPath = formatPath(path);
    const where = `${ctx.fileLabel}:${pos.line}:${pos.col} ${keyPath}`;
    const out = raw.replace(REF, (match, body: string | undefined) => {
      if (body === undefined) return '${'; // the `$${` escape
      const m = REF_BODY.exec(body);
      if (!m) {
        throw new ErpEdgeError('ERP_CONFIG_INVALID', `${where}: malformed environment reference ${match} (expected \${NAME} or \${NAME:-default})`, { file: ctx.fileLabel, ...pos, path: keyPath });
      }
      const [, name, fallback] = m as unknown as [string, string, string | undefined];
      const value = ctx.env[name];
      if (value !== undefined && (value !== '' || fallback === undefined)) {
        ctx.envValues.set(value, name);
        return value;
      }
      if (fallback !== undefined) return fallback;
      throw new ErpEdgeError(
        'ERP_CONFIG_ENV_MISSING',
        `${where}: environment variable ${name} is not set (use \${${name}:-default} for a default)`,
        { file: ctx.fileLabel, ...pos, path: keyPath, variable: name },
      );
    });
    node.value = out;
    if (node.type === 'PLAIN' && /^\$\{[^}]*\}$/.test(raw)) {
      try {
        const typed: unknown = parse(out, { logLevel: 'silent' });
        if (typeof typed === 'number' || typeof typed === 'boolean') node.value = typed;
      } catch {
        /* not a plain scalar: keep the string */
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Issue → positioned message

function describeIssue(
  issue: z.core.$ZodIssue,
  doc: Document,
  schema: z.ZodType,
  data: unknown,
  at: (offset: number) => { line: number; col: number },
  envValues: Map<string, string>,
): ConfigIssue[] {
  const path = issue.path;
  const pos = (node: Node | null | undefined) => at(node?.range?.[0] ?? 0);

  if (issue.code === 'unrecognized_keys') {
    const allowed = objectKeysAt(schema, path, data);
    const hint = allowed ? ` (check spelling; allowed: ${allowed.join(', ')})` : '';
    return issue.keys.map((key) => {
      const found = locate(doc, [...path, key]);
      return { ...pos(found.keyNode ?? found.node), path: formatPath([...path, key]), message: `unknown key${hint}` };
    });
  }

  const found = locate(doc, path);
  const input = (issue as { input?: unknown }).input;
  let message: string;
  if (issue.code === 'invalid_type' && input === undefined) {
    message = 'required'; // found.node is the nearest existing parent, i.e. the map lacking the key
  } else if (issue.code === 'invalid_type') {
    message = `expected ${issue.expected}, got ${typeName(input)}`;
  } else if (issue.code === 'invalid_union' && isTypeOnlyUnion(issue)) {
    // e.g. durationMs given a boolean: "expected string | number, got boolean" beats "Invalid input".
    const expected = issue.errors.map((branch) => (branch[0] as { expected: string }).expected);
    message = `expected ${[...new Set(expected)].join(' | ')}, got ${typeName(input)}`;
  } else if (issue.code === 'invalid_union' && 'discriminator' in issue && found.depth < path.length) {
    message = `required; ${scrub(issue.message, envValues)}`;
  } else {
    message = scrub(issue.message, envValues);
  }
  return [{ ...pos(found.node), path: formatPath(path), message }];
}

function isTypeOnlyUnion(issue: z.core.$ZodIssueInvalidUnion): boolean {
  return issue.errors.length > 0 && issue.errors.every((b) => b.length === 1 && b[0]!.code === 'invalid_type' && b[0]!.path.length === 0);
}

/**
 * Zod messages (custom refinements) may quote the input; replace any env-sourced value by its
 * `${NAME}`. Deliberately blunt: a short value (say "1") is also replaced where it appears by chance.
 */
function scrub(message: string, envValues: Map<string, string>): string {
  const byLength = [...envValues].filter(([v]) => v !== '').sort((a, b) => b[0].length - a[0].length);
  for (const [value, name] of byLength) {
    for (const form of new Set([value, JSON.stringify(value).slice(1, -1)])) message = message.split(form).join(`\${${name}}`);
  }
  return message;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function keyOf(key: unknown): PathSeg {
  return isScalar(key) ? String(key.value) : String(key);
}

/** Deepest YAML node along `path` (depth = segments matched), plus the key node of the last matched map entry. */
function locate(doc: Document, path: readonly PathSeg[]): { node: Node | null; keyNode?: Node; depth: number } {
  let node = doc.contents as Node | null;
  let keyNode: Node | undefined;
  let depth = 0;
  for (const seg of path) {
    if (isAlias(node)) node = (node.resolve(doc) ?? null) as Node | null;
    let next: Node | null | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyOf(p.key) === String(seg));
      if (!pair) break;
      keyNode = pair.key as Node;
      next = (pair.value as Node | null) ?? keyNode; // `key:` with no value node: point at the key
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg] as Node | undefined;
      keyNode = undefined;
    }
    if (!next) break;
    node = next;
    depth++;
  }
  return { node, keyNode: depth === path.length ? keyNode : undefined, depth };
}

/** `collectors[1].path`, `outbox.max_bytes`, `(root)`; odd keys are quoted: `labels["a.b"]`. */
export function formatPath(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][\w-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || '(root)';
}

// ---------------------------------------------------------------------------------------------
// Allowed keys for "unknown key" hints: follow the schema along the issue path (best effort).

interface LooseDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  getter?: () => z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  values?: unknown[];
}
const defOf = (s: z.ZodType) => s._zod.def as unknown as LooseDef;
const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional']);

/** Strips wrappers/pipes and picks the union option matching `data`; undefined when ambiguous. */
function unwrap(schema: z.ZodType | undefined, data: unknown): z.ZodType | undefined {
  for (let s = schema, guard = 0; s && guard < 50; guard++) {
    const def = defOf(s);
    if (WRAPPERS.has(def.type)) s = def.innerType;
    else if (def.type === 'pipe') s = def.in;
    else if (def.type === 'lazy') s = def.getter?.();
    else if (def.type === 'union') {
      // A discriminated union (zod reports the matching option's issues) or a single object option.
      const objects = (def.options ?? []).filter((o) => defOf(unwrap(o, data) ?? o).type === 'object');
      const disc = def.discriminator;
      const value = disc && data && typeof data === 'object' ? (data as Record<string, unknown>)[disc] : undefined;
      const tag = (o: z.ZodType) => defOf(unwrap(o, data) ?? o).shape?.[disc ?? ''];
      const pick = objects.length === 1 ? objects : objects.filter((o) => { const t = tag(o); return t !== undefined && defOf(t).values?.includes(value); });
      if (pick.length !== 1) return undefined;
      s = pick[0];
    } else return s;
  }
  return undefined;
}

function objectKeysAt(schema: z.ZodType, path: readonly PathSeg[], data: unknown): string[] | undefined {
  let s: z.ZodType | undefined = schema;
  let d = data;
  for (const seg of path) {
    s = unwrap(s, d);
    const def = s && defOf(s);
    d = d && typeof d === 'object' ? (d as Record<PropertyKey, unknown>)[seg] : undefined;
    s = def?.type === 'object' ? def.shape?.[String(seg)] : def?.type === 'array' ? def.element : undefined;
  }
  s = unwrap(s, d);
  return s && defOf(s).type === 'object' ? Object.keys(defOf(s).shape ?? {}) : undefined;
}
