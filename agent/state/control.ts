import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { mkdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ErpEdgeError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';

/**
 * The running agent's local control endpoint: HTTP over a Unix socket in the data folder (a named
 * pipe on Windows), so `edge-agent status` and `deadletter` reach the running agent without a TCP
 * port, and only users who may read the data folder can use it. It also keeps a second agent off
 * the same outbox.
 */
export function controlSocketPath(dataDir: string): string {
  const id = createHash('sha256').update(dataDir).digest('hex').slice(0, 16);
  if (process.platform === 'win32') return `\\\\.\\pipe\\erp-edge-agent-${id}`;
  const inDataDir = join(dataDir, 'agent.sock');
  // Unix socket paths are limited to ~107 bytes: a deep data folder uses the temp folder instead.
  return Buffer.byteLength(inDataDir) <= 100 ? inDataDir : join(tmpdir(), `erp-edge-agent-${id}.sock`);
}

export type ControlHandler = (req: { method: string; path: string; query: URLSearchParams; body: unknown }) => Promise<{ status: number; body: unknown }>;

export interface ControlServer {
  path: string;
  close(): Promise<void>;
}

/** Whether an agent answers on this socket now. */
export function isAgentRunning(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Listens on the control socket; refuses to start if another agent already answers there. Listens
 * first and looks after: two agents started at the same moment cannot both pass a look-then-listen.
 */
export async function startControlServer(path: string, handler: ControlHandler, log: Logger): Promise<ControlServer> {
  if (process.platform !== 'win32') mkdirSync(dirname(path), { recursive: true });
  const server: Server = createServer((req, res) => void serve(req, res, handler, log));
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await listen();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (await isAgentRunning(path)) {
      throw new ErpEdgeError('ERP_AGENT_RUNNING', `another edge-agent is already running with this data_dir (control socket ${path}); stop it first`, { socket: path });
    }
    // Left behind by a killed agent: nothing answers on it.
    unlinkSync(path);
    await listen();
  }
  server.on('error', (err) => log.error({ err: { message: err.message } }, 'control socket error'));
  return {
    path,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, handler: ControlHandler, log: Logger): Promise<void> {
  let status = 500;
  let body: unknown;
  try {
    const url = new URL(req.url ?? '/', 'http://agent');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    ({ status, body } = await handler({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, body: parsed }));
  } catch (err) {
    log.warn({ err: { message: (err as Error).message } }, 'control request failed');
    body = { error: (err as Error).message, code: (err as { code?: string }).code };
    status = (err as { code?: string }).code?.startsWith('ERP_') ? 400 : 500;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A request to the running agent; undefined when no agent answers on the socket. */
export async function controlRequest<T>(path: string, method: 'GET' | 'POST', url: string, body?: unknown): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve, reject) => {
    const req = request({ socketPath: path, method, path: url, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          return reject(new ErpEdgeError('ERP_CONTROL_FAILED', `the agent answered ${res.statusCode} with non-JSON`, { status: res.statusCode }));
        }
        if ((res.statusCode ?? 500) >= 400) {
          const e = parsed as { error?: string };
          return reject(new ErpEdgeError('ERP_CONTROL_FAILED', e.error ?? `the agent answered ${res.statusCode}`, { status: res.statusCode }));
        }
        resolve(parsed as T);
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // No socket, or nothing listening on it (a killed agent's): the agent is not running.
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(undefined);
      else reject(new ErpEdgeError('ERP_CONTROL_FAILED', `cannot reach the agent: ${err.message}`, { socket: path }, { cause: err }));
    });
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
