import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heldForWriting } from '../../../../agent/collectors/file-drop/open-writers.js';
import { makeTempDir } from '../../../helpers/tmp.js';

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => (tmp = makeTempDir('open-writers-')));
afterEach(() => tmp.cleanup());

describe.runIf(process.platform === 'linux')('heldForWriting (Linux /proc)', () => {
  it('sees a writer in this process, follows a rename, and ignores readers', async () => {
    const file = path.join(tmp.dir, 'export.csv');
    fs.writeFileSync(file, 'a\n');
    expect(await heldForWriting(file)).toBe(false);
    const reader = fs.openSync(file, 'r');
    expect(await heldForWriting(file)).toBe(false);
    const writer = fs.openSync(file, 'a');
    expect(await heldForWriting(file)).toBe(true);
    const moved = path.join(tmp.dir, 'moved.csv');
    fs.renameSync(file, moved);
    expect(await heldForWriting(moved)).toBe(true);
    fs.closeSync(writer);
    fs.closeSync(reader);
    expect(await heldForWriting(moved)).toBe(false);
    expect(await heldForWriting(path.join(tmp.dir, 'missing.csv'))).toBe(false);
  });

  it('sees a writer in another process until it exits', async () => {
    const file = path.join(tmp.dir, 'export.csv');
    const child = spawn(process.execPath, ['-e', `const fs=require('fs');fs.openSync(${JSON.stringify(file)},'w');process.stdout.write('open\\n');process.stdin.on('data',()=>process.exit(0))`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await once(child.stdout!, 'data');
    expect(await heldForWriting(file)).toBe(true);
    child.stdin!.write('x');
    await once(child, 'exit');
    expect(await heldForWriting(file)).toBe(false);
  });
});
