import { createLogger } from '../common/logger.js';
import { describeError, fail, loadOrExit, parseCommand, runService } from '../common/cli.js';
import { loadRelayConfig } from './config.js';
import { Relay } from './relay.js';
import { runHashPassword } from './auth/hash-password-cli.js';

const USAGE = `usage: cloud-relay <run|validate> --config FILE
       cloud-relay hash-password < password.txt   (prints a scrypt hash for auth.users[].password_hash)`;

// No top-level await: the packaged executable runs this module as CommonJS.
main(process.argv.slice(2)).catch((err: unknown) => fail(describeError(err)));

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'hash-password') {
    process.exit(await runHashPassword());
  }
  const { command, config } = parseCommand(argv, ['run', 'validate'], USAGE);
  const cfg = loadOrExit(() => loadRelayConfig(config));
  if (command === 'validate') {
    process.stdout.write(`OK ${config}\n`);
  } else {
    const logger = createLogger({ level: cfg.log_level, name: 'cloud-relay' });
    await runService(logger, 'relay', () => Relay.start(cfg, logger));
  }
}
