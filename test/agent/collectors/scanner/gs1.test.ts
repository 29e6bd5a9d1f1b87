import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AIS, PREDEFINED_LENGTH, lookupAi } from '../../../../agent/collectors/scanner/gs1-ais.js';
import { centuryYear, gs1CheckDigit, parseBarcode, type BarcodeParse, type Gs1Options } from '../../../../agent/collectors/scanner/gs1.js';

const GS = '\x1d';
/** Fixed so the century rule does not move under the tests (General Specifications 7.12). */
const YEAR = 2026;

function parse(raw: string, opts: Gs1Options = {}): BarcodeParse {
  return parseBarcode(raw, { currentYear: YEAR, ...opts });
}

/** `[ai, value, parsed?]` per element, for compact expectations. */
function ais(p: BarcodeParse): (string | undefined)[][] {
  return p.elements.map((e) => (e.parsed === undefined ? [e.ai, e.value] : [e.ai, e.value, e.parsed]));
}

function expectValid(p: BarcodeParse): void {
  expect(p.reasons).toEqual([]);
  expect(p.valid).toBe(true);
  expect(p.elements.every((e) => e.valid)).toBe(true);
}

describe('GS1 test vectors', () => {
  it('the SSCC of the General Specifications (section 2.2 / 3.2, AI 00, company prefix 0614141): check digit 7', () => {
    for (const raw of [']C100106141411234567897', '(00)106141411234567897']) {
      const p = parse(raw);
      expectValid(p);
      expect(p.gs1).toBe(true);
      expect(p.elements).toEqual([{ ai: '00', title: 'SSCC', value: '106141411234567897', valid: true }]);
    }
  });

  it('the GTIN GS1 publications use as their example, (01)09521234543213, in every GS1 carrier', () => {
    for (const raw of [']C10109521234543213', ']d20109521234543213', ']Q30109521234543213', ']e00109521234543213', '(01)09521234543213']) {
      const p = parse(raw);
      expectValid(p);
      expect(ais(p)).toEqual([['01', '09521234543213']]);
    }
  });

  it('concatenation of predefined-length element strings needs no separator (General Specifications 7.8, concatenation example (01)95012345678903(3102)000400)', () => {
    const p = parse(']C1019501234567890331020004 00'.replace(' ', ''));
    expectValid(p);
    expect(ais(p)).toEqual([
      ['01', '95012345678903'],
      ['3102', '000400', '4'],
    ]);
  });

  it('GTIN, expiry, batch and serial as a GS1-128 transmits them: GS only after the variable-length batch', () => {
    const p = parse(`]C1010950110153000317220630` + `10ABC123${GS}21XYZ`);
    expectValid(p);
    expect(ais(p)).toEqual([
      ['01', '09501101530003'],
      ['17', '220630', '2022-06-30'],
      ['10', 'ABC123'],
      ['21', 'XYZ'],
    ]);
    expect(p.elements[1]!.title).toBe('USE BY or EXPIRY');
  });

  // The scan data GS1's own Barcode Syntax Engine produces for its examples (gs1/gs1-syntax-engine,
  // src/c-lib/scandata.c tests): the same AI data in GS1 QR Code, GS1 DataMatrix and GS1 DataBar.
  it("the GS1 Barcode Syntax Engine's scan-data examples (]Q3, ]d2, ]e0 with a GS before AI 99)", () => {
    for (const id of [']Q3', ']d2', ']e0']) {
      const p = parse(`${id}011231231231233310ABC123${GS}99TESTING`);
      expectValid(p);
      expect(ais(p)).toEqual([
        ['01', '12312312312333'],
        ['10', 'ABC123'],
        ['99', 'TESTING'],
      ]);
    }
    // DataBar Expanded with a composite: a fixed-length AI before the composite's data needs no GS
    const p = parse(`]e0011231231231233310ABC123${GS}1199122598COMPOSITE${GS}97XYZ`);
    expectValid(p);
    expect(ais(p)).toEqual([
      ['01', '12312312312333'],
      ['10', 'ABC123'],
      ['11', '991225', '1999-12-25'],
      ['98', 'COMPOSITE'],
      ['97', 'XYZ'],
    ]);
  });

  it("EAN/UPC as GTIN (the syntax engine's check-digit examples): value as scanned, parsed the GTIN-14", () => {
    const ean13 = parse(']E02112233789657');
    expectValid(ean13);
    expect(ean13.elements).toEqual([{ ai: '01', title: 'GTIN', value: '2112233789657', parsed: '02112233789657', valid: true, note: 'EAN-13 read as GTIN-14' }]);
    const upcA = parse(']E00416000336108');
    expectValid(upcA);
    expect(ais(upcA)).toEqual([['01', '0416000336108', '00416000336108']]);
    // some scanners drop UPC-A's leading zero under ]E0
    expect(ais(parse(']E0416000336108'))).toEqual([['01', '416000336108', '00416000336108']]);
    const ean8 = parse(']E402345680');
    expectValid(ean8);
    expect(ais(ean8)).toEqual([['01', '02345680', '00000002345680']]);
    // ]E3: EAN-13 with a 2- or 5-digit add-on
    const withAddOn = parse(']E3211223378965712345');
    expectValid(withAddOn);
    expect(withAddOn.addOn).toBe('12345');
    expect(ais(withAddOn)).toEqual([['01', '2112233789657', '02112233789657']]);
    expect(parse(']E32112233789657AB').reasons).toEqual(['add-on: expected 2 or 5 digits after the EAN-13, got "AB"']);
    const addOnAlone = parse(']E205');
    expect(addOnAlone).toMatchObject({ gs1: false, addOn: '05', valid: false });
    expect(parse(']E112')).toMatchObject({ gs1: false, addOn: '12', valid: true });
  });

  it('a wrong EAN-13 check digit is flagged with the digit it should be', () => {
    const p = parse(']E02112233789658');
    expect(p.valid).toBe(false);
    expect(p.elements[0]).toMatchObject({ ai: '01', valid: false, reason: 'check digit is 8, expected 7' });
    expect(p.elements[0]!.parsed).toBeUndefined();
    expect(parse(']E012345').reasons).toEqual(['EAN-13: expected 13 digits, got 5', '(01) length 5, expected 13']);
  });
});

describe('check digits', () => {
  it('GS1 mod 10 over GTIN-8/12/13/14, SSCC, GLN, GSRN', () => {
    expect(gs1CheckDigit('2401234567890')).toBe(5);
    expect(gs1CheckDigit('211223378965')).toBe(7);
    expect(gs1CheckDigit('41600033610')).toBe(8);
    expect(gs1CheckDigit('0234568')).toBe(0);
    expect(gs1CheckDigit('10614141123456789')).toBe(7);
    expect(gs1CheckDigit('061414100000')).toBe(5);
  });

  it.each([
    ['GTIN (01)', '(01)24012345678909', '01', 'check digit is 9, expected 5'],
    ['CONTENT (02)', '(02)24012345678900(37)10', '02', 'check digit is 0, expected 5'],
    ['SSCC (00)', '(00)106141411234567890', '00', 'check digit is 0, expected 7'],
    ['GLN (414)', '(414)0614141000004', '414', 'check digit is 4, expected 5'],
    ['GLN (410)', ']C14100614141000003', '410', 'check digit is 3, expected 5'],
    ['GRAI (8003): the 13-digit asset type after its leading 0', '(8003)01234567890120SERIAL', '8003', 'check digit is 0, expected 8'],
    ['GSRN (8018)', '(8018)123456789012345670', '8018', 'check digit is 0, expected 5'],
    ['GDTI (253)', '(253)5412345000012ABC', '253', 'check digit is 2, expected 3'],
  ])('%s', (_name, raw, ai, reason) => {
    const p = parse(raw);
    expect(p.valid).toBe(false);
    const el = p.elements.find((e) => e.ai === ai)!;
    expect(el).toMatchObject({ valid: false, reason });
    expect(p.reasons).toContain(`(${ai}) ${reason}`);
  });

  it('valid keys pass: GLNs in 410–417, GRAI with serial, GSRN, GDTI', () => {
    const p = parse(`]C1` + `4100614141000005` + `4145412345000013` + `8003012345678901 28SERIAL`.replace(' ', '') + GS + '8018123456789012345675' + GS + '2535412345000013ABC');
    expectValid(p);
    expect(p.elements.map((e) => e.ai)).toEqual(['410', '414', '8003', '8018', '253']);
    expect(p.elements[2]!.value).toBe('01234567890128SERIAL');
  });
});

describe('dates', () => {
  it('YYMMDD as ISO; DD=00 is the last day of the month, with a note (leap years counted)', () => {
    const p = parse('(15)240200(17)250900(13)230215');
    expectValid(p);
    expect(ais(p)).toEqual([
      ['15', '240200', '2024-02-29'],
      ['17', '250900', '2025-09-30'],
      ['13', '230215', '2023-02-15'],
    ]);
    expect(p.elements[0]!.note).toBe('day 00: no day given, read as the last day of the month');
    expect(p.elements[2]!.note).toBeUndefined();
  });

  it('the century rule of General Specifications 7.12: within -49..+50 years of the current year', () => {
    expect(centuryYear(76, 2026)).toBe(2076);
    expect(centuryYear(77, 2026)).toBe(1977);
    expect(centuryYear(0, 2026)).toBe(2000);
    expect(centuryYear(30, 2080)).toBe(2130);
    expect(centuryYear(31, 2080)).toBe(2031);
    expect(centuryYear(99, 2001)).toBe(1999);
    expect(ais(parse('(17)760101(11)770101'))).toEqual([
      ['17', '760101', '2076-01-01'],
      ['11', '770101', '1977-01-01'],
    ]);
    expect(parse('(17)300101', { currentYear: 2080 }).elements[0]!.parsed).toBe('2130-01-01');
  });

  it.each([
    ['(17)221301', '(17) invalid date 221301: month 13'],
    ['(17)220230', '(17) invalid date 220230: day 30'],
    ['(17)230229', '(17) invalid date 230229: day 29'],
    ['(7006)220100', '(7006) invalid date 220100: day 00'],
    ['(17)2206AB', '(17) character "A" at 4 is not a digit'],
    ['(7003)2201012460', '(7003) invalid time 2460: hour 24'],
    ['(8008)220101123', '(8008) invalid time 123: HH then MM or MMSS'],
  ])('%s is flagged', (raw, reason) => {
    const p = parse(raw);
    expect(p.valid).toBe(false);
    expect(p.reasons).toEqual([reason]);
  });

  it('date-times and ranges: 7003 expiry time, 8008 production time, 7007 harvest range, 4324 with DD=00', () => {
    const p = parse('(7003)2201011230(8008)2201011245(7007)220101220105(4324)2203001015(8008)22010112');
    expectValid(p);
    expect(p.elements.map((e) => e.parsed)).toEqual(['2022-01-01T12:30', '2022-01-01T12:45', '2022-01-01/2022-01-05', '2022-03-31T10:15', '2022-01-01T12']);
  });
});

describe('decimals (310n–369n, 390n–395n)', () => {
  it('places the point by the last digit of the AI, as the shortest decimal string', () => {
    const p = parse(']C1' + '3103000525' + '3102001250' + '3100000100' + '3105000000' + '3304123456' + '3925' + '4' + GS + '3932978' + '1250' + GS + '3941' + '1250');
    expectValid(p);
    expect(ais(p)).toEqual([
      ['3103', '000525', '0.525'],
      ['3102', '001250', '12.5'],
      ['3100', '000100', '100'],
      ['3105', '000000', '0'],
      ['3304', '123456', '12.3456'],
      ['3925', '4', '0.00004'],
      ['3932', '9781250', '12.5'],
      ['3941', '1250', '125'],
    ]);
    expect(p.elements[0]!.title).toBe('NET WEIGHT (kg)');
    expect(p.elements[6]!.note).toBe('currency 978 (ISO 4217)');
  });

  it('every 31nn–36nn AI in the table carries n decimals, n 0 to 5; 3106 is no AI', () => {
    let seen = 0;
    for (const [ai, def] of AIS) {
      if (!/^3[1-6]/.test(ai)) continue;
      seen++;
      expect(ai).toHaveLength(4);
      expect(def.decimals).toBe(Number(ai[3]));
      expect(def.decimals).toBeLessThanOrEqual(5);
      expect(def).toMatchObject({ format: 'N6', fixed: true, predefined: true, cset: 'N' });
    }
    // 310–316, 320–329, 330–337, 340–349, 350–357, 360–369: 53 groups of six
    expect(seen).toBe(53 * 6);
    expect(AIS.has('3106')).toBe(false);
    for (const x of ['390', '391', '392', '393']) for (let n = 0; n <= 9; n++) expect(AIS.get(`${x}${n}`)?.decimals).toBe(n);
  });
});

describe('the AI table', () => {
  it('holds the AIs the issue lists', () => {
    const wanted = ['00', '01', '02', '10', '11', '12', '13', '15', '16', '17', '20', '21', '22', '30', '37', '235', '240', '241', '250', '251', '253', '254', '255'];
    wanted.push('400', '401', '402', '403', '410', '411', '412', '413', '414', '415', '416', '417', '420', '421', '422', '7003', '8003', '8004', '8005', '8006', '8008', '8017', '8018', '8020', '90');
    for (let i = 91; i <= 99; i++) wanted.push(String(i));
    for (const ai of wanted) expect(AIS.get(ai)?.ai, ai).toBe(ai);
  });

  it('"needs no separator" comes from the predefined-length prefixes, not from being fixed-length', () => {
    for (const [ai, def] of AIS) {
      const total = PREDEFINED_LENGTH[ai.slice(0, 2)];
      expect(def.predefined, ai).toBe(total !== undefined);
      if (total !== undefined) expect(ai.length + def.maxLength, ai).toBe(total);
    }
    // fixed-length, yet a separator must follow them
    for (const ai of ['402', '422', '7003', '8006', '8017', '8018', '8005', '4309']) expect(AIS.get(ai)).toMatchObject({ fixed: true, predefined: false });
    expect(AIS.get('8003')).toMatchObject({ fixed: false, minLength: 14, maxLength: 30, check: true, cset: null });
    expect(AIS.get('10')).toMatchObject({ fixed: false, minLength: 1, maxLength: 20, cset: 'X', check: false });
    expect(AIS.get('8010')).toMatchObject({ cset: 'Y' });
    expect(AIS.get('17')).toMatchObject({ date: 'YYMMD0', predefined: true });
  });

  it('AIs are prefix-free, so the lookup reads 2, 3 or 4 digits without ambiguity', () => {
    expect(lookupAi('3103000525', 0)?.ai).toBe('3103');
    expect(lookupAi('x2350', 1)?.ai).toBe('235');
    expect(lookupAi('7', 0)).toBeUndefined();
  });
});

describe('separators and wedge input', () => {
  it('a fixed-length but not predefined AI (422) needs its GS; without it the length is flagged', () => {
    expectValid(parse(`]C1422276${GS}10ABC`));
    const p = parse(']C142227610ABC');
    expect(p.reasons).toEqual(['(422) length 8, expected 3']);
  });

  it('a GS after a predefined-length element, a leading FNC1 as GS and a trailing GS are tolerated', () => {
    const p = parse(`]d2${GS}0109521234543213${GS}17220630${GS}10ABC${GS}`);
    expectValid(p);
    expect(ais(p).map((e) => e[0])).toEqual(['01', '17', '10']);
  });

  it('wedge input that lost GS: the replacement character separates; without it two AIs run together', () => {
    const wedge = ']C1' + '0109521234543213' + '10ABC123|21XYZ987|3103000525';
    const p = parse(wedge, { gsReplacement: '|' });
    expectValid(p);
    expect(ais(p)).toEqual([
      ['01', '09521234543213'],
      ['10', 'ABC123'],
      ['21', 'XYZ987'],
      ['3103', '000525', '0.525'],
    ]);
    // the same scan with no GS and no replacement: 10 swallows the rest, which is over its 20
    const lost = parse(wedge.replaceAll('|', ''));
    expect(lost.valid).toBe(false);
    expect(lost.reasons).toEqual(['(10) length 24, at most 20 (a missing group separator?)']);
    // when the run-together value still fits, nothing can tell: that is why wedge setups need the replacement
    expect(ais(parse(']C1' + '0109521234543213' + '10ABC21XYZ'))).toEqual([
      ['01', '09521234543213'],
      ['10', 'ABC21XYZ'],
    ]);
    // a replacement that is a digit or bracket could never stand for GS: ignored
    expect(parse(`(10)A1B`, { gsReplacement: '1' }).elements).toHaveLength(1);
  });

  it('without a symbology identifier: plain text unless assumeGs1, a leading GS, or the bracketed form', () => {
    expect(parse('0109521234543213')).toMatchObject({ symbology: null, gs1: false, valid: true, elements: [] });
    expect(ais(parse('0109521234543213', { assumeGs1: true }))).toEqual([['01', '09521234543213']]);
    expect(ais(parse(`${GS}0109521234543213`))).toEqual([['01', '09521234543213']]);
    expect(ais(parse('(01)09521234543213(10)A(B)C'))).toEqual([
      ['01', '09521234543213'],
      ['10', 'A(B)C'],
    ]);
  });

  it('identifiers that say plain data win over assumeGs1: Code 39, plain Code 128, plain QR and DataMatrix', () => {
    for (const id of [']A0', ']C0', ']Q1', ']d1', ']I0']) {
      const p = parse(`${id}0109521234543213`, { assumeGs1: true });
      expect(p).toMatchObject({ symbology: id, text: '0109521234543213', gs1: false, elements: [], valid: true, reasons: [] });
    }
  });
});

describe('bad input is flagged, never thrown', () => {
  it('an unknown AI stops the parse; the rest is kept as one unparsed element', () => {
    const p = parse(']C101095212345432133106000100' + GS + '10ABC');
    expect(p.valid).toBe(false);
    expect(p.reasons).toEqual(['unknown AI 3106: the rest of the code is not parsed']);
    expect(p.elements).toEqual([
      { ai: '01', title: 'GTIN', value: '09521234543213', valid: true },
      { ai: '3106', title: 'UNKNOWN', value: `000100${GS}10ABC`, valid: false, reason: 'unknown AI 3106: the rest of the code is not parsed' },
    ]);
    expect(parse('(01)09521234543213(9999)X').reasons).toEqual(['unknown AI 9999: the rest of the code is not parsed']);
    expect(parse(']C1ABC').reasons).toEqual(['no AI at offset 0: the rest of the code is not parsed']);
    expect(parse(']C189123').elements[0]).toMatchObject({ ai: '8912', value: '3' });
  });

  it('a truncated code', () => {
    expect(parse(']C1010952123454').reasons).toEqual(['(01) truncated: 10 of 14 characters']);
    expect(parse(']C1010952123454321317').reasons).toEqual(['(17) truncated: 0 of 6 characters']);
    expect(parse(']C1010952123454321310').reasons).toEqual(['(10) truncated: 0 of at least 1 characters']);
    expect(parse(`]C101095212345432${GS}10ABC`).reasons).toEqual(['(01) length 12, expected 14']);
  });

  it('empty input and an identifier with nothing after it', () => {
    expect(parse('')).toMatchObject({ gs1: false, valid: false, reasons: ['empty code'] });
    expect(parse(']C1')).toMatchObject({ symbology: ']C1', gs1: true, valid: false, reasons: ['no GS1 element in the code'] });
    expect(parse(`]d2${GS}${GS}`).reasons).toEqual(['no GS1 element in the code']);
  });

  it('characters outside the AI character set', () => {
    expect(parse('(10)AB CD').reasons).toEqual(['(10) character " " at 2 is not in CSET 82']);
    expect(parse('(10)Müll').reasons).toEqual(['(10) character "ü" at 1 is not in CSET 82']);
    expect(parse('(8010)abc').reasons).toEqual(['(8010) character "a" at 0 is not in CSET 39']);
    expect(parse('(421)276D-123').valid).toBe(true);
    expect(parse('(421)2X6D-123').reasons).toEqual(['(421) character "X" at 1 is not a digit']);
  });

  it('binary noise', () => {
    const noise = Buffer.from([0x00, 0xff, 0x1d, 0x5d, 0x43, 0x31, 0x1d, 0x30, 0x31, 0x80, 0x1d]).toString('latin1');
    for (const raw of [noise, `]C1${noise}`, `]E0${noise}`, `(01)${noise}`]) {
      const p = parse(raw, { assumeGs1: true, gsReplacement: '\u00ff' });
      expect(p.valid).toBe(false);
      expect(p.reasons.length).toBeGreaterThan(0);
    }
  });

  it('property: any string, any options: never throws, valid exactly when there is no reason, elements valid with no reason only', () => {
    const ids = fc.constantFrom('', ']C1', ']d2', ']Q3', ']e0', ']E0', ']E3', ']E4', ']E1', ']A0', ']J1', '(01)', '(10)', GS);
    const body = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.array(fc.constantFrom('0', '1', '3', '7', '9', GS, '|', '(', ')', 'A', '\u00e9'), { maxLength: 60 }).map((a) => a.join('')),
    );
    fc.assert(
      fc.property(ids, body, fc.record({ assumeGs1: fc.boolean(), gsReplacement: fc.option(fc.string({ maxLength: 2 }), { nil: undefined }) }), (id, b, opts) => {
        const p = parseBarcode(id + b, opts);
        expect(p.valid).toBe(p.reasons.length === 0);
        for (const e of p.elements) expect(e.valid).toBe(e.reason === undefined);
        if (!p.gs1) expect(p.elements).toEqual([]);
      }),
      { numRuns: 3000 },
    );
  });

  // #12 item 6: valid codes, mutated the way scanners and wedges damage them.
  const VALID_CODES = [
    ']C101095212345432133103000400',
    `]C1010952123454321317261231` + `10ABC${GS}21XYZ`,
    '(01)09521234543213(10)ABC(21)12345',
    `]d2${GS}0109521234543213${GS}10A1`,
    ']E09521234543213',
    ']C100106141411234567897',
  ];
  const damage = fc.oneof(
    fc.tuple(fc.constant('delete' as const), fc.nat()),
    fc.tuple(fc.constant('insert' as const), fc.nat(), fc.constantFrom('0', '9', GS, '|', '(', ')', 'A', ' ', '\u00e9', '\x00', '\ufffd')),
    fc.tuple(fc.constant('replace' as const), fc.nat(), fc.constantFrom('0', '5', GS, 'X', '\u00ff')),
    fc.tuple(fc.constant('swap' as const), fc.nat()),
    fc.tuple(fc.constant('truncate' as const), fc.nat()),
    fc.tuple(fc.constant('repeat' as const), fc.nat(), fc.integer({ min: 1, max: 400 })),
  );
  function applyDamage(code: string, d: [string, number, (string | number)?]): string {
    const at = d[1] % (code.length + 1);
    switch (d[0]) {
      case 'delete':
        return code.slice(0, at) + code.slice(at + 1);
      case 'insert':
        return code.slice(0, at) + String(d[2]) + code.slice(at);
      case 'replace':
        return code.slice(0, at) + String(d[2]) + code.slice(at + 1);
      case 'swap':
        return at + 1 < code.length ? code.slice(0, at) + code[at + 1]! + code[at]! + code.slice(at + 2) : code;
      case 'truncate':
        return code.slice(0, at);
      default:
        // Capped at a scan's default max_length (4096): repeated repeats would grow without end.
        return (code + code.slice(at).repeat(Number(d[2]))).slice(0, 4_096);
    }
  }

  it('property: valid codes damaged (characters dropped, inserted, replaced, swapped, cut, repeated): never throws, the verdict is consistent', () => {
    for (const code of VALID_CODES) expectValid(parse(code));
    fc.assert(
      fc.property(fc.constantFrom(...VALID_CODES), fc.array(damage, { minLength: 1, maxLength: 4 }), fc.boolean(), (code, ds, assumeGs1) => {
        const raw = ds.reduce((c, d) => applyDamage(c, d as [string, number, (string | number)?]), code);
        const p = parse(raw, { assumeGs1, gsReplacement: '|' });
        expect(p.valid).toBe(p.reasons.length === 0);
        for (const e of p.elements) expect(e.valid).toBe(e.reason === undefined);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: one digit of a GTIN changed is always caught (mod 10 finds every single-digit error)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 13 }), fc.integer({ min: 1, max: 9 }), (i, delta) => {
        const gtin = '09521234543213';
        const bad = gtin.slice(0, i) + String((Number(gtin[i]) + delta) % 10) + gtin.slice(i + 1);
        const p = parse(`]C101${bad}`);
        expect(p.valid).toBe(false);
        expect(p.elements[0]).toMatchObject({ ai: '01', valid: false });
      }),
      { numRuns: 126 },
    );
  });
});
