import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Backplane } from './backplane/types.js';
import type { Logger } from './log.js';
import { replies } from './protocol/replies.js';
import { Session } from './session.js';

// The TCP side of one chat process: accepts clients, owns their sessions, routes deliveries
// from the backplane to them by connection id, and drains them on shutdown.

export interface ChatServerOptions {
  workerId: string;
  log: Logger;
  maxLineBytes: number;
  maxPendingBytes: number;
}

export class ChatServer {
  private readonly sessions = new Map<string, Session>();
  private readonly tcp: Server;
  private backplane: Backplane | undefined;
  private connectionCount = 0;

  constructor(private readonly options: ChatServerOptions) {
    this.tcp = createServer((socket) => this.accept(socket));
  }

  /** The delivery sink to hand to the backplane. */
  readonly deliver = (connectionId: string, line: string): void => {
    this.sessions.get(connectionId)?.deliver(line);
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

  /** Stops accepting, tells every client, and resolves once each one is logged out. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    const finished = [...this.sessions.values()].map((session) => {
      session.closeWith(replies.shuttingDown());
      return session.finished;
    });
    await Promise.all([closed, ...finished]);
  }

  private accept(socket: Socket): void {
    const backplane = this.backplane!;
    const { workerId, log } = this.options;
    const id = `${workerId}.${(++this.connectionCount).toString(36)}`;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    // Registered before the session's own close handler, which logs the user out.
    socket.once('close', () => {
      this.sessions.delete(id);
      log.info({ connection: id, remote, user: session.user }, 'connection closed');
    });
    const session = new Session(id, socket, {
      backplane,
      log,
      maxLineBytes: this.options.maxLineBytes,
      maxPendingBytes: this.options.maxPendingBytes,
    });
    this.sessions.set(id, session);
    log.info({ connection: id, remote }, 'connection opened');
  }
}
