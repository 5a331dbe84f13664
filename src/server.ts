import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backplane } from './backplane/types.js';
import type { Logger } from './log.js';
import { replies } from './protocol/replies.js';
import { Session, type SessionLimits } from './session.js';

// The TCP side of one chat process: accepts clients, owns their sessions, routes deliveries
// from the backplane to them by connection id, and drains them on shutdown.

export interface ChatServerOptions {
  workerId: string;
  log: Logger;
  limits: SessionLimits;
  maxConnections: number;
}

// Clients told to go at shutdown are spread out, this far apart at most, so thousands of them
// do not all reconnect to the rest of the cluster in the same instant.
const SHUTDOWN_SPACING_MS = 5;

export class ChatServer {
  private readonly sessions = new Map<string, Session>();
  private readonly tcp: Server;
  private backplane: Backplane | undefined;
  private connectionCount = 0;

  constructor(private readonly options: ChatServerOptions) {
    this.tcp = createServer((socket) => this.accept(socket));
  }

  /** The delivery sink to hand to the backplane. */
  readonly deliver = (connectionId: string, lines: string | Uint8Array): void => {
    this.sessions.get(connectionId)?.deliver(lines);
  };

  async listen(backplane: Backplane, host: string, port: number): Promise<AddressInfo> {
    this.backplane = backplane;
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen({ host, port }, () => {
        this.tcp.off('error', reject);
        resolve();
      });
    });
    return this.tcp.address() as AddressInfo;
  }

  get clientCount(): number {
    return this.sessions.size;
  }

  /** Every session, for re-registering them with the shared state. */
  get allSessions(): Iterable<Session> {
    return this.sessions.values();
  }

  /**
   * Stops accepting, tells every client (spread over at most `spreadMs`), and resolves once
   * each one is logged out.
   */
  async close(spreadMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    const sessions = [...this.sessions.values()];
    const spacing = Math.min(SHUTDOWN_SPACING_MS, spreadMs / Math.max(1, sessions.length));
    const finished: Promise<void>[] = [];
    const started = performance.now();
    for (const [index, session] of sessions.entries()) {
      const due = started + index * spacing;
      // Batches of whatever is due, rather than one timer per client.
      if (due - performance.now() >= 1) await sleep(due - performance.now());
      session.closeWith(replies.shuttingDown());
      finished.push(session.finished);
    }
    await Promise.all([closed, ...finished]);
  }

  private accept(socket: Socket): void {
    const backplane = this.backplane!;
    const { workerId, log } = this.options;
    const id = `${workerId}.${(++this.connectionCount).toString(36)}`;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.sessions.size >= this.options.maxConnections) {
      log.warn({ remote, clients: this.sessions.size }, 'refusing a client: server full');
      socket.on('error', () => {});
      socket.end(replies.serverFull());
      return;
    }
    // Registered before the session's own close handler, which logs the user out.
    socket.once('close', () => {
      this.sessions.delete(id);
      log.info({ connection: id, remote, user: session.user }, 'connection closed');
    });
    const session = new Session(id, socket, { backplane, log, limits: this.options.limits });
    this.sessions.set(id, session);
    log.info({ connection: id, remote }, 'connection opened');
  }
}
