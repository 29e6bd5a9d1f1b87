/**
 * GS1 barcode parsing: AIM symbology identifier, element strings (FNC1/GS separated), application
 * identifiers with check digits and dates. The AI table lives in gs1-ais.ts.
 *
 * CONTRACT (#10): the exported types and `parseBarcode`'s signature are what scan.ts relies on.
 * This first version only reads the symbology identifier; the AI parser replaces its body.
 */

/** One application identifier and its value as read from the code. */
export interface Gs1Element {
  /** `01`, `10`, `3103`, … */
  ai: string;
  /** Short name from the AI table, e.g. `GTIN`, `BATCH/LOT`, `NET WEIGHT (kg)`. */
  title: string;
  /** The value exactly as in the code. */
  value: string;
  /** Dates (YYMMDD) as ISO `YYYY-MM-DD`; decimals (310n…) with the point placed, e.g. `12.5`. */
  parsed?: string | undefined;
  /** False when this element is wrong (check digit, length, characters, date); `reason` says why. */
  valid: boolean;
  reason?: string | undefined;
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
}

export interface Gs1Options {
  /**
   * A character that stands for the group separator (ASCII 29) in the input: keyboard-wedge
   * setups lose GS and are configured to send this instead (e.g. `|` or `~`).
   */
  gsReplacement?: string | undefined;
  /** Read codes without a symbology identifier as GS1 element strings (default: only when one says GS1). */
  assumeGs1?: boolean | undefined;
}

const SYMBOLOGY = /^\][A-Za-z][0-9A-Za-z]/;

export function parseBarcode(raw: string, _opts: Gs1Options = {}): BarcodeParse {
  const m = SYMBOLOGY.exec(raw);
  const symbology = m ? m[0] : null;
  const text = m ? raw.slice(3) : raw;
  return { symbology, text, gs1: false, elements: [], valid: true, reasons: [] };
}
