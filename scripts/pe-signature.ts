// Authenticode on a Windows executable (PE): node.exe ships signed by the Node.js project. A SEA
// injected into a copy changes its bytes, so that signature no longer matches: Windows would show
// a signed-but-tampered file. The copy is made unsigned instead (sign it with the site's own
// certificate, e.g. osslsigncode on Linux or signtool on Windows, if policy wants one).
import { readFileSync, writeFileSync } from 'node:fs';

/** PE32+ optional header magic (64-bit executables). */
const PE32_PLUS = 0x20b;
/** Index of the certificate table (Authenticode) among the optional header's data directories. */
const SECURITY_DIRECTORY = 4;

/** Where the certificate table entry is, and what it says (file offset and size; 0, 0 when unsigned). */
function securityEntry(pe: Buffer): { at: number; offset: number; size: number } {
  if (pe.readUInt16LE(0) !== 0x5a4d) throw new Error('not a PE file (no MZ header)');
  const header = pe.readUInt32LE(0x3c);
  if (pe.readUInt32LE(header) !== 0x4550) throw new Error('not a PE file (no PE signature)');
  const optional = header + 4 + 20;
  if (pe.readUInt16LE(optional) !== PE32_PLUS) throw new Error('not a 64-bit (PE32+) executable');
  const at = optional + 112 + SECURITY_DIRECTORY * 8;
  return { at, offset: pe.readUInt32LE(at), size: pe.readUInt32LE(at + 4) };
}

/** True when the executable carries an Authenticode signature. */
export function isSigned(file: string): boolean {
  return securityEntry(readFileSync(file)).size > 0;
}

/** Removes the Authenticode signature (the certificate table at the end of the file) in place. */
export function stripSignature(file: string): void {
  const pe = readFileSync(file);
  const { at, offset, size } = securityEntry(pe);
  if (size === 0) return;
  // The table is the file's tail (it is not mapped into memory); anything after it would be unusual.
  if (offset + size < pe.length - 8) throw new Error(`the certificate table of ${file} is not at its end: not stripped`);
  pe.writeUInt32LE(0, at);
  pe.writeUInt32LE(0, at + 4);
  writeFileSync(file, pe.subarray(0, offset));
}
