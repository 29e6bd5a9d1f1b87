/**
 * GS1 barcode parsing: AIM symbology identifier, element strings (FNC1/GS separated), application
 * identifiers with check digits and dates. The AI table lives in gs1-ais.ts; nothing here knows an
 * AI by number except the EAN/UPC mapping to AI 01.
 *
 * CONTRACT (#10): the exported types and `parseBarcode`'s signature are what scan.ts relies on.
 * `parseBarcode` never throws: whatever the bytes, the answer says what was read and what is wrong.
 * It runs once per scan on the hot path, so it compiles nothing per call (no regex, no schema).
 */
import { AIS, lookupAi, unknownAiLength, type AiDef, type Cset, type DateFormat } from './gs1-ais.js';

/** One application identifier and its value as read from the code. */
export interface Gs1Element {
  /** `01`, `10`, `3103`, … (for an unknown AI: the digits that stood where an AI was expected). */
  ai: string;
  /** Short name from the AI table, e.g. `GTIN`, `BATCH/LOT`, `NET WEIGHT (kg)`; `UNKNOWN` for an AI not in it. */
  title: string;
  /** The value exactly as in the code (an EAN-13 keeps its 13 digits: `parsed` has the GTIN-14). */
  value: string;
  /**
   * Dates (YYMMDD) as ISO `YYYY-MM-DD` (with a time: `YYYY-MM-DDTHH:MM`, local to the label, no
   * zone; a harvest range: `start/end`); decimals (310n…) with the point placed as the shortest
   * decimal string (`000525` in 3103 → `0.525`, `001250` in 3102 → `12.5`, `000100` in 3100 →
   * `100`); EAN/UPC codes as their 14-digit GTIN.
   */
  parsed?: string | undefined;
  /** False when this element is wrong (check digit, length, characters, date); `reason` says why. */
  valid: boolean;
  reason?: string | undefined;
  /** What the reader should know about a valid reading: a day `00`, an EAN padded to 14 digits, a currency. */
  note?: string | undefined;
}

export interface BarcodeParse {
  /** The AIM symbology identifier (`]C1`, `]d2`, `]Q3`, `]e0`, `]E0`, …) when the scanner sent one. */
  symbology: string | null;
  /** The code without its symbology identifier, as text. */
  text: string;
  /** Whether the code was read as GS1 data (element string, or EAN/UPC as a GTIN). */
  gs1: boolean;
  /** The elements, in code order (empty when not GS1). */
  elements: Gs1Element[];
  /** False when anything is wrong; every problem is in `reasons`. A non-GS1 code is valid. */
  valid: boolean;
  reasons: string[];
  /** The 2- or 5-digit EAN/UPC add-on (`]E3` with one, `]E1`/`]E2` alone). */
  addOn?: string | undefined;
}

export interface Gs1Options {
  /**
   * A character that stands for the group separator (ASCII 29) in the input: keyboard-wedge
   * setups lose GS and are configured to send this instead (e.g. `|` or `~`).
   */
  gsReplacement?: string | undefined;
  /** Read codes without a symbology identifier as GS1 element strings (default: only when one says GS1). */
  assumeGs1?: boolean | undefined;
  /** The year the 2-digit-year century rule counts from (default: the current UTC year). For tests. */
  currentYear?: number | undefined;
}

const GS = 29;

/**
 * AIM symbology identifiers (ISO/IEC 15424) whose data is a GS1 element string: GS1-128 (FNC1 in
 * first position), GS1 DataMatrix, GS1 QR Code, GS1 DataBar and composites, GS1 DotCode. Any other
 * identifier (]C0 Code 128, ]A0 Code 39, ]d1 DataMatrix, ]Q1 QR, …) says plain data, even when
 * `assumeGs1` is set: the scanner knows better than a default.
 */
const GS1_ELEMENT_STRING_IDS = new Set([']C1', ']d2', ']Q3', ']e0', ']J1']);

/**
 * Parses one scan. Without a symbology identifier, the text is GS1 when `assumeGs1` is set, when it
 * starts with a GS (a scanner transmitting FNC1 in first position, which only GS1 symbols have) or
 * when it is in the human-readable form `(01)09521234543213(10)ABC`.
 */
export function parseBarcode(raw: string, opts: Gs1Options = {}): BarcodeParse {
  const symbology = hasSymbologyId(raw) ? raw.slice(0, 3) : null;
  const text = symbology !== null ? raw.slice(3) : raw;
  const out: BarcodeParse = { symbology, text, gs1: false, elements: [], valid: true, reasons: [] };
  const ctx = new Reader(text, opts, out);
  if (symbology === null) {
    if (text.length === 0) ctx.fail('empty code');
    else if (text.charCodeAt(0) === 40 /* ( */ && isBracketedStart(text, 0)) ctx.bracketed();
    else if (opts.assumeGs1 === true || text.charCodeAt(0) === GS) ctx.elementString();
  } else if (GS1_ELEMENT_STRING_IDS.has(symbology)) {
    if (text.charCodeAt(0) === 40 && isBracketedStart(text, 0)) ctx.bracketed();
    else ctx.elementString();
  } else if (symbology.charCodeAt(1) === 69 /* E */) {
    ctx.eanUpc(symbology.charCodeAt(2));
  }
  out.valid = out.reasons.length === 0;
  return out;
}

/** `]` + symbology letter + modifier character (ISO/IEC 15424). */
function hasSymbologyId(raw: string): boolean {
  if (raw.length < 3 || raw.charCodeAt(0) !== 93 /* ] */) return false;
  const c = raw.charCodeAt(1) | 0x20;
  if (c < 97 || c > 122) return false;
  const m = raw.charCodeAt(2);
  return (m >= 48 && m <= 57) || ((m | 0x20) >= 97 && (m | 0x20) <= 122);
}

/** `(` + 2 to 4 digits + `)` at `pos`. */
function isBracketedStart(text: string, pos: number): boolean {
  let i = pos + 1;
  while (i < text.length && i - pos <= 5 && isDigit(text.charCodeAt(i))) i++;
  const n = i - pos - 1;
  return n >= 2 && n <= 4 && text.charCodeAt(i) === 41 /* ) */;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

class Reader {
  private readonly repl: number;
  private year: number | undefined;

  constructor(
    private readonly text: string,
    private readonly opts: Gs1Options,
    private readonly out: BarcodeParse,
  ) {
    // A digit or bracket would be read as data; such a setting cannot stand for GS.
    const r = opts.gsReplacement !== undefined && opts.gsReplacement.length > 0 ? opts.gsReplacement.charCodeAt(0) : -1;
    this.repl = isDigit(r) || r === 40 || r === 41 ? -1 : r;
  }

  fail(reason: string): void {
    this.out.reasons.push(reason);
  }

  /**
   * GS is how a reader transmits FNC1 used as a separator. (GS1 QR Code encodes that FNC1 as `%`
   * inside the symbol, but the reader still transmits GS; a `%` that arrives is data, CSET 82.)
   */
  private isSep(c: number): boolean {
    return c === GS || c === this.repl;
  }

  /** An element string: AI, data, AI, data, …, separators after variable-length data. */
  elementString(): void {
    const { text, out } = this;
    out.gs1 = true;
    let pos = 0;
    const len = text.length;
    // Separators are skipped wherever an AI is expected: a leading FNC1 transmitted as GS, one
    // after a predefined-length element (redundant but harmless), a trailing one.
    while (pos < len) {
      if (this.isSep(text.charCodeAt(pos))) {
        pos++;
        continue;
      }
      const def = lookupAi(text, pos);
      if (!def) {
        this.unknown(pos);
        return;
      }
      const start = pos + def.ai.length;
      let end: number;
      if (def.predefined) {
        // No separator follows by definition: the length alone ends it. A GS inside means the
        // data is short; stop there so the next element is still read from the right place.
        end = Math.min(start + def.maxLength, len);
        for (let i = start; i < end; i++) {
          if (this.isSep(text.charCodeAt(i))) {
            end = i;
            break;
          }
        }
      } else {
        end = start;
        while (end < len && !this.isSep(text.charCodeAt(end))) end++;
      }
      this.element(def, text.slice(start, end), end >= len && end - start < def.minLength);
      pos = end;
    }
    if (out.elements.length === 0) this.fail('no GS1 element in the code');
  }

  /** The human-readable form: `(01)09521234543213(10)ABC`; the brackets delimit each element. */
  bracketed(): void {
    const { text, out } = this;
    out.gs1 = true;
    let pos = 0;
    const len = text.length;
    while (pos < len) {
      if (!isBracketedStart(text, pos)) {
        this.unknown(pos, '');
        return;
      }
      const close = text.indexOf(')', pos);
      const ai = text.slice(pos + 1, close);
      const def = AIS.get(ai);
      if (!def) {
        this.unknown(pos, ai);
        return;
      }
      // The value runs to the next "(AI)": CSET 82 allows brackets in data, so a lone "(" stays in it.
      let end = close + 1;
      while (end < len && !(text.charCodeAt(end) === 40 && isBracketedStart(text, end))) end++;
      this.element(def, text.slice(close + 1, end), false);
      pos = end;
    }
  }

  /**
   * EAN/UPC (]E0 EAN-13 or UPC-A as 13 digits, ]E4 EAN-8, ]E3 either with an add-on, ]E1/]E2 an
   * add-on alone): read as AI 01, the GTIN. `value` keeps the digits as scanned; `parsed` is the
   * GTIN-14 (left-padded with zeros), the form every GS1 key lookup uses.
   */
  eanUpc(modifier: number): void {
    const { text, out } = this;
    const n = text.length;
    if (modifier === 49 /* 1 */ || modifier === 50 /* 2 */) {
      out.addOn = text;
      const want = modifier === 49 ? 2 : 5;
      if (n !== want || !allDigits(text, 0, n)) this.fail(`add-on: expected ${want} digits, got "${clip(text)}"`);
      return;
    }
    let gtinLen: number;
    if (modifier === 48 /* 0 */) gtinLen = n === 12 ? 12 : 13; // some scanners drop UPC-A's leading 0
    else if (modifier === 52 /* 4 */) gtinLen = 8;
    else if (modifier === 51 /* 3 */) gtinLen = n === 15 || n === 18 ? 13 : 8;
    else return; // ]E5 and beyond: not defined as GTINs; plain data
    out.gs1 = true;
    const kind = modifier === 52 || gtinLen === 8 ? 'EAN-8' : gtinLen === 12 ? 'UPC-A' : 'EAN-13';
    const value = text.slice(0, gtinLen);
    const gtin = AIS.get('01')!;
    const el: Gs1Element = { ai: gtin.ai, title: gtin.title, value, valid: true };
    if (modifier === 51) {
      out.addOn = text.slice(gtinLen);
      if ((n !== gtinLen + 2 && n !== gtinLen + 5) || !allDigits(text, gtinLen, n)) this.fail(`add-on: expected 2 or 5 digits after the ${kind}, got "${clip(out.addOn)}"`);
    } else if (n !== gtinLen) {
      this.fail(`${kind}: expected ${gtinLen} digits, got ${n}`);
    }
    const bad = value.length < gtinLen ? `length ${value.length}, expected ${gtinLen}` : charsetProblem(value, 0, value.length, 'N') ?? checkDigitProblem(value, value.length);
    if (bad !== null) {
      el.valid = false;
      el.reason = bad;
      this.fail(`(01) ${bad}`);
    } else {
      el.parsed = value.padStart(14, '0');
      el.note = `${kind} read as GTIN-14`;
    }
    out.elements.push(el);
  }

  /** Validates one element's data against its AI row and records it. */
  private element(def: AiDef, value: string, truncated: boolean): void {
    const el: Gs1Element = { ai: def.ai, title: def.title, value, valid: true };
    let problem = truncated ? `truncated: ${value.length} of ${def.minLength === def.maxLength ? def.maxLength : `at least ${def.minLength}`} characters` : lengthProblem(def, value.length);
    if (problem === null) problem = this.checkParts(def, value, el);
    if (problem !== null) {
      el.valid = false;
      el.reason = problem;
      this.fail(`(${def.ai}) ${problem}`);
    }
    this.out.elements.push(el);
  }

  /** Characters per component, then the check digit, date or decimal reading. */
  private checkParts(def: AiDef, value: string, el: Gs1Element): string | null {
    // Only the last component can be variable (gs1-ais.ts checks): the others have their length.
    const last = def.parts.length - 1;
    let pos = 0;
    for (let i = 0; i <= last && pos < value.length; i++) {
      const end = i === last ? value.length : Math.min(pos + def.parts[i]!.max, value.length);
      const bad = charsetProblem(value, pos, end, def.parts[i]!.cset);
      if (bad !== null) return bad;
      pos = end;
    }
    if (def.check) {
      // The check digit ends the first component (a GTIN in 8006, the GDTI's key in 253).
      const bad = checkDigitProblem(value, last === 0 ? value.length : def.parts[0]!.max);
      if (bad !== null) return bad;
    }
    if (def.date !== undefined) {
      const year = (this.year ??= this.opts.currentYear ?? new Date().getUTCFullYear());
      const d = readDate(value, def.date, year);
      if (typeof d === 'string') return d;
      el.parsed = d.iso;
      if (d.note !== undefined) el.note = d.note;
    } else if (def.decimals !== undefined) {
      if (def.currency) {
        el.parsed = placeDecimal(value.slice(3), def.decimals);
        el.note = `currency ${value.slice(0, 3)} (ISO 4217)`;
      } else {
        el.parsed = placeDecimal(value, def.decimals);
      }
    }
    return null;
  }

  /**
   * An AI not in the table (or no AI where one must be): flagged, and the rest of the code kept
   * unparsed in one element. Without a known AI there is no telling where its data ends.
   */
  private unknown(pos: number, bracketedAi?: string): void {
    const { text } = this;
    let ai: string;
    let rest: string;
    let reason: string;
    if (bracketedAi !== undefined) {
      ai = bracketedAi;
      rest = text.slice(pos);
      reason = ai.length > 0 ? `unknown AI ${ai}` : `expected "(AI)" at offset ${pos}`;
    } else {
      let n = 0;
      const want = unknownAiLength(text, pos);
      while (n < want && pos + n < text.length && isDigit(text.charCodeAt(pos + n))) n++;
      ai = text.slice(pos, pos + n);
      rest = text.slice(pos + n);
      reason = n >= 2 ? `unknown AI ${ai}` : `no AI at offset ${pos}`;
    }
    reason += ': the rest of the code is not parsed';
    this.out.elements.push({ ai, title: 'UNKNOWN', value: rest, valid: false, reason });
    this.fail(reason);
  }
}

function lengthProblem(def: AiDef, n: number): string | null {
  if (def.fixed) {
    if (n !== def.maxLength) return `length ${n}, expected ${def.maxLength}`;
    return null;
  }
  if (n < def.minLength) return `length ${n}, at least ${def.minLength}`;
  if (n > def.maxLength) return `length ${n}, at most ${def.maxLength}${def.predefined ? '' : ' (a missing group separator?)'}`;
  // Optional trailing components are all-or-nothing when fixed (7007's second date, 4330's "-").
  let pos = 0;
  for (const p of def.parts) {
    if (pos >= n && p.optional) break;
    if (p.min === p.max && pos + p.max > n) return `length ${n}: ${def.format} wants ${pos + p.max}`;
    pos += p.min === p.max ? p.max : n - pos;
  }
  return null;
}

// Character classes by code (< 128): bit 1 numeric, 2 CSET 82, 4 CSET 39, 8 CSET 64.
const CLASS = (() => {
  const t = new Uint8Array(128);
  const add = (chars: string, bit: number) => {
    for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)]! |= bit;
  };
  const digits = '0123456789';
  const upper = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const lower = upper.toLowerCase();
  add(digits, 1);
  add(`!"%&'()*+,-./${digits}:;<=>?${upper}_${lower}`, 2);
  add(`#-/${digits}${upper}`, 4);
  add(`${upper}${lower}${digits}-_=`, 8);
  return t;
})();
const CSET_BIT: Record<Cset, number> = { N: 1, X: 2, Y: 4, Z: 8 };
const CSET_NAME: Record<Cset, string> = { N: 'a digit', X: 'in CSET 82', Y: 'in CSET 39', Z: 'in CSET 64' };

function charsetProblem(value: string, from: number, to: number, cset: Cset): string | null {
  const bit = CSET_BIT[cset];
  for (let i = from; i < to; i++) {
    const c = value.charCodeAt(i);
    if (c >= 128 || (CLASS[c]! & bit) === 0) return `character ${JSON.stringify(value[i])} at ${i} is not ${CSET_NAME[cset]}`;
  }
  return null;
}

function allDigits(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

/** GS1 mod-10 (General Specifications 7.9.1): weights 3,1,3,… from the digit left of the check digit. */
export function gs1CheckDigit(digits: string, len = digits.length): number {
  let sum = 0;
  let w = 3;
  for (let i = len - 1; i >= 0; i--) {
    sum += w * (digits.charCodeAt(i) - 48);
    w = 4 - w;
  }
  return (10 - (sum % 10)) % 10;
}

function checkDigitProblem(value: string, end: number): string | null {
  const expected = gs1CheckDigit(value, end - 1);
  const got = value.charCodeAt(end - 1) - 48;
  return got === expected ? null : `check digit is ${got}, expected ${expected}`;
}

/** Digits with `n` implied decimal places as the shortest decimal string (`000525`, 3 → `0.525`). */
function placeDecimal(digits: string, n: number): string {
  const padded = digits.length <= n ? digits.padStart(n + 1, '0') : digits;
  let int = padded.slice(0, padded.length - n);
  let frac = padded.slice(padded.length - n);
  let i = 0;
  while (i < int.length - 1 && int.charCodeAt(i) === 48) i++;
  int = int.slice(i);
  let j = frac.length;
  while (j > 0 && frac.charCodeAt(j - 1) === 48) j--;
  frac = frac.slice(0, j);
  return frac.length > 0 ? `${int}.${frac}` : int;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysIn(year: number, month: number): number {
  return month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : DAYS[month - 1]!;
}

function two(s: string, at: number): number {
  return (s.charCodeAt(at) - 48) * 10 + (s.charCodeAt(at + 1) - 48);
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * General Specifications 7.12: a 2-digit year is the one within -49..+50 years of the current
 * year (in 2026: 76 → 2076, 77 → 1977).
 */
export function centuryYear(yy: number, currentYear: number): number {
  const diff = yy - (currentYear % 100);
  const century = currentYear - (currentYear % 100);
  if (diff > 50) return century - 100 + yy;
  if (diff < -49) return century + 100 + yy;
  return century + yy;
}

/** YYMMDD (at `at`) as ISO, or the reason it is no date. */
function readDay(v: string, at: number, dayZero: boolean, currentYear: number): { iso: string; note?: string } | string {
  const yy = two(v, at);
  const mm = two(v, at + 2);
  const dd = two(v, at + 4);
  const date = v.slice(at, at + 6);
  if (mm < 1 || mm > 12) return `invalid date ${date}: month ${pad2(mm)}`;
  const year = centuryYear(yy, currentYear);
  const last = daysIn(year, mm);
  if (dd === 0 && dayZero) return { iso: `${year}-${pad2(mm)}-${pad2(last)}`, note: 'day 00: no day given, read as the last day of the month' };
  if (dd < 1 || dd > last) return `invalid date ${date}: day ${pad2(dd)}`;
  return { iso: `${year}-${pad2(mm)}-${pad2(dd)}` };
}

function readTime(v: string, at: number, parts: number): string | null {
  const hh = two(v, at);
  if (hh > 23) return `invalid time ${v.slice(at, at + parts * 2)}: hour ${pad2(hh)}`;
  if (parts > 1 && two(v, at + 2) > 59) return `invalid time ${v.slice(at, at + parts * 2)}: minute ${v.slice(at + 2, at + 4)}`;
  if (parts > 2 && two(v, at + 4) > 59) return `invalid time ${v.slice(at, at + parts * 2)}: second ${v.slice(at + 4, at + 6)}`;
  return null;
}

/** A date field (already checked numeric and of a valid length) as ISO text, or the reason it is not one. */
function readDate(v: string, fmt: DateFormat, currentYear: number): { iso: string; note?: string | undefined } | string {
  const day = readDay(v, 0, fmt === 'YYMMD0' || fmt === 'YYMMD0HHMM', currentYear);
  if (typeof day === 'string') return day;
  switch (fmt) {
    case 'YYMMD0':
    case 'YYMMDD':
      return day;
    case 'YYMMD0HHMM':
    case 'YYMMDDHHMM':
    case 'YYMMDD[HHMM]': {
      if (v.length === 6) return day;
      const bad = readTime(v, 6, 2);
      return bad ?? { iso: `${day.iso}T${v.slice(6, 8)}:${v.slice(8, 10)}`, note: day.note };
    }
    case 'YYMMDDHH[MM[SS]]': {
      // 8008: hour always, then MM or MMSS (2 or 4 digits, never 1 or 3)
      const extra = v.length - 8;
      if (extra !== 0 && extra !== 2 && extra !== 4) return `invalid time ${v.slice(6)}: HH then MM or MMSS`;
      const bad = readTime(v, 6, 1 + extra / 2);
      if (bad !== null) return bad;
      return { iso: `${day.iso}T${v.slice(6, 8)}${extra >= 2 ? `:${v.slice(8, 10)}` : ''}${extra === 4 ? `:${v.slice(10, 12)}` : ''}` };
    }
    case 'YYMMDD[YYMMDD]': {
      if (v.length === 6) return day;
      const end = readDay(v, 6, false, currentYear);
      if (typeof end === 'string') return end;
      return { iso: `${day.iso}/${end.iso}` };
    }
  }
}

function clip(s: string): string {
  return s.length > 20 ? `${s.slice(0, 20)}…` : s;
}
