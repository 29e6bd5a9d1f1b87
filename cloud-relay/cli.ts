import { createLogger } from '../common/logger.js';
import { describeError, fail, loadOrExit, parseCommand, runService } from '../common/cli.js';
import { loadTls } from '../common/tls.js';
import { scrubProcessOutput, secretValues } from '../common/secrets.js';
import { loadRelayConfig } from './config.js';
import { Relay } from './relay.js';
import { runHashPassword } from './auth/hash-password-cli.js';
import { runDlq } from './sinks/dlq-cli.js';

const USAGE = `usage: cloud-relay <run|validate> --config FILE
       cloud-relay hash-password < password.txt   (prints a scrypt hash for auth.users[].password_hash)
       cloud-relay dlq <list|retry|discard> --config FILE [--sink S --site S --agent A --stream S --id N]`;

// No top-level await: the packaged executable runs this module as CommonJS.
main(process.argv.slice(2)).catch((err: unknown) => fail(describeError(err)));

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'hash-password') {
    process.exit(await runHashPassword());
  }
  if (argv[0] === 'dlq') process.exit(await runDlq(argv.slice(1)));
  const { command, config } = parseCommand(argv, ['run', 'validate'], USAGE);
  const cfg = loadOrExit(() => loadRelayConfig(config));
  // From here on nothing this command prints (validate, errors, logs) can carry a secret of the config.
  const secrets = secretValues(cfg);
  scrubProcessOutput(secrets);
  if (command === 'validate') {
    // The certificate files too: missing, not PEM, key not matching, expired (common/tls.ts).
    const brokerTls = cfg.broker === 'embedded' ? undefined : cfg.broker.tls;
    const tls = brokerTls ? loadOrExit(() => loadTls(brokerTls, 'broker.tls')) : undefined;
    if (tls && tls.problems.length > 0) fail(tls.problems.map(describeError).join('\n'));
    process.stdout.write(`OK ${config}${tls?.cert ? `: client certificate ${tls.cert.subject} valid until ${tls.cert.validTo.toISOString()}` : ''}\n`);
  } else {
    const logger = createLogger({ level: cfg.log_level, name: 'cloud-relay', secrets });
    await runService(logger, 'relay', () => Relay.start(cfg, logger));
  }
}
