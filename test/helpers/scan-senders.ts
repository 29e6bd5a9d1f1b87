// Shared with the bench, which owns them (bench/lib).
export { dialScanner, prng, scanLines, writeSplit } from '../../bench/lib/scan-senders.js';
