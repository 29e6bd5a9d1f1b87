// Shared with the bench, which owns them (bench/lib).
export { findBinary, mosquittoBinary, MOSQUITTO_INSTALL, requireBinary } from '../../bench/lib/requirements.js';
