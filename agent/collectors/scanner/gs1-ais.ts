/**
 * The GS1 application identifier table: the one place that says what each AI is. gs1.ts reads it
 * and knows no AI by number.
 *
 * Source: GS1 General Specifications section 3 (the AI definitions) and section 7.8 (the figure
 * of predefined lengths, 7.8.4-2 in Release 18), cross-checked against GS1's public Barcode Syntax
 * Dictionary. Each row is written as the specification writes the format: `N` numeric, `X` CSET
 * 82, `Y` CSET 39, `Z` CSET 64; `N6` exactly 6, `X..20` 1 to 20, `[..]` an optional last
 * component. Association rules between AIs (`req`/`ex`: e.g. 02 needs 37) are not checked: one scan may be half of what a label carries.
 */

/** Character sets: numeric, CSET 82 (the GS1 AI encodable set), CSET 39, CSET 64 (file-safe base64). */
export type Cset = 'N' | 'X' | 'Y' | 'Z';

/** One component of an AI's data field. */
export interface AiPart {
  cset: Cset;
  min: number;
  max: number;
  /** Only the last component can be optional (`[X..17]` after 253's GDTI). */
  optional: boolean;
}

/**
 * How a date or date-time component is written. `D0`: DD `00` is allowed and means "no day given",
 * read as the last day of the month (General Specifications 7.12). `[..]` parts are optional.
 */
export type DateFormat = 'YYMMD0' | 'YYMMDD' | 'YYMMD0HHMM' | 'YYMMDDHHMM' | 'YYMMDD[HHMM]' | 'YYMMDDHH[MM[SS]]' | 'YYMMDD[YYMMDD]';

export interface AiDef {
  ai: string;
  /** GS1 data title, e.g. `GTIN`, `BATCH/LOT`, `NET WEIGHT (kg)`. */
  title: string;
  /** The format as the specification writes it, e.g. `N13 [X..17]`. */
  format: string;
  parts: readonly AiPart[];
  /** Data length bounds (without the AI); `fixed` when they are equal. */
  minLength: number;
  maxLength: number;
  fixed: boolean;
  /** The character set when every component shares one; `null` for mixed fields (see `parts`). */
  cset: Cset | null;
  /** The first component ends in a GS1 mod-10 check digit (GTIN, SSCC, GLN, GRAI, GSRN, …). */
  check: boolean;
  date?: DateFormat | undefined;
  /** Implied decimal places (310n–369n, 390n–395n: the AI's last digit). */
  decimals?: number | undefined;
  /** The first three digits are an ISO 4217 currency code (391n, 393n). */
  currency?: boolean | undefined;
  /**
   * Needs no separator after it: its 2-digit prefix is in the table of predefined lengths
   * (PREDEFINED_LENGTH below), not merely fixed-length (8006, 402, 422 are fixed but need one).
   */
  predefined: boolean;
}

/**
 * General Specifications 7.8 (figure 7.8.4-2 in Release 18): element strings whose AI starts with
 * these two digits have a predefined total length (AI + data) and are never followed by FNC1. The
 * list is frozen by the specification so that old scanners keep reading new AIs; it is not
 * derived from the AI rows (build() checks the rows against it).
 * 03, 04, 14, 18, 19 are reserved (no AI assigned yet) but already predefined.
 */
export const PREDEFINED_LENGTH: Readonly<Record<string, number>> = {
  '00': 20,
  '01': 16,
  '02': 16,
  '03': 16,
  '04': 18,
  '11': 8,
  '12': 8,
  '13': 8,
  '14': 8,
  '15': 8,
  '16': 8,
  '17': 8,
  '18': 8,
  '19': 8,
  '20': 4,
  '31': 10,
  '32': 10,
  '33': 10,
  '34': 10,
  '35': 10,
  '36': 10,
  '41': 16,
};

interface RowOpts {
  check?: boolean;
  date?: DateFormat;
  /** The AI's last digit is the number of decimal places (ranges like 3100-3105). */
  decimal?: boolean;
  currency?: boolean;
}

/** [AI or range, title, format, options]. A range `3100-3105` or `91-99` expands to one row per AI. */
type Row = readonly [ais: string, title: string, format: string, opts?: RowOpts];

const YYMMD0: RowOpts = { date: 'YYMMD0' };
const CHECK: RowOpts = { check: true };
const DEC: RowOpts = { decimal: true };

const ROWS: readonly Row[] = [
  ['00', 'SSCC', 'N18', CHECK],
  ['01', 'GTIN', 'N14', CHECK],
  ['02', 'CONTENT', 'N14', CHECK],
  ['10', 'BATCH/LOT', 'X..20'],
  ['11', 'PROD DATE', 'N6', YYMMD0],
  ['12', 'DUE DATE', 'N6', YYMMD0],
  ['13', 'PACK DATE', 'N6', YYMMD0],
  ['15', 'BEST BEFORE or BEST BY', 'N6', YYMMD0],
  ['16', 'SELL BY', 'N6', YYMMD0],
  ['17', 'USE BY or EXPIRY', 'N6', YYMMD0],
  ['20', 'VARIANT', 'N2'],
  ['21', 'SERIAL', 'X..20'],
  ['22', 'CPV', 'X..20'],
  ['235', 'TPX', 'X..28'],
  ['240', 'ADDITIONAL ID', 'X..30'],
  ['241', 'CUST. PART No.', 'X..30'],
  ['242', 'MTO VARIANT', 'N..6'],
  ['243', 'PCN', 'X..20'],
  ['250', 'SECONDARY SERIAL', 'X..30'],
  ['251', 'REF. TO SOURCE', 'X..30'],
  ['253', 'GDTI', 'N13 [X..17]', CHECK],
  ['254', 'GLN EXTENSION COMPONENT', 'X..20'],
  ['255', 'GCN', 'N13 [N..12]', CHECK],
  ['30', 'VAR. COUNT', 'N..8'],
  ['3100-3105', 'NET WEIGHT (kg)', 'N6', DEC],
  ['3110-3115', 'LENGTH (m)', 'N6', DEC],
  ['3120-3125', 'WIDTH (m)', 'N6', DEC],
  ['3130-3135', 'HEIGHT (m)', 'N6', DEC],
  ['3140-3145', 'AREA (m²)', 'N6', DEC],
  ['3150-3155', 'NET VOLUME (l)', 'N6', DEC],
  ['3160-3165', 'NET VOLUME (m³)', 'N6', DEC],
  ['3200-3205', 'NET WEIGHT (lb)', 'N6', DEC],
  ['3210-3215', 'LENGTH (in)', 'N6', DEC],
  ['3220-3225', 'LENGTH (ft)', 'N6', DEC],
  ['3230-3235', 'LENGTH (yd)', 'N6', DEC],
  ['3240-3245', 'WIDTH (in)', 'N6', DEC],
  ['3250-3255', 'WIDTH (ft)', 'N6', DEC],
  ['3260-3265', 'WIDTH (yd)', 'N6', DEC],
  ['3270-3275', 'HEIGHT (in)', 'N6', DEC],
  ['3280-3285', 'HEIGHT (ft)', 'N6', DEC],
  ['3290-3295', 'HEIGHT (yd)', 'N6', DEC],
  ['3300-3305', 'GROSS WEIGHT (kg)', 'N6', DEC],
  ['3310-3315', 'LENGTH (m), log', 'N6', DEC],
  ['3320-3325', 'WIDTH (m), log', 'N6', DEC],
  ['3330-3335', 'HEIGHT (m), log', 'N6', DEC],
  ['3340-3345', 'AREA (m²), log', 'N6', DEC],
  ['3350-3355', 'VOLUME (l), log', 'N6', DEC],
  ['3360-3365', 'VOLUME (m³), log', 'N6', DEC],
  ['3370-3375', 'KG PER m²', 'N6', DEC],
  ['3400-3405', 'GROSS WEIGHT (lb)', 'N6', DEC],
  ['3410-3415', 'LENGTH (in), log', 'N6', DEC],
  ['3420-3425', 'LENGTH (ft), log', 'N6', DEC],
  ['3430-3435', 'LENGTH (yd), log', 'N6', DEC],
  ['3440-3445', 'WIDTH (in), log', 'N6', DEC],
  ['3450-3455', 'WIDTH (ft), log', 'N6', DEC],
  ['3460-3465', 'WIDTH (yd), log', 'N6', DEC],
  ['3470-3475', 'HEIGHT (in), log', 'N6', DEC],
  ['3480-3485', 'HEIGHT (ft), log', 'N6', DEC],
  ['3490-3495', 'HEIGHT (yd), log', 'N6', DEC],
  ['3500-3505', 'AREA (in²)', 'N6', DEC],
  ['3510-3515', 'AREA (ft²)', 'N6', DEC],
  ['3520-3525', 'AREA (yd²)', 'N6', DEC],
  ['3530-3535', 'AREA (in²), log', 'N6', DEC],
  ['3540-3545', 'AREA (ft²), log', 'N6', DEC],
  ['3550-3555', 'AREA (yd²), log', 'N6', DEC],
  ['3560-3565', 'NET WEIGHT (t oz)', 'N6', DEC],
  ['3570-3575', 'NET VOLUME (oz)', 'N6', DEC],
  ['3600-3605', 'NET VOLUME (qt)', 'N6', DEC],
  ['3610-3615', 'NET VOLUME (gal.)', 'N6', DEC],
  ['3620-3625', 'VOLUME (qt), log', 'N6', DEC],
  ['3630-3635', 'VOLUME (gal.), log', 'N6', DEC],
  ['3640-3645', 'VOLUME (in³)', 'N6', DEC],
  ['3650-3655', 'VOLUME (ft³)', 'N6', DEC],
  ['3660-3665', 'VOLUME (yd³)', 'N6', DEC],
  ['3670-3675', 'VOLUME (in³), log', 'N6', DEC],
  ['3680-3685', 'VOLUME (ft³), log', 'N6', DEC],
  ['3690-3695', 'VOLUME (yd³), log', 'N6', DEC],
  ['37', 'COUNT', 'N..8'],
  ['3900-3909', 'AMOUNT', 'N..15', DEC],
  ['3910-3919', 'AMOUNT', 'N3 N..15', { decimal: true, currency: true }],
  ['3920-3929', 'PRICE', 'N..15', DEC],
  ['3930-3939', 'PRICE', 'N3 N..15', { decimal: true, currency: true }],
  ['3940-3943', 'PRCNT OFF', 'N4', DEC],
  ['3950-3955', 'PRICE/UoM', 'N6', DEC],
  ['400', 'ORDER NUMBER', 'X..30'],
  ['401', 'GINC', 'X..30'],
  ['402', 'GSIN', 'N17', CHECK],
  ['403', 'ROUTE', 'X..30'],
  ['410', 'SHIP TO LOC', 'N13', CHECK],
  ['411', 'BILL TO', 'N13', CHECK],
  ['412', 'PURCHASE FROM', 'N13', CHECK],
  ['413', 'SHIP FOR LOC', 'N13', CHECK],
  ['414', 'LOC No.', 'N13', CHECK],
  ['415', 'PAY TO', 'N13', CHECK],
  ['416', 'PROD/SERV LOC', 'N13', CHECK],
  ['417', 'PARTY', 'N13', CHECK],
  ['420', 'SHIP TO POST', 'X..20'],
  ['421', 'SHIP TO POST', 'N3 X..9'],
  ['422', 'ORIGIN', 'N3'],
  ['423', 'COUNTRY - INITIAL PROCESS', 'N..15'],
  ['424', 'COUNTRY - PROCESS', 'N3'],
  ['425', 'COUNTRY - DISASSEMBLY', 'N..15'],
  ['426', 'COUNTRY - FULL PROCESS', 'N3'],
  ['427', 'ORIGIN SUBDIVISION', 'X..3'],
  ['4300', 'SHIP TO COMP', 'X..35'],
  ['4301', 'SHIP TO NAME', 'X..35'],
  ['4302', 'SHIP TO ADD1', 'X..70'],
  ['4303', 'SHIP TO ADD2', 'X..70'],
  ['4304', 'SHIP TO SUB', 'X..70'],
  ['4305', 'SHIP TO LOC', 'X..70'],
  ['4306', 'SHIP TO REG', 'X..70'],
  ['4307', 'SHIP TO COUNTRY', 'X2'],
  ['4308', 'SHIP TO PHONE', 'X..30'],
  ['4309', 'SHIP TO GEO', 'N10 N10'],
  ['4310', 'RTN TO COMP', 'X..35'],
  ['4311', 'RTN TO NAME', 'X..35'],
  ['4312', 'RTN TO ADD1', 'X..70'],
  ['4313', 'RTN TO ADD2', 'X..70'],
  ['4314', 'RTN TO SUB', 'X..70'],
  ['4315', 'RTN TO LOC', 'X..70'],
  ['4316', 'RTN TO REG', 'X..70'],
  ['4317', 'RTN TO COUNTRY', 'X2'],
  ['4318', 'RTN TO POST', 'X..20'],
  ['4319', 'RTN TO PHONE', 'X..30'],
  ['4320', 'SRV DESCRIPTION', 'X..35'],
  ['4321', 'DANGEROUS GOODS', 'N1'],
  ['4322', 'AUTH TO LEAVE', 'N1'],
  ['4323', 'SIG REQUIRED', 'N1'],
  ['4324', 'NOT BEF DEL DT', 'N6 N4', { date: 'YYMMD0HHMM' }],
  ['4325', 'NOT AFT DEL DT', 'N6 N4', { date: 'YYMMD0HHMM' }],
  ['4326', 'REL DATE', 'N6', { date: 'YYMMDD' }],
  ['4330', 'MAX TEMP F.', 'N6 [X1]'],
  ['4331', 'MAX TEMP C.', 'N6 [X1]'],
  ['4332', 'MIN TEMP F.', 'N6 [X1]'],
  ['4333', 'MIN TEMP C.', 'N6 [X1]'],
  ['7001', 'NSN', 'N13'],
  ['7002', 'MEAT CUT', 'X..30'],
  ['7003', 'EXPIRY TIME', 'N6 N4', { date: 'YYMMDDHHMM' }],
  ['7004', 'ACTIVE POTENCY', 'N..4'],
  ['7005', 'CATCH AREA', 'X..12'],
  ['7006', 'FIRST FREEZE DATE', 'N6', { date: 'YYMMDD' }],
  ['7007', 'HARVEST DATE', 'N6 [N6]', { date: 'YYMMDD[YYMMDD]' }],
  ['7008', 'AQUATIC SPECIES', 'X..3'],
  ['7009', 'FISHING GEAR TYPE', 'X..10'],
  ['7010', 'PROD METHOD', 'X..2'],
  ['7011', 'TEST BY DATE', 'N6 [N4]', { date: 'YYMMDD[HHMM]' }],
  ['7020', 'REFURB LOT', 'X..20'],
  ['7021', 'FUNC STAT', 'X..20'],
  ['7022', 'REV STAT', 'X..20'],
  ['7023', 'GIAI - ASSEMBLY', 'X..30'],
  ...Array.from({ length: 10 }, (_, i): Row => [`703${i}`, `PROCESSOR # ${i}`, 'N3 X..27']),
  ['7040', 'UIC+EXT', 'N1 X3'],
  ['710', 'NHRN PZN', 'X..20'],
  ['711', 'NHRN CIP', 'X..20'],
  ['712', 'NHRN CN', 'X..20'],
  ['713', 'NHRN DRN', 'X..20'],
  ['714', 'NHRN AIM', 'X..20'],
  ['715', 'NHRN NDC', 'X..20'],
  ...Array.from({ length: 10 }, (_, i): Row => [`723${i}`, `CERT # ${i + 1}`, 'X2 X..28']),
  ['7240', 'PROTOCOL', 'X..20'],
  ['7241', 'AIDC MEDIA TYPE', 'N2'],
  ['7242', 'VCN', 'X..25'],
  ['8001', 'DIMENSIONS', 'N14'],
  ['8002', 'CMT No.', 'X..20'],
  // GRAI: a leading 0, the 13-digit asset type (with its check digit), then an optional serial.
  // The leading 0 weighs nothing in mod 10, so checking the first 14 digits checks the 13.
  ['8003', 'GRAI', 'N14 [X..16]', CHECK],
  ['8004', 'GIAI', 'X..30'],
  ['8005', 'PRICE PER UNIT', 'N6'],
  ['8006', 'ITIP', 'N14 N4', CHECK],
  ['8007', 'IBAN', 'X..34'],
  ['8008', 'PROD TIME', 'N8 [N..4]', { date: 'YYMMDDHH[MM[SS]]' }],
  ['8009', 'OPTSEN', 'X..50'],
  ['8010', 'CPID', 'Y..30'],
  ['8011', 'CPID SERIAL', 'N..12'],
  ['8012', 'VERSION', 'X..20'],
  ['8013', 'GMN', 'X..25'],
  ['8017', 'GSRN - PROVIDER', 'N18', CHECK],
  ['8018', 'GSRN - RECIPIENT', 'N18', CHECK],
  ['8019', 'SRIN', 'N..10'],
  ['8020', 'REF No.', 'X..25'],
  ['8026', 'ITIP CONTENT', 'N14 N4', CHECK],
  ['8030', 'DIGSIG', 'Z..90'],
  ['8110', 'COUPON (North America)', 'X..70'],
  ['8111', 'POINTS', 'N4'],
  ['8112', 'PAPERLESS COUPON (North America)', 'X..70'],
  ['8200', 'PRODUCT URL', 'X..70'],
  ['90', 'INTERNAL', 'X..30'],
  ['91-99', 'INTERNAL', 'X..90'],
];

function parseFormat(format: string): AiPart[] {
  return format.split(' ').map((tok) => {
    const optional = tok.startsWith('[');
    const t = optional ? tok.slice(1, -1) : tok;
    const cset = t[0] as Cset;
    const variable = t.startsWith('..', 1);
    const n = Number(t.slice(variable ? 3 : 1));
    if (!'NXYZ'.includes(cset) || !Number.isInteger(n) || n < 1) throw new Error(`gs1-ais: bad format ${format}`);
    return { cset, min: variable ? 1 : n, max: n, optional };
  });
}

function expand(spec: string): string[] {
  const dash = spec.indexOf('-');
  if (dash < 0) return [spec];
  const from = spec.slice(0, dash);
  const to = spec.slice(dash + 1);
  const out: string[] = [];
  for (let i = Number(from); i <= Number(to); i++) out.push(String(i).padStart(from.length, '0'));
  return out;
}

function build(): Map<string, AiDef> {
  const map = new Map<string, AiDef>();
  for (const [spec, title, format, opts = {}] of ROWS) {
    const parts = parseFormat(format);
    // gs1.ts splits a value into components by the fixed lengths of all but the last.
    if (parts.slice(0, -1).some((p) => p.min !== p.max || p.optional)) throw new Error(`gs1-ais: ${spec}: only the last component may be variable or optional`);
    const minLength = parts.reduce((s, p) => s + (p.optional ? 0 : p.min), 0);
    const maxLength = parts.reduce((s, p) => s + p.max, 0);
    const csets = new Set(parts.map((p) => p.cset));
    for (const ai of expand(spec)) {
      if (map.has(ai)) throw new Error(`gs1-ais: AI ${ai} twice`);
      const predefinedTotal = PREDEFINED_LENGTH[ai.slice(0, 2)];
      if (predefinedTotal !== undefined && (minLength !== maxLength || ai.length + maxLength !== predefinedTotal)) {
        throw new Error(`gs1-ais: AI ${ai} is in a predefined-length prefix but its length does not match`);
      }
      map.set(ai, {
        ai,
        title,
        format,
        parts,
        minLength,
        maxLength,
        fixed: minLength === maxLength,
        cset: csets.size === 1 ? parts[0]!.cset : null,
        check: opts.check === true,
        date: opts.date,
        decimals: opts.decimal ? Number(ai.slice(-1)) : undefined,
        currency: opts.currency,
        predefined: predefinedTotal !== undefined,
      });
    }
  }
  // GS1 AIs are prefix-free (no AI is the start of another): that is what lets a reader find them
  // without delimiters. A row breaking it would make the lookup ambiguous.
  for (const ai of map.keys()) for (let n = 2; n < ai.length; n++) if (map.has(ai.slice(0, n))) throw new Error(`gs1-ais: ${ai.slice(0, n)} is a prefix of ${ai}`);
  return map;
}

/** Every known AI, by its digits. */
export const AIS: ReadonlyMap<string, AiDef> = build();

/**
 * The AI length used by the AIs that start with each 2-digit prefix, when they agree: what an
 * unknown AI is most likely to look like (for its name in the reason, never to parse past it).
 */
const AI_LENGTH_BY_PREFIX: ReadonlyMap<string, number> = (() => {
  const seen = new Map<string, number | null>();
  for (const ai of AIS.keys()) {
    const p = ai.slice(0, 2);
    const had = seen.get(p);
    seen.set(p, had === undefined || had === ai.length ? ai.length : null);
  }
  const out = new Map<string, number>();
  for (const [p, n] of seen) if (n !== null) out.set(p, n);
  return out;
})();

/** The known AI that starts `text` at `pos` (AIs are 2 to 4 digits and prefix-free). */
export function lookupAi(text: string, pos: number): AiDef | undefined {
  for (let n = 2; n <= 4 && pos + n <= text.length; n++) {
    const def = AIS.get(text.slice(pos, pos + n));
    if (def) return def;
  }
  return undefined;
}

/** How many characters an unknown AI at `pos` most likely has (2 to 4). */
export function unknownAiLength(text: string, pos: number): number {
  return AI_LENGTH_BY_PREFIX.get(text.slice(pos, pos + 2)) ?? 4;
}
