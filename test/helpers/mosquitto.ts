// Shared with the bench, which owns it (bench/lib).
export { MosquittoProcess } from '../../bench/lib/mosquitto.js';
