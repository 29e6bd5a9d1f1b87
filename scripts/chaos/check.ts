import Database from 'better-sqlite3';

export interface StreamVerdict {
  stream: string;
  /** Events the producers committed. */
  expected: number;
  /** Records the relay holds for the stream (every epoch). */
  stored: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  /** Records stored that no producer committed. */
  unexpected: number;
  /** Seq holes or overlaps between the relay's segments. */
  seqProblems: number;
}

/**
 * Reads a stream's records from the relay's SQLite store in (epoch, seq) order and compares them
 * with what the producers committed, by each record's key (`keyOf(data)`), expected in order.
 */
export function checkStream(relayDb: string, stream: string, expectedKeys: readonly string[], keyOf: (data: Record<string, unknown>) => string): StreamVerdict {
  const db = new Database(relayDb, { readonly: true, fileMustExist: true });
  const got: string[] = [];
  let seqProblems = 0;
  try {
    const rows = db
      .prepare('SELECT st.id AS sid, g.first_seq AS first, g.last_seq AS last, g.records AS records FROM segments g JOIN streams st ON st.id = g.stream_id WHERE st.stream = ? ORDER BY st.first_seen, st.id, g.first_seq')
      .all(stream) as { sid: number; first: number; last: number; records: string }[];
    let sid = -1;
    let prevLast = 0;
    for (const r of rows) {
      if (r.sid !== sid) {
        sid = r.sid;
        prevLast = r.first - 1; // a later epoch may start past 1 (a fork point)
        if (got.length === 0 && r.first !== 1) seqProblems++;
      }
      if (r.first !== prevLast + 1) seqProblems++;
      prevLast = r.last;
      const recs = JSON.parse(r.records) as { data: Record<string, unknown> }[];
      if (recs.length !== r.last - r.first + 1) seqProblems++;
      for (const rec of recs) got.push(keyOf(rec.data));
    }
  } finally {
    db.close();
  }
  const position = new Map<string, number>();
  expectedKeys.forEach((k, i) => position.set(k, i));
  const seen = new Set<string>();
  let duplicated = 0;
  let outOfOrder = 0;
  let lastPos = -1;
  for (const k of got) {
    if (seen.has(k)) {
      duplicated++;
      continue;
    }
    seen.add(k);
    const p = position.get(k);
    if (p === undefined) continue; // not produced: counted below
    if (p < lastPos) outOfOrder++;
    lastPos = Math.max(lastPos, p);
  }
  let lost = 0;
  for (const k of expectedKeys) if (!seen.has(k)) lost++;
  const unexpected = [...seen].filter((k) => !position.has(k)).length;
  return { stream, expected: expectedKeys.length, stored: got.length, lost, duplicated, outOfOrder, unexpected, seqProblems };
}

/** Records stored per stream (every epoch), cheaply: for progress and recovery times. */
export function storedCounts(relayDb: string): Map<string, number> {
  const db = new Database(relayDb, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT st.stream AS stream, coalesce(sum(g.last_seq - g.first_seq + 1), 0) AS n FROM streams st LEFT JOIN segments g ON g.stream_id = st.id GROUP BY st.stream').all() as { stream: string; n: number }[];
    return new Map(rows.map((r) => [r.stream, r.n]));
  } finally {
    db.close();
  }
}
