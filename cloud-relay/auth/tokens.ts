import { createHash, timingSafeEqual } from 'node:crypto';

export interface NamedToken {
  name: string;
  token: string;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * The API tokens of the relay config. Both sides are hashed to 32 bytes before timingSafeEqual,
 * so neither a token's length nor its first differing byte shows in the response time; every
 * token is compared (no early exit), so neither does which one matched.
 */
export class TokenSet {
  private readonly digests: Array<{ name: string; digest: Buffer }>;

  constructor(tokens: readonly NamedToken[]) {
    this.digests = tokens.map((t) => ({ name: t.name, digest: sha256(t.token) }));
  }

  get size(): number {
    return this.digests.length;
  }

  /** The matching token's name, or undefined. */
  match(presented: string): string | undefined {
    const d = sha256(presented);
    let found: string | undefined;
    for (const t of this.digests) if (timingSafeEqual(d, t.digest) && found === undefined) found = t.name;
    return found;
  }
}
