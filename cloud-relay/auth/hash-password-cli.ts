import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { hashPassword } from './password.js';

/**
 * `cloud-relay hash-password`: reads a password from stdin (never from argv, where `ps` and the
 * shell history would show it) and prints its scrypt hash for `auth.users[].password_hash`.
 * On a terminal it asks twice without echo; piped, it takes the first line.
 */
export async function runHashPassword(): Promise<number> {
  const password = process.stdin.isTTY ? await askTwice() : firstLine(await readAll());
  if (!password) {
    process.stderr.write('hash-password: empty password\n');
    return 2;
  }
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}

async function readAll(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0] ?? '';
}

async function askTwice(): Promise<string | undefined> {
  const a = await askHidden('password: ');
  const b = await askHidden('again:    ');
  if (a !== b) {
    process.stderr.write('hash-password: the two entries differ\n');
    return undefined;
  }
  return a;
}

function askHidden(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  // Readline echoes what it reads to its output: give it one that swallows the keystrokes.
  const muted = new Writable({ write: (_c, _e, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  return new Promise((resolve) =>
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    }),
  );
}
