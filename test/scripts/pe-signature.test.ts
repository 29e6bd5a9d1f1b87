import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSigned, stripSignature } from '../../scripts/pe-signature.js';
import { makeTempDir } from '../helpers/tmp.js';

/** The headers of a 64-bit PE as the stripper reads them, `body` bytes of image, then a certificate table of `cert` bytes. */
function pe(body: number, cert: number): Buffer {
  const header = 0x40;
  const optional = header + 4 + 20;
  const size = optional + 112 + 16 * 8;
  const b = Buffer.alloc(size + body + cert);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(header, 0x3c);
  b.write('PE\0\0', header, 'latin1');
  b.writeUInt16LE(0x20b, optional);
  if (cert > 0) {
    b.writeUInt32LE(size + body, optional + 112 + 4 * 8);
    b.writeUInt32LE(cert, optional + 112 + 4 * 8 + 4);
    b.fill(0xab, size + body);
  }
  return b;
}

describe('Authenticode stripping (the Windows executable is shipped unsigned, not signed-and-broken)', () => {
  it('drops the certificate table and its directory entry, and leaves the rest as it was', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = join(dir, 'signed.exe');
      const original = pe(1000, 256);
      writeFileSync(file, original);
      expect(isSigned(file)).toBe(true);
      stripSignature(file);
      expect(isSigned(file)).toBe(false);
      const after = readFileSync(file);
      expect(after.length).toBe(original.length - 256);
      expect(after.includes(0xab)).toBe(false);
      expect(after.equals(pe(1000, 0))).toBe(true);
      stripSignature(file); // unsigned already: nothing to do
      expect(readFileSync(file).equals(after)).toBe(true);
    } finally {
      cleanup();
    }
  });

  it('refuses what is not a 64-bit PE', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const file = join(dir, 'x.exe');
      writeFileSync(file, Buffer.from('#!/bin/sh\necho not a PE\n'.padEnd(512, ' ')));
      expect(() => stripSignature(file)).toThrow('not a PE file (no MZ header)');
      const pe32 = pe(10, 0);
      pe32.writeUInt16LE(0x10b, 0x40 + 24);
      writeFileSync(file, pe32);
      expect(() => stripSignature(file)).toThrow('not a 64-bit (PE32+) executable');
    } finally {
      cleanup();
    }
  });
});
