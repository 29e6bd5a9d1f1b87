import pkg from '../package.json' with { type: 'json' };

/** The agent's version, from package.json (presence, status and logs say which release runs). */
export const AGENT_VERSION: string = pkg.version;
