import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prettyLine } from '../../common/log-pretty.js';
import { createLogger, logFormat } from '../../common/logger.js';
import { requireBinary } from '../helpers/requirements.js';
import { makeTempDir } from '../helpers/tmp.js';

const ROOT = resolve(import.meta.dirname, '../..');
const AT = new Date(2026, 11, 3, 9, 5, 7, 42).getTime(); // local time: the pretty clock is the reader's

describe('log format', () => {
  it('pretty on a terminal, JSON when piped or under a service manager; ERP_EDGE_LOG_FORMAT forces either', () => {
    expect(logFormat({}, true)).toBe('pretty');
    expect(logFormat({}, false)).toBe('json');
    expect(logFormat({ ERP_EDGE_LOG_FORMAT: 'json' }, true)).toBe('json');
    expect(logFormat({ ERP_EDGE_LOG_FORMAT: 'Pretty' }, false)).toBe('pretty');
    expect(logFormat({ ERP_EDGE_LOG_FORMAT: 'yaml' }, false)).toBe('json');
  });

  it('a pino line becomes one readable line: time, level, logger path, message, fields; an error with its stack below', () => {
    const line = JSON.stringify({ level: 40, time: AT, pid: 7, name: 'cloud-relay', component: 'relay', part: 'ingest', site: 's1', stream: 'orders', upto: 12, note: 'two words', ranges: [{ from: 1, to: 2 }], msg: 'gap' });
    expect(prettyLine(line, { color: false })).toBe('09:05:07.042 WARN  cloud-relay/relay/ingest: gap site=s1 stream=orders upto=12 note="two words" ranges=[{"from":1,"to":2}]\n');
    const err = JSON.stringify({ level: 50, time: AT, name: 'edge-agent', err: { type: 'Error', message: 'disk full', stack: 'Error: disk full\n    at x (a.ts:1:1)' }, msg: 'append failed' });
    expect(prettyLine(err, { color: true })).toBe('09:05:07.042 \x1b[31mERROR\x1b[0m edge-agent: append failed err="disk full"\n    Error: disk full\n        at x (a.ts:1:1)\n');
    expect(prettyLine('not json', { color: false })).toBe('not json\n');
  });

  it('secrets stay redacted in pretty lines (pino redacts before the line is formatted)', () => {
    let out = '';
    const log = createLogger({ format: 'pretty', destination: { write: (s: string) => void (out += s) } });
    log.info({ password: 's3cret', db: { token: 't0ken' } }, 'connecting');
    expect(out).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  connecting password=\[redacted\] db=\{"token":"\[redacted\]"\}\n$/);
    expect(out).not.toMatch(/s3cret|t0ken/);
  });
});

describe('cloud-relay run: what its log looks like where it runs', () => {
  let dir: string;
  let cleanup: () => void;
  let config: string;
  beforeEach(() => {
    ({ dir, cleanup } = makeTempDir());
    config = join(dir, 'relay.yaml');
    writeFileSync(config, `broker: embedded\nembedded_broker: { port: 0 }\nhttp: { port: 0 }\nstore: { path: ${join(dir, 'relay.db')} }\nauth: { disabled: true }\n`);
  });
  afterEach(() => cleanup());

  /** Runs the command in its own process group until it has logged `relay started`, then stops the group. */
  async function startedOutput(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    const proc = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ERP_EDGE_LOG_FORMAT: '', ...env } });
    let out = '';
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    const started = new Promise<void>((r, reject) => {
      const check = (d: Buffer) => ((out += String(d)), out.includes('relay started') && r());
      proc.stdout.on('data', check);
      proc.stderr.on('data', check);
      void exited.then(() => reject(new Error(`exited before starting:\n${out}`)));
    });
    try {
      await started;
    } finally {
      process.kill(-proc.pid!, 'SIGTERM');
      await exited;
    }
    return out;
  }

  const relay = [join(ROOT, 'bin/cloud-relay.js'), 'run', '--config'];

  it('piped: JSON lines; forced pretty: readable lines', async () => {
    const json = await startedOutput(process.execPath, [...relay, config]);
    const started = json.split('\n').find((l) => l.includes('relay started'))!;
    expect(JSON.parse(started)).toMatchObject({ level: 30, name: 'cloud-relay', component: 'relay', msg: 'relay started' });

    const pretty = await startedOutput(process.execPath, [...relay, config], { ERP_EDGE_LOG_FORMAT: 'pretty' });
    expect(pretty).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}cloud-relay\/relay: relay started broker=mqtt:\/\/127\.0\.0\.1:\d+ http=http:\/\/127\.0\.0\.1:\d+ wire_versions=\[1,2\]/m);
    expect(pretty).not.toContain('{"level"');
  }, 60_000);

  // util-linux `script` gives the relay a pseudo-terminal, as a person's shell does.
  it.runIf(requireBinary('script', 'sudo apt-get install -y bsdutils (util-linux script)'))('on a terminal: readable, coloured lines without being asked; ERP_EDGE_LOG_FORMAT=json still gives JSON', async () => {
    const line = (env: string) => `${env} exec '${process.execPath}' '${relay[0]}' run --config '${config}'`;
    const tty = await startedOutput('script', ['-qec', line(''), '/dev/null']);
    expect(tty).toMatch(/^\d\d:\d\d:\d\d\.\d{3} \x1b\[32mINFO \x1b\[0m cloud-relay\/relay: relay started /m);
    expect(tty).not.toContain('{"level"');
    const forced = await startedOutput('script', ['-qec', line('ERP_EDGE_LOG_FORMAT=json'), '/dev/null']);
    expect(JSON.parse(forced.split(/\r?\n/).find((l) => l.includes('relay started'))!)).toMatchObject({ msg: 'relay started' });
  }, 60_000);
});
