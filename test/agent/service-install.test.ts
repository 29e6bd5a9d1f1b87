import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cmdQuote, runServiceInstaller } from '../../agent/service-install.js';
import { makeTempDir } from '../helpers/tmp.js';

// The Windows side of install-service as far as Linux can run it: which script, which options, how
// they are quoted for cmd.exe. The service itself is proven under Wine (test/installer/windows).
describe('install-service on win32', () => {
  it('needs install.cmd beside edge-agent.exe, and says where the package is made', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      expect(() => runServiceInstaller('install', [], join(dir, 'edge-agent.exe'), 'win32')).toThrow(
        expect.objectContaining({ code: 'ERP_SERVICE_INSTALL', message: expect.stringMatching(/install\.cmd beside the packaged edge-agent\.exe .*dist\/package\/win-x64\//) }),
      );
    } finally {
      cleanup();
    }
  });

  it('refuses the Linux-only options rather than passing them to install.cmd', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      for (const f of ['edge-agent.exe', 'install.cmd']) writeFileSync(join(dir, f), '');
      expect(() => runServiceInstaller('install', ['--site', 'WH1', '--rw-path', 'D:\\drop'], join(dir, 'edge-agent.exe'), 'win32')).toThrow(
        expect.objectContaining({ code: 'ERP_SERVICE_INSTALL', message: '--rw-path: not an option of install-service on win32' }),
      );
    } finally {
      cleanup();
    }
  });

  it('quotes arguments for cmd.exe, and refuses characters cmd would expand', () => {
    expect(cmdQuote('WH1')).toBe('WH1');
    expect(cmdQuote('C:\\Program Files\\erp-edge\\install.cmd')).toBe('"C:\\Program Files\\erp-edge\\install.cmd"');
    expect(cmdQuote('mqtts://a&b')).toBe('"mqtts://a&b"');
    expect(cmdQuote('')).toBe('""');
    expect(() => cmdQuote('100%')).toThrow(expect.objectContaining({ code: 'ERP_SERVICE_INSTALL' }));
  });

  it('is refused on a platform without an installer', () => {
    expect(() => runServiceInstaller('install', [], '/x/edge-agent', 'darwin')).toThrow(/not available on darwin \(Linux and Windows only\)/);
  });
});
