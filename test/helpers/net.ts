// Shared with the bench, which owns them (bench/lib).
export { canConnect, freePort, waitFor } from '../../bench/lib/net.js';
