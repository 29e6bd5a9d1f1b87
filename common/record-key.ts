/**
 * A record's `key` from the values of a business or primary key: parts joined with `|`, `%` and
 * `|` percent-encoded in each part so the joined key is unambiguous (docs/wire.md). `slash: true`
 * encodes `/` and `~` too, for ids built of `/`-separated segments around the key, where `~` marks
 * a hashed key (the SQL collector's); the file-drop collector's ids keep the 0.2 encoding (its key
 * sits before a fixed-length hash).
 */
export function joinKey(parts: readonly unknown[], opts: { slash?: boolean } = {}): string {
  const special = opts.slash ? /[%|/~]/g : /[%|]/g;
  return parts.map((p) => (p === null || p === undefined ? '' : String(p)).replace(special, percent)).join('|');
}

function percent(c: string): string {
  return `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
}
