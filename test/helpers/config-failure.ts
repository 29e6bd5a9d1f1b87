import { expect } from 'vitest';
import { isErpEdgeError } from '../../common/errors.js';

/** The message of the ERP_CONFIG_INVALID that `fn` throws (fails the test when it throws nothing, or something else). */
export function configFailure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isErpEdgeError(err, 'ERP_CONFIG_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected ERP_CONFIG_INVALID');
}
