import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import type { Backplane } from './backplane/types.js';
import type { Config } from './config.js';
import { InputBudget } from './input-budget.js';
import { listenOn } from './listen.js';
import type { Logger } from './log.js';
import { type CloseReason, metrics } from './metrics.js';
import { type AddressSlots, LocalAddressSlots, type Release } from './net/address-slots.js';
import { applyKeepalive } from './net/keepalive.js';
import { type ProxyHeader, ProxyHeaderReader } from './net/proxy-protocol.js';
import type { TlsCertificates } from './net/tls-certificates.js';
import { replies } from './protocol/replies.js';
import { Session, type SessionLimits } from './session.js';

// The TCP side of one chat process: accepts clients, owns their sessions, enforces the limits
// that span connections (per worker, per address, total output), and drains them on shutdown.
//
// A connection goes through these steps, each bounded in time, before it is a session:
//   1. accepted: keepalive on (net/keepalive.ts);
//   2. with PROXY_PROTOCOL, its v2 header read: from then on the client's address is the one the
//      balancer names. No valid header within PROXY_HEADER_TIMEOUT_MS: closed without a word
//      (whoever it is, it is not a chat client speaking through our balancer);
//   3. on the TLS listener, its handshake (net/tls-certificates.ts);
//   4. admitted: under MAX_CONNECTIONS and MAX_CONNECTIONS_PER_IP, else told which and closed.

export type ServerLimits = SessionLimits & Pick<Config,
  'maxConnections' | 'maxConnectionsPerIp' | 'maxWorkerPendingBytes' | 'idleTimeoutMs' | 'loginTimeoutMs' | 'keepaliveMs'>;

export interface ChatServerOptions {
  /** Prefix of connection ids in logs. */
  tag: string;
  log: Logger;
  limits: ServerLimits;
  /** Every connection starts with a PROXY protocol v2 header (default: no). */
  proxyProtocol?: boolean;
  /** Where MAX_CONNECTIONS_PER_IP is counted: this process (the default), or the instance's primary. */
  addressSlots?: AddressSlots;
}

/** Where a listener is: its address, and the setting that chose its port (named in bind errors). */
interface Endpoint {
  host: string;
  port: number;
  variable: 'PORT' | 'TLS_PORT';
}

/** A client's address as logs and the per-address limit see it. */
interface Peer {
  address: string;
  port: number;
}

/** How long a balancer has to send its PROXY header after connecting (it sends it at once). */
export const PROXY_HEADER_TIMEOUT_MS = 5000;

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
  /** Accepted and not yet sessions: reading a PROXY header, in a TLS handshake, or being admitted. */
  private readonly arriving = new Set<Socket>();
  private readonly listeners: Server[] = [];
  private readonly input = new InputBudget(WORKER_INPUT_BYTES);
  private readonly sweeper: NodeJS.Timeout;
  private readonly proxyProtocol: boolean;
  private readonly addressSlots: AddressSlots;
  private backplane: Backplane | undefined;
  private connectionCount = 0;
  private closing = false;

  constructor(private readonly options: ChatServerOptions) {
    this.proxyProtocol = options.proxyProtocol ?? false;
    this.addressSlots = options.addressSlots ?? new LocalAddressSlots(options.limits.maxConnectionsPerIp);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Listens for plain TCP clients; a port that cannot be bound is a BindError naming PORT. */
  listen(backplane: Backplane, host: string, port: number): Promise<AddressInfo> {
    return this.bind(backplane, { host, port, variable: 'PORT' }, undefined);
  }

  /** Listens for TLS clients, presenting `tls`'s certificate; bind errors name TLS_PORT. */
  listenTls(backplane: Backplane, host: string, port: number, tls: TlsCertificates): Promise<AddressInfo> {
    return this.bind(backplane, { host, port, variable: 'TLS_PORT' }, tls);
  }

  private async bind(backplane: Backplane, endpoint: Endpoint, tls: TlsCertificates | undefined): Promise<AddressInfo> {
    this.backplane = backplane;
    const listener = createServer((socket) => this.arrive(socket, tls));
    await listenOn(listener, endpoint.host, endpoint.port, endpoint.variable);
    this.listeners.push(listener);
    return listener.address() as AddressInfo;
  }

  get clientCount(): number {
    return this.sessions.size;
  }

  /**
   * Stops accepting, tells every client (spread over at most `spreadMs`), and resolves once
   * each one is logged out.
   */
  async close(spreadMs: number): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    // Not yet clients: nothing to tell them, no one to log out.
    for (const socket of this.arriving) socket.destroy();
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

  /** Step 1 (and 2, 3): a TCP connection on one of our listeners. */
  private arrive(socket: Socket, tls: TlsCertificates | undefined): void {
    metrics.connectionsOpened.inc();
    if (this.closing) return void socket.destroy();
    this.arriving.add(socket);
    // Until a session owns it: a reset during the header or handshake is not worth a log line.
    socket.on('error', () => {});
    applyKeepalive(socket, this.options.limits.keepaliveMs);
    const peer: Peer = { address: clientAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
    let stage: CloseReason = this.proxyProtocol ? 'proxy_header' : tls ? 'tls_handshake' : 'client';
    // Counts the close of a connection that never became a session and was not refused.
    let accounted = false;
    const settled = () => {
      accounted = true;
      this.arriving.delete(socket);
    };
    socket.once('close', () => {
      this.arriving.delete(socket);
      if (!accounted) metrics.connectionsClosed.inc({ reason: stage });
    });
    const next = (client: Peer, via: Peer | undefined) => {
      if (!tls) return this.admit(socket, client, via, settled);
      stage = 'tls_handshake';
      tls.handshake(socket, (secure) => this.admit(secure, client, via, settled));
    };
    if (!this.proxyProtocol) return next(peer, undefined);
    readProxyHeader(socket, (result) => {
      if ('reason' in result) {
        if (result.silent) {
          // Connected and left without a byte (a TCP health check, a port scan): nothing was refused.
          stage = 'client';
        } else {
          this.options.log.warn({ remote: endpointText(peer), reason: result.reason },
            'closing a connection without a valid PROXY protocol v2 header (PROXY_PROTOCOL=true)');
        }
        return void socket.destroy();
      }
      // LOCAL: the balancer's own connection (a health check); it stands for itself.
      next(result.command === 'PROXY' ? { address: result.source.address, port: result.source.port } : peer, peer);
    });
  }

  /** Step 4: under the limits, a session; else one ERROR line naming the limit, and closed. */
  private admit(socket: Socket | TLSSocket, client: Peer, via: Peer | undefined, settled: () => void): void {
    const { log, limits } = this.options;
    const remote = endpointText(client);
    const where = via ? { remote, via: endpointText(via) } : { remote };
    if (this.closing || socket.destroyed) return void socket.destroy();
    const refuse = (line: string, reason: 'server_full' | 'per_ip_limit') => {
      settled();
      log.warn({ ...where, clients: this.sessions.size, reason }, 'refusing a client');
      metrics.connectionsClosed.inc({ reason });
      socket.end(line);
      // One that does not read its refusal is not kept for it.
      setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
    };
    if (this.sessions.size >= limits.maxConnections) return refuse(replies.serverFull(), 'server_full');
    if (limits.maxConnectionsPerIp === 0) return this.open(socket, where, undefined, settled);
    const slot = this.addressSlots.acquire(client.address);
    const decide = (release: Release | undefined) => {
      if (this.closing || socket.destroyed) {
        release?.();
        return void socket.destroy();
      }
      if (!release) return refuse(replies.tooManyConnections(), 'per_ip_limit');
      this.open(socket, where, release, settled);
    };
    if (slot instanceof Promise) void slot.then(decide);
    else decide(slot);
  }

  private open(socket: Socket | TLSSocket, where: { remote: string; via?: string }, release: Release | undefined, settled: () => void): void {
    const { log, limits } = this.options;
    settled();
    const id = `${this.options.tag}.${(++this.connectionCount).toString(36)}`;
    // Registered before the session's own close handler, which logs the user out.
    socket.once('close', () => {
      this.sessions.delete(id);
      release?.();
      metrics.connectionsOpen.dec();
      metrics.connectionsClosed.inc({ reason: session.reasonForClose });
      log.info({ connection: id, ...where, user: session.user, reason: session.reasonForClose }, 'connection closed');
    });
    const session = new Session(id, socket, { backplane: this.backplane!, log, limits, input: this.input });
    this.sessions.set(id, session);
    // A socket paused while its header was read (or its admission awaited) starts reading now.
    socket.resume();
    metrics.connectionsOpen.inc();
    log.info({ connection: id, ...where, ...('encrypted' in socket ? { tls: true } : {}) }, 'connection opened');
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

/** A refused client gets this long to read its ERROR line. */
const REFUSAL_GRACE_MS = 2000;

function endpointText({ address, port }: Peer): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** node reports IPv4 clients of a dual-stack listener as ::ffff:a.b.c.d; they are a.b.c.d. */
function clientAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** A PROXY v2 header, or why there is none (`silent`: the peer left without sending a byte). */
type HeaderOutcome = ProxyHeader | { reason: string; silent?: boolean };

/**
 * Reads a PROXY v2 header off the socket; bytes after it are put back for whoever reads next,
 * and the socket is left paused. Calls back once: with the header, or with why there is none.
 */
function readProxyHeader(socket: Socket, done: (result: HeaderOutcome) => void): void {
  const reader = new ProxyHeaderReader();
  let received = 0;
  const finish = (result: HeaderOutcome, rest?: Buffer) => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
    // Put back only now: on a flowing socket with a 'data' listener, unshift emits at once.
    if (rest && rest.length > 0) socket.unshift(rest);
    done(result);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    const parsed = reader.push(chunk);
    if (parsed.state === 'incomplete') return;
    if (parsed.state === 'error') return finish({ reason: parsed.reason });
    finish(parsed.header, parsed.rest);
  };
  const onEnd = () => finish({ reason: 'the connection ended before a complete header', silent: received === 0 });
  const timer = setTimeout(() => finish({ reason: `no complete header within ${PROXY_HEADER_TIMEOUT_MS} ms` }), PROXY_HEADER_TIMEOUT_MS);
  socket.on('data', onData);
  socket.on('end', onEnd);
}
