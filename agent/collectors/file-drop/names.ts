import picomatch from 'picomatch';
import type { FileDropConfig } from './schema.js';

/**
 * Which file names a file-drop collector takes. Pure (no driver imports): the collector uses it to
 * pick files, and `validate` uses it to find two collectors that would take the same file.
 */

/**
 * Names that writers use while a file is still being written (write-to-temp-then-rename):
 * they are never read; the final name appears by rename once the file is complete.
 */
export const TEMP_NAMES: readonly string[] = ['*.tmp', '*.temp', '*.part', '*.partial', '*.filepart', '*.crdownload', '~*', '.*'];

export type NameRules = Pick<FileDropConfig, 'include' | 'exclude' | 'case_sensitive'>;

/**
 * `(name) => true` when the collector takes a file of this name: a base name in its folder (the
 * folder is watched top level only). `include` patterns do not match a leading dot; `exclude`
 * and TEMP_NAMES do. Patterns ignore case unless `case_sensitive`; TEMP_NAMES always ignore case,
 * so `ORDERS.TMP` is never read half-written whatever the setting.
 */
export function nameMatcher(cfg: NameRules): (name: string) => boolean {
  const nocase = !cfg.case_sensitive;
  const included = picomatch([...cfg.include], { dot: false, nocase });
  const excluded = picomatch([...cfg.exclude], { dot: true, nocase });
  const temporary = picomatch([...TEMP_NAMES], { dot: true, nocase: true });
  return (name) => included(name) && !temporary(name) && !excluded(name);
}
