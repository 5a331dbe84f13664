import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backplane } from './backplane/types.js';
import type { Config } from './config.js';
import { InputBudget } from './input-budget.js';
import { listenOn } from './listen.js';
import type { Logger } from './log.js';
import { metrics } from './metrics.js';
import { replies } from './protocol/replies.js';
import { Session, type SessionLimits } from './session.js';

// The TCP side of one chat process: accepts clients, owns their sessions, enforces the limits
// that span connections (per worker, per address, total output), and drains them on shutdown.

export type ServerLimits = SessionLimits & Pick<Config,
  'maxConnections' | 'maxConnectionsPerIp' | 'maxWorkerPendingBytes' | 'idleTimeoutMs' | 'loginTimeoutMs' | 'keepaliveMs'>;

export interface ChatServerOptions {
  /** Prefix of connection ids in logs. */
  tag: string;
  log: Logger;
  limits: ServerLimits;
}

// Clients told to go at shutdown are spread out, this far apart at most, so thousands of them
// do not all reconnect to the rest of the cluster in the same instant.
const SHUTDOWN_SPACING_MS = 5;
/** How often timeouts and the worker's total output are checked. */
const SWEEP_MS = 250;
/** Output shedding stops once the total is back under this share of the cap. */
const SHED_TO_SHARE = 0.9;
/** Commands read and not yet answered, across the worker (see input-budget.ts). */
const WORKER_INPUT_BYTES = 16 * 1024 * 1024;

export class ChatServer {
  private readonly sessions = new Map<string, Session>();
  private readonly perAddress = new Map<string, number>();
  private readonly listeners: Server[] = [];
  private readonly input = new InputBudget(WORKER_INPUT_BYTES);
  private readonly sweeper: NodeJS.Timeout;
  private backplane: Backplane | undefined;
  private connectionCount = 0;

  constructor(private readonly options: ChatServerOptions) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Listens for plain TCP clients. */
  async listen(backplane: Backplane, host: string, port: number): Promise<AddressInfo> {
    this.backplane = backplane;
    const tcp = createServer((socket) => this.accept(socket));
    await listenOn(tcp, host, port, 'PORT');
    this.listeners.push(tcp);
    return tcp.address() as AddressInfo;
  }

  get clientCount(): number {
    return this.sessions.size;
  }

  /**
   * Stops accepting, tells every client (spread over at most `spreadMs`), and resolves once
   * each one is logged out.
   */
  async close(spreadMs: number): Promise<void> {
    clearInterval(this.sweeper);
    const closed = Promise.all(this.listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve()))));
    const sessions = [...this.sessions.values()];
    const spacing = Math.min(SHUTDOWN_SPACING_MS, spreadMs / Math.max(1, sessions.length));
    const finished: Promise<void>[] = [];
    const started = performance.now();
    for (const [index, session] of sessions.entries()) {
      const due = started + index * spacing;
      // Batches of whatever is due, rather than one timer per client.
      if (due - performance.now() >= 1) await sleep(due - performance.now());
      session.closeWith(replies.shuttingDown(), 'shutdown');
      finished.push(session.finished);
    }
    await Promise.all([closed, ...finished]);
  }

  private accept(socket: Socket): void {
    const { log, limits } = this.options;
    const id = `${this.options.tag}.${(++this.connectionCount).toString(36)}`;
    const address = socket.remoteAddress ?? 'unknown';
    const remote = `${address}:${socket.remotePort}`;
    metrics.connectionsOpened.inc();
    const refuse = (line: string, reason: 'server_full' | 'per_ip_limit') => {
      log.warn({ remote, clients: this.sessions.size, reason }, 'refusing a client');
      metrics.connectionsClosed.inc({ reason });
      socket.on('error', () => {});
      socket.end(line);
    };
    if (this.sessions.size >= limits.maxConnections) return refuse(replies.serverFull(), 'server_full');
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (limits.maxConnectionsPerIp > 0 && fromAddress >= limits.maxConnectionsPerIp) {
      return refuse(replies.tooManyConnections(), 'per_ip_limit');
    }
    this.perAddress.set(address, fromAddress + 1);
    if (limits.keepaliveMs > 0) socket.setKeepAlive(true, limits.keepaliveMs);
    // Registered before the session's own close handler, which logs the user out.
    socket.once('close', () => {
      this.sessions.delete(id);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
      metrics.connectionsOpen.dec();
      metrics.connectionsClosed.inc({ reason: session.reasonForClose });
      log.info({ connection: id, remote, user: session.user, reason: session.reasonForClose }, 'connection closed');
    });
    const session = new Session(id, socket, { backplane: this.backplane!, log, limits, input: this.input });
    this.sessions.set(id, session);
    metrics.connectionsOpen.inc();
    log.info({ connection: id, remote }, 'connection opened');
  }

  /** Closes connections past their idle or login deadline, and sheds output past the worker's cap. */
  private sweep(): void {
    const { limits } = this.options;
    const now = performance.now();
    let pending = 0;
    for (const session of this.sessions.values()) {
      // A session told to go is destroyed within its grace period, backlog and all.
      if (session.isClosing) continue;
      pending += session.pendingBytes;
      if (limits.idleTimeoutMs > 0 && now - session.lastCommandAt > limits.idleTimeoutMs) {
        session.closeWith(replies.idleTimeout(), 'idle');
      } else if (limits.loginTimeoutMs > 0 && session.loggedOutSince !== undefined && now - session.loggedOutSince > limits.loginTimeoutMs) {
        session.closeWith(replies.loginTimeout(), 'login_timeout');
      }
    }
    metrics.pendingOutputBytes.set(pending);
    if (pending > limits.maxWorkerPendingBytes) this.shed(pending);
  }

  /** Closes the connections with the largest backlogs until the worker's total is back under its cap. */
  private shed(pending: number): void {
    const { log, limits } = this.options;
    const target = limits.maxWorkerPendingBytes * SHED_TO_SHARE;
    const largestFirst = [...this.sessions.values()].filter((session) => !session.isClosing)
      .sort((a, b) => b.pendingBytes - a.pendingBytes);
    let shed = 0;
    for (const session of largestFirst) {
      if (pending <= target || session.pendingBytes === 0) break;
      pending -= session.pendingBytes;
      session.closeWith(replies.tooMuchPendingOutput(), 'output_shed');
      shed++;
    }
    log.warn({ shed, pendingBytes: pending, capBytes: limits.maxWorkerPendingBytes },
      'worker output over MAX_WORKER_PENDING_BYTES: closed the clients with the largest backlogs');
  }
}
