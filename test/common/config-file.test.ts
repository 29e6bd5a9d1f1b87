import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfigFile, parseConfigText } from '../../common/config-file.js';
import { durationMs } from '../../common/duration.js';
import { ErpEdgeError } from '../../common/errors.js';

const Schema = z.strictObject({
  site: z.string(),
  mqtt: z.strictObject({ host: z.string(), port: z.number().int(), password: z.string().optional(), tls: z.boolean().default(false) }),
  outbox: z.strictObject({ dir: z.string(), max_bytes: z.number().default(1000), retention: durationMs.default(3_600_000) }),
  collectors: z
    .array(
      z.discriminatedUnion('type', [
        z.strictObject({ type: z.literal('file'), path: z.string(), poll: durationMs.default(5000) }),
        z.strictObject({ type: z.literal('erp'), url: z.string() }),
      ]),
    )
    .default([]),
});

const FILE = 'config/agent.yaml';
const yaml = (lines: string[]) => lines.join('\n') + '\n';

function fail(fn: () => unknown): ErpEdgeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ErpEdgeError);
    return err as ErpEdgeError;
  }
  throw new Error('expected an error');
}

const BASE = [
  'site: plant-7', //        1
  'mqtt:', //                2
  '  host: broker', //       3
  '  port: 1883', //         4
  'outbox:', //              5
  '  dir: /var/outbox', //   6
];

describe('parseConfigText: valid input', () => {
  it('applies defaults and transforms (durationMs)', () => {
    const cfg = parseConfigText(
      yaml([...BASE, '  retention: 24h', 'collectors:', '  - type: file', '    path: /drop', '  - type: file', '    path: /d2', '    poll: 750ms']),
      FILE,
      Schema,
      {},
    );
    expect(cfg.outbox).toEqual({ dir: '/var/outbox', max_bytes: 1000, retention: 86_400_000 });
    expect(cfg.collectors).toEqual([
      { type: 'file', path: '/drop', poll: 5000 },
      { type: 'file', path: '/d2', poll: 750 },
    ]);
    expect(cfg.mqtt).toEqual({ host: 'broker', port: 1883, tls: false });
  });
});

describe('parseConfigText: validation issues', () => {
  it('reports a missing key inside an array item at the item map', () => {
    const err = fail(() =>
      parseConfigText(
        yaml([...BASE, 'collectors:', '  - type: erp', '    url: http://erp', '  - type: file', '    poll: 10s']),
        FILE,
        Schema,
        {},
      ),
    );
    expect(err.code).toBe('ERP_CONFIG_INVALID');
    expect(err.message).toBe('config/agent.yaml:10:5 collectors[1].path: required');
    expect(err.context).toEqual({ file: FILE, issues: [{ line: 10, col: 5, path: 'collectors[1].path', message: 'required' }] });
  });

  it('reports a wrong type at the value node', () => {
    const text = yaml(['site: plant-7', 'mqtt:', '  host: broker', '  port: "1883"', 'outbox:', '  dir: /var/outbox']);
    const err = fail(() => parseConfigText(text, FILE, Schema, {}));
    expect(err.message).toBe('config/agent.yaml:4:9 mqtt.port: expected number, got string');
  });

  it('explains a union type mismatch and a bad duration (transform schema)', () => {
    const err = fail(() => parseConfigText(yaml([...BASE, '  retention: true', 'collectors:', '  - type: file', '    path: /d', '    poll: soon']), FILE, Schema, {}));
    expect(err.message).toBe(
      [
        'config/agent.yaml:7:14 outbox.retention: expected string | number, got boolean',
        'config/agent.yaml:11:11 collectors[0].poll: expected a duration such as "30s", "15m", "24h" or milliseconds, got "soon"',
      ].join('\n'),
    );
  });

  it('reports an unknown top-level key at the key node, listing allowed keys, with the key it replaced', () => {
    const text = yaml(['sitee: plant-7', 'mqtt:', '  host: broker', '  port: 1883', 'outbox:', '  dir: /var/outbox']);
    const err = fail(() => parseConfigText(text, FILE, Schema, {}));
    expect(err.message).toBe(
      [
        'config/agent.yaml:1:1 site: required',
        'config/agent.yaml:1:1 sitee: unknown key (check spelling; allowed: site, mqtt, outbox, collectors)',
      ].join('\n'),
    );
  });

  it('reports nested unknown keys (plain object and discriminated-union item) at the key node', () => {
    const err = fail(() =>
      parseConfigText(yaml([...BASE, '  max_bytse: 5', 'collectors:', '  - type: file', '    path: /d', '    pol: 5s']), FILE, Schema, {}),
    );
    expect(err.message).toBe(
      [
        'config/agent.yaml:7:3 outbox.max_bytse: unknown key (check spelling; allowed: dir, max_bytes, retention)',
        'config/agent.yaml:11:5 collectors[0].pol: unknown key (check spelling; allowed: type, path, poll)',
      ].join('\n'),
    );
    expect((err.context.issues as unknown[]).length).toBe(2);
  });

  it('reports several issues together, in file order', () => {
    const text = yaml(['mqtt:', '  host: 42', 'outbox:', '  dir: /o', 'collectors:', '  - type: ftp']);
    const err = fail(() => parseConfigText(text, FILE, Schema, {}));
    expect(err.context.issues).toEqual([
      { line: 1, col: 1, path: 'site', message: 'required' },
      { line: 2, col: 3, path: 'mqtt.port', message: 'required' },
      { line: 2, col: 9, path: 'mqtt.host', message: 'expected string, got number' },
      { line: 6, col: 11, path: 'collectors[0].type', message: "Invalid discriminator value. Expected 'file' | 'erp'" },
    ]);
    expect(err.message.split('\n')).toHaveLength(4);
    expect(err.message.split('\n')[2]).toBe('config/agent.yaml:2:9 mqtt.host: expected string, got number');
  });

  it('calls an empty, blank, comment-only or bare --- file empty instead of listing the required keys', () => {
    for (const text of ['', '  \n\n', '# nothing yet\n  # still nothing\n', '---\n']) {
      const err = fail(() => parseConfigText(text, FILE, Schema, {}));
      expect(err.code).toBe('ERP_CONFIG_INVALID');
      expect(err.message).toBe('config/agent.yaml: the config file is empty');
      expect(err.context).toEqual({ file: FILE, issues: [{ line: 1, col: 1, path: '', message: 'the config file is empty' }] });
    }
    // Even when every key has a default: an empty file is the wrong file, or one not yet written.
    expect(fail(() => parseConfigText('', FILE, z.object({ a: z.number().default(3) }), {})).message).toBe('config/agent.yaml: the config file is empty');
    // A written null is content, not an empty file.
    expect(fail(() => parseConfigText('~\n', FILE, Schema, {})).message).toBe('config/agent.yaml:1:1 (root): expected object, got null');
  });

  it('uses (root) for a root-level type error', () => {
    const err = fail(() => parseConfigText('- a\n- b\n', FILE, Schema, {}));
    expect(err.message).toBe('config/agent.yaml:1:1 (root): expected object, got array');
  });
});

describe('parseConfigText: YAML syntax errors', () => {
  /** The printed message of a config that fails to parse, as lines. */
  const syntaxError = (lines: string[]) => fail(() => parseConfigText(yaml(lines), FILE, Schema, {})).message.split('\n');
  const MISSING_COLON = "  hint: this line is missing the ':' after its key (write key: value, with a space after the ':')";
  const INDENT = '  hint: indentation does not line up with the lines above (keys of one block start in the same column; indent with spaces)';
  const AGENT = [
    'site: plant-7', //                  1
    'mqtt:', //                          2
    '  host: broker', //                 3
    '  port: 1883', //                   4
    'outbox:', //                        5
    '  dir: /var/outbox', //             6
    'collectors:', //                    7
    '  - type: file', //                 8
    '    path: /drop/orders', //         9
    '  - type: erp', //                  10
    '    url: http://erp', //            11
  ];

  it('prints only the first error with its hint, "N more", and keeps every error in context.issues', () => {
    // yaml reports a missing ':' before a nested block as a cascade of errors.
    const err = fail(() => parseConfigText(yaml(AGENT.map((l) => (l === 'collectors:' ? 'collectors' : l))), FILE, Schema, {}));
    expect(err.code).toBe('ERP_CONFIG_INVALID');
    expect(err.message.split('\n')).toEqual(['config/agent.yaml:7:1 Implicit keys need to be on a single line', MISSING_COLON, '  (6 more YAML errors)']);
    const issues = err.context.issues as { line: number; col: number; path: string; message: string; hint?: string }[];
    expect(issues).toHaveLength(7);
    expect(issues[0]).toEqual({ line: 7, col: 1, path: '', message: 'Implicit keys need to be on a single line', hint: MISSING_COLON.slice('  hint: '.length) });
    expect(err.context.file).toBe(FILE);
  });

  describe("a missing ':' points at the key's line, wherever yaml noticed it", () => {
    it('followed by more keys of its block', () => {
      expect(syntaxError(['site plant-7', 'mqtt:', '  host: broker'])).toEqual(['config/agent.yaml:1:1 Implicit keys need to be on a single line', MISSING_COLON]);
      expect(syntaxError(AGENT.map((l) => l.replace('host: broker', 'host broker')))[0]).toBe('config/agent.yaml:3:3 Implicit keys need to be on a single line');
    });

    it('as the last key of its block', () => {
      expect(syntaxError([...AGENT.slice(0, 4), '  tls true', ...AGENT.slice(4)])).toEqual([
        'config/agent.yaml:5:3 Implicit map keys need to be followed by map values',
        MISSING_COLON,
      ]);
    });

    it('in a list item', () => {
      expect(syntaxError(AGENT.map((l) => l.replace('- type: file', '- type file')))[0]).toBe('config/agent.yaml:8:5 Implicit keys need to be on a single line');
      expect(syntaxError(AGENT.map((l) => l.replace('url: http', 'url http')))).toEqual([
        'config/agent.yaml:11:5 Implicit map keys need to be followed by map values',
        MISSING_COLON,
      ]);
    });

    it('no space after the colon', () => {
      expect(syntaxError(['site:plant-7', 'mqtt:', '  host: broker'])).toEqual(['config/agent.yaml:1:1 Implicit keys need to be on a single line', MISSING_COLON]);
    });

    it('yaml noticing it only at the next key, after a comment line (top level and nested)', () => {
      expect(syntaxError(['site plant-7', '# the broker', 'mqtt:', '  host: broker'])).toEqual([
        'config/agent.yaml:1:1 Unexpected scalar token in YAML stream: "mqtt" (noticed at line 3)',
        MISSING_COLON,
        '  (4 more YAML errors)',
      ]);
      expect(syntaxError(['mqtt:', '  host broker', '  # plain MQTT', '  port: 1883'])).toEqual([
        'config/agent.yaml:2:3 All mapping items must start at the same column (noticed at line 4)',
        MISSING_COLON,
      ]);
    });
  });

  it('tabs', () => {
    expect(syntaxError(['site: plant-7', 'mqtt:', '\thost: broker'])).toEqual([
      'config/agent.yaml:3:1 Tabs are not allowed as indentation',
      '  hint: YAML indents with spaces, not tabs: replace the tab with spaces',
    ]);
  });

  describe('indentation', () => {
    it('a key indented less than its block', () => {
      expect(syntaxError(['mqtt:', '  host: broker', ' port: 1883'])).toEqual(['config/agent.yaml:3:1 All mapping items must start at the same column', INDENT]);
    });

    it('a key indented more than its block: at that line, not at the value above it where yaml noticed', () => {
      expect(syntaxError(['mqtt:', '  host: broker', '   port: 1883'])).toEqual([
        'config/agent.yaml:3:4 Nested mappings are not allowed in compact mappings (noticed at line 2)',
        INDENT,
        '  (1 more YAML error)',
      ]);
    });

    it('a list item key out of line with the one above', () => {
      expect(syntaxError(AGENT.map((l) => l.replace('    path: /drop', '   path: /drop')))[0]).toBe('config/agent.yaml:9:1 Sequence item without - indicator');
      expect(syntaxError(AGENT.map((l) => l.replace('    path: /drop', '   path: /drop')))[1]).toBe(INDENT);
      expect(syntaxError(AGENT.map((l) => l.replace('  - type: erp', ' - type: erp'))).slice(0, 2)).toEqual([
        'config/agent.yaml:10:1 A block sequence may not be used as an implicit map key',
        INDENT,
      ]);
    });

    it('an over-indented key below a comment: at the key, not at the comment where yaml noticed', () => {
      expect(syntaxError(['mqtt:', '  host: broker', '  # the port', '   port: 1883']).slice(0, 2)).toEqual([
        'config/agent.yaml:4:4 All mapping items must start at the same column (noticed at line 3)',
        INDENT,
      ]);
    });

    it('a block of text (|) is not taken for a key without its colon', () => {
      expect(syntaxError(['site: |', '  plant 7', ' mqtt: 1'])).toEqual(['config/agent.yaml:3:1 All mapping items must start at the same column', INDENT]);
    });
  });

  it('an unclosed quote, at the opening quote rather than at the end of the file', () => {
    expect(syntaxError(AGENT.map((l) => l.replace('host: broker', 'host: "broker')))).toEqual([
      'config/agent.yaml:3:9 Missing closing "quote (noticed at line 12)',
      '  hint: a quoted value is not closed: add the closing "',
    ]);
    expect(syntaxError(AGENT.map((l) => l.replace('dir: /var/outbox', "dir: '/var/outbox")))[1]).toBe("  hint: a quoted value is not closed: add the closing '");
  });

  it('an unclosed [ list, at its [', () => {
    expect(syntaxError(['site: [plant-7, plant-8', 'mqtt:', '  host: broker'])).toEqual([
      'config/agent.yaml:1:7 Flow sequence in block collection must be sufficiently indented and end with a ] (noticed at line 2)',
      "  hint: a '[' is not closed with ']'",
    ]);
  });

  it('a duplicate key, naming the line of the first', () => {
    expect(syntaxError(['site: a', 'mqtt:', '  host: b', 'site: c'])).toEqual([
      'config/agent.yaml:4:1 Map keys must be unique',
      '  hint: the key appears twice (first on line 1): keep one',
    ]);
  });

  it("a value with ': ' in it", () => {
    expect(syntaxError(['site: a', 'mqtt:', '  host: a: b'])).toEqual([
      'config/agent.yaml:3:9 Nested mappings are not allowed in compact mappings',
      "  hint: the value contains ': ' (a colon and a space): put the whole value in quotes",
    ]);
  });

  it('a Windows path in double quotes', () => {
    expect(syntaxError(['site: a', 'dir: "C:\\data\\in"'])).toEqual([
      'config/agent.yaml:2:9 Invalid escape sequence \\d',
      "  hint: inside double quotes a backslash starts an escape: write Windows paths in single quotes ('C:\\data\\in') or with forward slashes",
      '  (1 more YAML error)',
    ]);
  });

  it("text after a closing quote (an apostrophe inside '...')", () => {
    expect(syntaxError(["site: 'plant's'"])).toEqual([
      'config/agent.yaml:1:14 Unexpected scalar at node end',
      "  hint: there is text after the closing quote: quote the whole value (inside '...' write a ' as '')",
    ]);
  });

  it('a value starting with a reserved character', () => {
    expect(syntaxError(['site: @plant'])).toEqual([
      'config/agent.yaml:1:7 Plain value cannot start with reserved character @',
      '  hint: a value that starts with this character must be put in quotes',
    ]);
  });

  it('an unquoted *.csv (a YAML alias), with its key path', () => {
    const S = z.object({ include: z.array(z.string()) });
    const err = fail(() => parseConfigText(yaml(['include:', '  - "*.tsv"', '  - *.csv']), FILE, S, {}));
    expect(err.message.split('\n')).toEqual([
      'config/agent.yaml:3:5 include[1]: unknown YAML alias *.csv',
      "  hint: a value that starts with '*' must be put in quotes, e.g. '*.csv'",
    ]);
    // A real alias still works.
    expect(parseConfigText(yaml(['x: &p "*.csv"', 'include: [*p]']), FILE, z.object({ x: z.string(), include: z.array(z.string()) }), {}).include).toEqual(['*.csv']);
  });

  it('two documents in one file', () => {
    expect(syntaxError(['site: a', '---', 'site: b'])[1]).toBe("  hint: the file holds more than one YAML document (a '---' line): a config file is one document");
  });

  it('an error with no known hint is printed as yaml gives it', () => {
    expect(syntaxError(['site: !!int x', 'a: &x 1', 'b: &y &z 2'])).toEqual(['config/agent.yaml:3:7 A node can have at most one anchor']);
  });
});

describe('parseConfigText: environment substitution', () => {
  const withEnv = (lines: string[]) => yaml(['site: ${SITE:-plant-9}', 'mqtt:', ...lines, 'outbox:', '  dir: /var/outbox']);

  it('substitutes ${VAR} and ${VAR:-default} in values; special characters cannot break YAML', () => {
    const env = { MQTT_HOST: 'broker.local', MQTT_PASS: 'p:w # not a comment' };
    const cfg = parseConfigText(withEnv(['  host: mqtt://${MQTT_HOST}:8883', '  port: 1883', '  password: ${MQTT_PASS}']), FILE, Schema, env);
    expect(cfg.site).toBe('plant-9');
    expect(cfg.mqtt.host).toBe('mqtt://broker.local:8883');
    expect(cfg.mqtt.password).toBe('p:w # not a comment');
    // As in the shell, `:-` also covers an empty variable.
    expect(parseConfigText(withEnv(['  host: h', '  port: 1']), FILE, Schema, { SITE: '' }).site).toBe('plant-9');
    expect(parseConfigText(withEnv(['  host: h', '  port: 1']), FILE, Schema, { SITE: 'p3' }).site).toBe('p3');
  });

  it('treats $${ as a literal ${', () => {
    const cfg = parseConfigText(withEnv(['  host: "cost $${HOME} and $${X:-y}"', '  port: 1']), FILE, Schema, { HOME: '/root' });
    expect(cfg.mqtt.host).toBe('cost ${HOME} and ${X:-y}');
  });

  it('does not substitute in keys', () => {
    const cfg = parseConfigText('"${NOPE}": x\n', FILE, z.record(z.string(), z.string()), {});
    expect(cfg).toEqual({ '${NOPE}': 'x' });
  });

  it('types a lone unquoted reference as number/boolean; quoted stays a string', () => {
    const S = z.object({ port: z.number(), tls: z.boolean(), pin: z.string(), name: z.string() });
    const text = yaml(['port: ${PORT}', 'tls: ${TLS:-true}', 'pin: "${PIN}"', 'name: v${PORT}']);
    expect(parseConfigText(text, FILE, S, { PORT: '1884', PIN: '0042' })).toEqual({ port: 1884, tls: true, pin: '0042', name: 'v1884' });
    const err = fail(() => parseConfigText(text, FILE, S, { PORT: 'eighteen', PIN: '1' }));
    expect(err.message).toBe('config/agent.yaml:1:7 port: expected number, got string');
  });

  it('reports a missing variable by name, never leaking other values', () => {
    const secret = 'S3cr3t-Hunter2';
    const err = fail(() => parseConfigText(withEnv(['  host: ${MQTT_HOST}', '  port: 1883', '  password: ${MQTT_PASS}']), FILE, Schema, { MQTT_HOST: secret }));
    expect(err.code).toBe('ERP_CONFIG_ENV_MISSING');
    expect(err.message).toBe(
      'config/agent.yaml:5:13 mqtt.password: environment variable MQTT_PASS is not set (use ${MQTT_PASS:-default} for a default)',
    );
    expect(err.context).toMatchObject({ file: FILE, line: 5, col: 13, path: 'mqtt.password', variable: 'MQTT_PASS' });
    expect(JSON.stringify(err.context)).not.toContain(secret);
  });

  it('never puts an env value into a validation message, even when zod quotes the input', () => {
    const secret = 'S3cr3t-Hunter2';
    const text = withEnv(['  host: ${MQTT_HOST}', '  port: ${MQTT_PASS}']).replace('/var/outbox', '/var/outbox\n  retention: ${MQTT_PASS}');
    const err = fail(() => parseConfigText(text, FILE, Schema, { MQTT_HOST: secret, MQTT_PASS: secret }));
    expect(err.message).toBe(
      [
        'config/agent.yaml:4:9 mqtt.port: expected number, got string',
        'config/agent.yaml:7:14 outbox.retention: expected a duration such as "30s", "15m", "24h" or milliseconds, got "${MQTT_PASS}"',
      ].join('\n'),
    );
    expect(err.message).not.toContain(secret);
    expect(JSON.stringify(err.context)).not.toContain(secret);
  });

  it('rejects a malformed reference with its position', () => {
    const err = fail(() => parseConfigText(withEnv(['  host: ${MQTT HOST}', '  port: 1']), FILE, Schema, {}));
    expect(err.code).toBe('ERP_CONFIG_INVALID');
    expect(err.message).toBe('config/agent.yaml:3:9 mqtt.host: malformed environment reference ${MQTT HOST} (expected ${NAME} or ${NAME:-default})');
  });
});

describe('loadConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'erp-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a file and labels issues with the path as given', () => {
    const path = join(dir, 'agent.yaml');
    writeFileSync(path, yaml([...BASE, '  max_bytes: ${MAX:-2048}']));
    expect(loadConfigFile(path, Schema, {}).outbox.max_bytes).toBe(2048);
    writeFileSync(path, yaml(['site: 1']));
    const err = fail(() => loadConfigFile(path, Schema, {}));
    expect(err.message.split('\n')[0]).toBe(`${path}:1:1 mqtt: required`);
    expect(err.context.file).toBe(path);
  });

  it('reports an unreadable path with the OS error code', () => {
    const missing = join(dir, 'nope.yaml');
    const err = fail(() => loadConfigFile(missing, Schema, {}));
    expect(err.code).toBe('ERP_CONFIG_UNREADABLE');
    expect(err.message).toBe(`cannot read config file ${missing}: ENOENT`);
    expect(err.context).toEqual({ file: missing, code: 'ENOENT' });
    expect(fail(() => loadConfigFile(dir, Schema, {})).context.code).toBe('EISDIR');
  });
});
