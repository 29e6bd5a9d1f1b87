// The proxy lives with the bench and chaos tooling (bench/lib); tests use the same one.
export { TcpProxy } from '../../bench/lib/tcp-proxy.js';
