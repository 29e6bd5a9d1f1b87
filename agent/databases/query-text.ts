/**
 * The text of a `mode: query` statement (issue #8: "a custom SELECT with :last bound to the
 * checkpoint"). `:last` is a named placeholder the dialect turns into its own parameter marker; it is
 * found only where SQL would read it as one: not inside '…' strings, "…" or `…` quoted names,
 * -- or /* *\/ comments, PostgreSQL $$…$$ bodies, and not as the tail of a `::` cast.
 */

const PLACEHOLDER = ':last';

/** Every `:last` replaced by `marker(i)` (i counting from 0); how many there were. */
export function bindLast(sql: string, marker: (i: number) => string): { sql: string; count: number } {
  let out = '';
  let count = 0;
  let i = 0;
  while (i < sql.length) {
    const skip = quotedEnd(sql, i);
    if (skip > i) {
      out += sql.slice(i, skip);
      i = skip;
      continue;
    }
    if (sql.startsWith(PLACEHOLDER, i) && sql[i - 1] !== ':' && !/[A-Za-z0-9_$]/.test(sql[i + PLACEHOLDER.length] ?? '')) {
      out += marker(count++);
      i += PLACEHOLDER.length;
      continue;
    }
    out += sql[i];
    i++;
  }
  return { sql: out, count };
}

/** Where a quoted string, quoted name, comment or dollar-quoted body starting at `i` ends; `i` when none starts there. */
function quotedEnd(sql: string, i: number): number {
  const c = sql[i];
  if (c === "'" || c === '"' || c === '`') return closing(sql, i + 1, c);
  if (sql.startsWith('--', i)) return lineEnd(sql, i);
  if (sql.startsWith('/*', i)) {
    const end = sql.indexOf('*/', i + 2);
    return end < 0 ? sql.length : end + 2;
  }
  const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
  if (dollar && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? '')) {
    const end = sql.indexOf(dollar[0], i + dollar[0].length);
    return end < 0 ? sql.length : end + dollar[0].length;
  }
  return i;
}

/** After the quote closing at or after `from` (a doubled quote is one character of the text; MySQL's backslash escapes one). */
function closing(sql: string, from: number, q: string): number {
  let j = from;
  while (j < sql.length) {
    if (sql[j] === '\\' && q === "'") j += 2;
    else if (sql[j] === q && sql[j + 1] === q) j += 2;
    else if (sql[j] === q) return j + 1;
    else j++;
  }
  return sql.length;
}

function lineEnd(sql: string, i: number): number {
  const end = sql.indexOf('\n', i);
  return end < 0 ? sql.length : end + 1;
}

/**
 * Refuses a statement the engine cannot read page by page: it is wrapped as a derived table
 * (`SELECT q.* FROM (<statement>) q WHERE … ORDER BY … LIMIT …`), so it must be one SELECT (or
 * WITH … SELECT) that uses `:last`. Returns the reason, or undefined when it is fine.
 */
export function queryProblem(sql: string): string | undefined {
  const body = stripLeading(sql);
  if (!/^(select|with)\b/i.test(body)) return 'must be a SELECT (or WITH … SELECT): it is read page by page as a derived table; put a stored procedure\'s result behind a view or a set-returning function';
  if (bindLast(sql, () => '?').count === 0) return 'does not use :last: without it every poll reads every row again (bind :last where the statement filters on version_column, e.g. WHERE changed_at >= :last)';
  if (/;\s*\S/.test(stripQuoted(sql))) return 'must be one statement (a ; is followed by more text)';
  return undefined;
}

/**
 * Refuses a statement a scheduled snapshot cannot run (SqlSource.runQuery): one SELECT (or WITH …
 * SELECT), read-only by its form; PostgreSQL reads it through a cursor (DECLARE … CURSOR FOR it).
 * Returns the reason, or undefined when it is fine.
 */
export function snapshotQueryProblem(sql: string): string | undefined {
  if (!/^(select|with)\b/i.test(stripLeading(sql))) return 'must be a SELECT (or WITH … SELECT); put a stored procedure\'s result behind a view or a table-valued function';
  if (/;\s*\S/.test(stripQuoted(sql))) return 'must be one statement (a ; is followed by more text)';
  return undefined;
}

/** The statement without a closing `;` (and the blanks around it): a cursor or a derived table cannot end in one. */
export function withoutClosingSemicolon(sql: string): string {
  const stripped = stripQuoted(sql);
  const m = /;\s*$/.exec(stripped);
  return (m ? sql.slice(0, m.index) : sql).trimEnd();
}

function stripLeading(sql: string): string {
  let i = 0;
  for (;;) {
    while (i < sql.length && /\s|\(/.test(sql[i]!)) i++;
    const end = sql.startsWith('--', i) || sql.startsWith('/*', i) ? quotedEnd(sql, i) : i;
    if (end === i) return sql.slice(i);
    i = end;
  }
}

/** The text with quoted parts and comments blanked (their length kept). */
function stripQuoted(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const end = quotedEnd(sql, i);
    if (end > i) {
      out += ' '.repeat(end - i);
      i = end;
    } else out += sql[i++];
  }
  return out;
}
