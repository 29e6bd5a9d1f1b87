/**
 * The casts a mapping offers. A CSV or a fixed-width export carries every value as text; JSON
 * sources carry numbers and booleans. Each cast takes either and gives one type, or throws a
 * CastError whose message is the reason (the step adds the field). Nothing is rounded or guessed:
 * a value that does not fit is an error, never a changed number.
 */

export const CAST_TYPES = ['string', 'number', 'integer', 'boolean', 'decimal'] as const;
export type CastType = (typeof CAST_TYPES)[number];

export interface CastOptions {
  /** `,` for exports that write 1234,50 (the only separator then; `.` is refused as ambiguous). */
  decimalSeparator: '.' | ',';
  /** decimal: digits after the point, padded with zeros; more significant digits than this are an error. */
  scale?: number | undefined;
}

export class CastError extends Error {}

const NUMBER_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export function cast(value: unknown, to: CastType, opts: CastOptions): string | number | boolean {
  switch (to) {
    case 'string':
      return toText(value);
    case 'number':
      return toNumber(value, opts);
    case 'integer':
      return toInteger(value, opts);
    case 'boolean':
      return toBoolean(value);
    case 'decimal':
      return toDecimal(value, opts);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

function toText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new CastError(`${describe(value)} is not a finite number`);
    return String(value);
  }
  if (typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  throw new CastError(`${describe(value)} is not a plain value`);
}

/** Numeric text in the export's notation, as JavaScript reads it (`.` separator), or a CastError. */
function numericText(value: unknown, opts: CastOptions, what: string): string {
  if (typeof value !== 'string') throw new CastError(`${describe(value)} is not ${what}`);
  let text = value.trim();
  if (opts.decimalSeparator === ',') {
    if (text.includes('.')) throw new CastError(`${describe(value)} holds "." but the decimal separator is ","`);
    text = text.replace(',', '.');
  }
  if (!NUMBER_TEXT.test(text)) throw new CastError(`${describe(value)} is not ${what}`);
  return text;
}

function toNumber(value: unknown, opts: CastOptions): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new CastError(`${describe(value)} is not a finite number`);
    return value === 0 ? 0 : value; // no -0: JSON cannot carry it
  }
  const n = Number(numericText(value, opts, 'a number'));
  if (!Number.isFinite(n)) throw new CastError(`${describe(value)} is too large for a number`);
  return n === 0 ? 0 : n;
}

function toInteger(value: unknown, opts: CastOptions): number {
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else {
    // Through the exact decimal: "12.000" is 12 (ERP exports pad quantities), "12.5" is not a whole number.
    const d = toDecimal(value, { ...opts, scale: undefined }, 'a whole number');
    if (d.includes('.')) throw new CastError(`${describe(value)} is not a whole number`);
    n = Number(d);
  }
  if (!Number.isInteger(n)) throw new CastError(`${describe(value)} is not a whole number`);
  if (!Number.isSafeInteger(n)) throw new CastError(`${describe(value)} is too large for an integer (beyond ±2^53; cast to decimal instead)`);
  return n === 0 ? 0 : n; // no -0
}

const TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', '0']);

function toBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 1 || value === 0) return value === 1;
  if (typeof value === 'string') {
    const t = value.trim().toLowerCase();
    if (TRUE.has(t)) return true;
    if (FALSE.has(t)) return false;
  }
  throw new CastError(`${describe(value)} is not a boolean (true/false, yes/no, y/n, t/f, 1/0)`);
}

/**
 * A decimal as exact text (`-12.5`, `0.001`): amounts and prices must not pass through a binary
 * float downstream. Exponents are expanded, leading zeros and (without a scale) trailing fraction
 * zeros dropped; with a scale the fraction is padded to it.
 */
function toDecimal(value: unknown, opts: CastOptions, what = 'a decimal number'): string {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new CastError(`${describe(value)} is not a finite number`);
    text = String(value); // the shortest text that reads back as this double
  } else {
    text = numericText(value, opts, what);
  }
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text)!;
  const negative = m[1] === '-';
  let digits = (m[2] ?? '') + (m[3] ?? '');
  let point = (m[2] ?? '').length + Number(m[4] ?? 0);
  if (Math.abs(point) > 1_000) throw new CastError(`${describe(value)} has an exponent out of range`);
  if (point < 0) {
    digits = '0'.repeat(-point) + digits;
    point = 0;
  } else if (point > digits.length) {
    digits = digits + '0'.repeat(point - digits.length);
  }
  const whole = digits.slice(0, point).replace(/^0+(?=\d)/, '') || '0';
  let fraction = digits.slice(point).replace(/0+$/, '');
  if (opts.scale !== undefined) {
    if (fraction.length > opts.scale) throw new CastError(`${describe(value)} has more than ${opts.scale} decimal place${opts.scale === 1 ? '' : 's'} (scale ${opts.scale}; nothing is rounded)`);
    fraction = fraction.padEnd(opts.scale, '0');
  }
  const zero = /^0*$/.test(whole + fraction);
  return `${negative && !zero ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}
