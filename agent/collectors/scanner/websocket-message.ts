import { z } from 'zod';
import type { ErrorCode } from '../../../common/errors.js';

/** The client's message id: a retry with the same id becomes the same record id (the relay stores it once). */
export const MAX_MESSAGE_ID = 128;

/**
 * One scan as a handheld sends it (docs/scanner-ws.md). Strict: a misspelt field (`timestamp` for
 * `ts`) is an error the app's developer sees at once, not a value silently lost.
 */
export const scanMessage = z.strictObject({
  barcode: z.string().min(1).max(8_192),
  /** Optional: the token names the device; when given it must be the token's device. */
  device: z.string().min(1).max(64).optional(),
  location: z.string().min(1).max(200).optional(),
  /** Device time of the scan: epoch milliseconds, or ISO 8601 with a zone (`Z` or an offset). */
  ts: z.union([z.number().int().min(0).max(8.64e15), z.iso.datetime({ offset: true })]).optional(),
  id: z.string().min(1).max(MAX_MESSAGE_ID).optional(),
});

export type ScanMessage = z.output<typeof scanMessage>;

export type ScanReply =
  | { ok: true; seq: number; id?: string }
  | { ok: false; error: { code: ErrorCode; message: string; retry_after_ms?: number }; id?: string };

/** Device time in epoch ms. */
export function deviceTime(ts: ScanMessage['ts']): number | undefined {
  return typeof ts === 'string' ? Date.parse(ts) : ts;
}

/** The message's id when it has a usable one, so even an error reply can name the message. */
export function messageIdOf(item: unknown): string | undefined {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) return undefined;
  const id = (item as { id?: unknown }).id;
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_MESSAGE_ID ? id : undefined;
}

/** What is wrong with a message, for the error reply: the first problem, with its field. */
export function describeInvalid(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const field = issue.path.join('.');
  return field ? `${field}: ${issue.message}` : issue.message;
}

export function failure(code: ErrorCode, message: string, id: string | undefined, retryAfterMs?: number): ScanReply {
  return { ok: false, error: { code, message, ...(retryAfterMs !== undefined ? { retry_after_ms: retryAfterMs } : {}) }, ...(id !== undefined ? { id } : {}) };
}
