import { createLogger } from '../common/logger.js';
import { loadOrExit, parseCommand, runService } from '../common/cli.js';
import { loadRelayConfig } from './config.js';
import { Relay } from './relay.js';
import { runHashPassword } from './auth/hash-password-cli.js';

const USAGE = `usage: cloud-relay <run|validate> --config FILE
       cloud-relay hash-password < password.txt   (prints a scrypt hash for auth.users[].password_hash)`;

const argv = process.argv.slice(2);
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
