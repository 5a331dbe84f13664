import { connect, createServer, type Server, type Socket } from 'node:net';

// A TCP proxy on 127.0.0.1 in front of one Redis port that injects network faults: delay,
// stall, blackhole, cut, refuse. It is how a test makes one connection go bad while the others
// stay healthy, the gray failures a plain "Redis down" test never shows.
//
// Each accepted client connection is a *link*: the client's socket and the proxy's own
// connection to Redis. A link is known by what the client sent first: ioredis 6 opens every
// connection with `CLIENT SETNAME <connectionName>` (after AUTH and SELECT, before the ready
// check's INFO), so chatline's `chatline:<workerId>:commands` and `…:deliveries` select one
// worker's connection. ioredis Cluster adds its own names around it:
// `ioredis-cluster(refresher):<name>`, `ioredis-cluster(subscriber):<name>`.
//
// A fault is a rule: kind, which links (a substring of their opening bytes, or every link),
// which direction, and whether links accepted later are caught too. Rules are matched each time
// bytes move, so a link accepted after the fault picks it up as soon as its opening shows the
// marker (the chunk that carries the marker is the first one affected).
//
// What never happens, whatever the faults: bytes reordered or duplicated. Each direction of a
// link is one FIFO; a FIN travels in it like a byte (held by a stall, delayed by a delay; a
// blackhole lets it through unless told to drop it too). A reset, or an error on either
// socket, closes both sides at once.

export type Direction = 'toRedis' | 'toClient' | 'both';
type OneWay = Exclude<Direction, 'both'>;

export interface FaultTarget {
  /** Links whose opening bytes (up to their CLIENT SETNAME, at most 1 KiB) contain this; every link when omitted. */
  links?: string;
  /** Which way the fault acts; 'both' when omitted. */
  direction?: Direction;
  /**
   * 'openAndNew' (default): links open now and links accepted later, as they identify
   * themselves. 'open': only links accepted before this call (their opening may still arrive).
   * A subscriber that goes silent and is replaced wants 'open'; a partition wants 'openAndNew'.
   */
  scope?: 'open' | 'openAndNew';
}

export interface StallTarget extends FaultTarget {
  /**
   * Hold the bytes in the sender's socket (the proxy stops reading) instead of the proxy's
   * memory. The sender then feels TCP backpressure once the kernel buffers (several MB on
   * loopback) fill: Redis' output buffer for that client grows and client-output-buffer-limit
   * can fire. Without it the sender never notices.
   */
  stopReading?: boolean;
}

export interface BlackholeTarget extends FaultTarget {
  /**
   * Drop the FIN too, as a real blackhole would: a side that closes is never heard closing, and
   * the other keeps a half-dead connection (ioredis destroys its socket 2 s after its own FIN,
   * its disconnectTimeout). By default a close still passes, as redis-proxy's "silence" did.
   */
  dropFin?: boolean;
}

/** A fault in force; clear() lifts it (bytes it held move on, in order). */
export interface Fault {
  /** How many links open at the time of the call it matched (links still identifying themselves are not counted). */
  readonly matched: number;
  clear(): void;
}

export interface ByteCounts {
  toRedis: number;
  toClient: number;
}

export interface LinkInfo {
  readonly id: number;
  /** The name from CLIENT SETNAME, once the client sent it. */
  readonly name: string | undefined;
  /** What the client sent first, as latin1 text. */
  readonly opening: string;
  readonly forwarded: Readonly<ByteCounts>;
  readonly dropped: Readonly<ByteCounts>;
  /** Bytes in the proxy now, waiting out a stall or a delay (or a receiver that does not read). */
  readonly held: Readonly<ByteCounts>;
}

interface Rule {
  kind: 'delay' | 'stall' | 'blackhole';
  marker: string | undefined;
  direction: OneWay;
  /** Links with a higher id were accepted after the rule: matched only when Infinity. */
  lastLinkId: number;
  delayMs: number;
  stopReading: boolean;
  dropFin: boolean;
}

interface Policy {
  stalled: boolean;
  stopReading: boolean;
  dropping: boolean;
  dropFin: boolean;
  delayMs: number;
}

const OPENING_LIMIT = 1024;
// ioredis sends `client setname <name>` as RESP: *3 $6 client $7 setname $<n> <name>.
const SETNAME = /\*3\r\n\$6\r\nclient\r\n\$7\r\nsetname\r\n\$(\d+)\r\n/i;
/** A FIN, queued like a chunk so it cannot overtake the bytes before it. */
const EOF = null;

/** One direction of a link: a FIFO of chunks, each released at its time unless stalled. */
class Pipe {
  readonly queue: { chunk: Buffer | typeof EOF; releaseAt: number }[] = [];
  /** Release time of the last queued chunk: a later chunk never leaves before it. */
  tailReleaseAt = 0;
  timer: NodeJS.Timeout | undefined;
  waitingForDrain = false;
  readonly forwarded = { bytes: 0 };
  readonly dropped = { bytes: 0 };

  constructor(readonly from: Socket, readonly to: Socket) {}

  heldBytes(): number {
    return this.queue.reduce((sum, { chunk }) => sum + (chunk === EOF ? 0 : chunk.length), 0);
  }

  discard(): void {
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

class Link implements LinkInfo {
  opening = '';
  name: string | undefined;
  readonly pipes: Record<OneWay, Pipe>;

  constructor(readonly id: number, readonly client: Socket, readonly upstream: Socket) {
    this.pipes = { toRedis: new Pipe(client, upstream), toClient: new Pipe(upstream, client) };
  }

  get forwarded(): ByteCounts {
    return { toRedis: this.pipes.toRedis.forwarded.bytes, toClient: this.pipes.toClient.forwarded.bytes };
  }

  get dropped(): ByteCounts {
    return { toRedis: this.pipes.toRedis.dropped.bytes, toClient: this.pipes.toClient.dropped.bytes };
  }

  get held(): ByteCounts {
    return { toRedis: this.pipes.toRedis.heldBytes(), toClient: this.pipes.toClient.heldBytes() };
  }

  /** Records the client's first bytes until its name is known (or 1 KiB passed). */
  noteOpening(chunk: Buffer): void {
    if (this.name !== undefined || this.opening.length >= OPENING_LIMIT) return;
    this.opening += chunk.toString('latin1', 0, Math.min(chunk.length, OPENING_LIMIT - this.opening.length));
    const setname = SETNAME.exec(this.opening);
    if (!setname) return;
    const start = setname.index + setname[0].length;
    const length = Number(setname[1]);
    if (this.opening.length >= start + length) {
      this.name = this.opening.slice(start, start + length);
      this.opening = this.opening.slice(0, start + length);
    }
  }

  matches(marker: string | undefined): boolean {
    return marker === undefined || this.opening.includes(marker);
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }

  info(): LinkInfo {
    return {
      id: this.id, name: this.name, opening: this.opening, forwarded: this.forwarded, dropped: this.dropped, held: this.held,
    };
  }
}

export class FaultProxy {
  private readonly links = new Set<Link>();
  private rules: Rule[] = [];
  private server: Server | undefined;
  private nextLinkId = 1;
  private refusing = false;
  private readonly totals = { forwarded: { toRedis: 0, toClient: 0 }, dropped: { toRedis: 0, toClient: 0 } };
  port = 0;

  private constructor(private readonly redisPort: number, private readonly redisHost: string) {}

  /** A proxy on a free port of 127.0.0.1 forwarding to redisHost:redisPort. */
  static async start(redisPort: number, redisHost = '127.0.0.1'): Promise<FaultProxy> {
    const proxy = new FaultProxy(redisPort, redisHost);
    await proxy.listen(0);
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** host:port, as REDIS_CLUSTER_NODES and REDIS_SENTINELS list them. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Bytes forwarded and dropped so far, over every link (closed ones included). */
  get bytes(): { forwarded: ByteCounts; dropped: ByteCounts } {
    return { forwarded: { ...this.totals.forwarded }, dropped: { ...this.totals.dropped } };
  }

  /** Open links, optionally only those whose opening contains marker, oldest first. */
  openLinks(marker?: string): LinkInfo[] {
    return [...this.links].filter((link) => link.matches(marker)).map((link) => link.info());
  }

  /** Forwards each byte ms later than it arrived (order kept). delay(0) on the same target lifts it. */
  delay(ms: number, target: FaultTarget = {}): Fault {
    return this.addRules('delay', target, { delayMs: ms });
  }

  /** Holds every byte (and FIN) until resume(), heal() or clear(); connections stay open. */
  stall(target: StallTarget = {}): Fault {
    return this.addRules('stall', target, { stopReading: target.stopReading ?? false });
  }

  /**
   * Lifts stall faults: those made with the same `links` marker (every stall when omitted) in
   * the given direction(s). What they held moves on, in order.
   */
  resume(target: Pick<FaultTarget, 'links' | 'direction'> = {}): void {
    const directions = oneWays(target.direction);
    this.removeRules((rule) => rule.kind === 'stall' && directions.includes(rule.direction)
      && (target.links === undefined || rule.marker === target.links));
  }

  /** Drops bytes silently; connections stay open (a close still passes unless dropFin). */
  blackhole(target: BlackholeTarget = {}): Fault {
    return this.addRules('blackhole', target, { dropFin: target.dropFin ?? false });
  }

  /** Destroys both sockets of matching open links; returns how many. New connections are still accepted. */
  cut(links?: string): number {
    let count = 0;
    for (const link of this.links) {
      if (!link.matches(links)) continue;
      link.destroy();
      count++;
    }
    return count;
  }

  /**
   * While on, the proxy does not listen: a new connection is refused (ECONNREFUSED) as by a
   * Redis that is down. Open links are untouched. Off listens again on the same port.
   */
  async refuse(on: boolean): Promise<void> {
    if (on === this.refusing) return;
    this.refusing = on;
    if (on) {
      const server = this.server!;
      this.server = undefined;
      await new Promise<void>((resolve) => {
        server.close();
        // close() calls back only when every connection ended; the port is free already.
        setImmediate(resolve);
      });
    } else {
      await this.listen(this.port);
    }
  }

  /** Lifts every fault: rules cleared (held bytes move on, in order) and connections accepted again. */
  async heal(): Promise<void> {
    this.removeRules(() => true);
    await this.refuse(false);
  }

  async stop(): Promise<void> {
    this.rules = [];
    for (const link of this.links) link.destroy();
    this.links.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async listen(port: number): Promise<void> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  private accept(client: Socket): void {
    const upstream = connect({ port: this.redisPort, host: this.redisHost, allowHalfOpen: true, noDelay: true });
    const link = new Link(this.nextLinkId++, client, upstream);
    this.links.add(link);
    client.on('data', (chunk: Buffer) => {
      link.noteOpening(chunk);
      this.receive(link, 'toRedis', chunk);
    });
    upstream.on('data', (chunk: Buffer) => this.receive(link, 'toClient', chunk));
    client.on('end', () => this.receive(link, 'toRedis', EOF));
    upstream.on('end', () => this.receive(link, 'toClient', EOF));
    // Redis unreachable, a reset, a cut: both sides go at once.
    client.on('error', () => link.destroy());
    upstream.on('error', () => link.destroy());
    const closed = (socket: Socket, towardIt: Pipe) => socket.once('close', () => {
      towardIt.discard();
      if (link.client.destroyed && link.upstream.destroyed) this.links.delete(link);
    });
    closed(client, link.pipes.toClient);
    closed(upstream, link.pipes.toRedis);
  }

  private receive(link: Link, direction: OneWay, chunk: Buffer | typeof EOF): void {
    const pipe = link.pipes[direction];
    const policy = this.policyFor(link, direction);
    if (policy.dropping && (chunk !== EOF || policy.dropFin)) {
      if (chunk !== EOF) {
        pipe.dropped.bytes += chunk.length;
        this.totals.dropped[direction] += chunk.length;
      }
      return;
    }
    pipe.tailReleaseAt = Math.max(Date.now() + policy.delayMs, pipe.tailReleaseAt);
    pipe.queue.push({ chunk, releaseAt: pipe.tailReleaseAt });
    this.pump(link, direction);
  }

  /** Writes what may leave now, in order; sets a timer for the rest; reads the sender only when it should. */
  private pump(link: Link, direction: OneWay): void {
    const pipe = link.pipes[direction];
    const policy = this.policyFor(link, direction);
    while (pipe.queue.length > 0 && !pipe.waitingForDrain && !policy.stalled && !pipe.to.destroyed) {
      const head = pipe.queue[0]!;
      const wait = head.releaseAt - Date.now();
      if (wait > 0) {
        if (pipe.timer === undefined) {
          pipe.timer = setTimeout(() => {
            pipe.timer = undefined;
            this.pump(link, direction);
          }, wait);
        }
        break;
      }
      pipe.queue.shift();
      if (head.chunk === EOF) {
        pipe.to.end();
        continue;
      }
      pipe.forwarded.bytes += head.chunk.length;
      this.totals.forwarded[direction] += head.chunk.length;
      if (!pipe.to.write(head.chunk)) {
        pipe.waitingForDrain = true;
        pipe.to.once('drain', () => {
          pipe.waitingForDrain = false;
          this.pump(link, direction);
        });
      }
    }
    // A receiver that does not drain slows the sender, as it would without the proxy.
    const holdSender = pipe.waitingForDrain || (policy.stalled && policy.stopReading);
    if (holdSender) pipe.from.pause();
    else pipe.from.resume();
  }

  private policyFor(link: Link, direction: OneWay): Policy {
    const policy: Policy = { stalled: false, stopReading: false, dropping: false, dropFin: false, delayMs: 0 };
    for (const rule of this.rules) {
      if (rule.direction !== direction || link.id > rule.lastLinkId || !link.matches(rule.marker)) continue;
      if (rule.kind === 'stall') {
        policy.stalled = true;
        policy.stopReading ||= rule.stopReading;
      } else if (rule.kind === 'blackhole') {
        policy.dropping = true;
        policy.dropFin ||= rule.dropFin;
      } else {
        policy.delayMs = Math.max(policy.delayMs, rule.delayMs);
      }
    }
    return policy;
  }

  private addRules(kind: Rule['kind'], target: FaultTarget, settings: Partial<Rule>): Fault {
    const lastLinkId = target.scope === 'open' ? this.nextLinkId - 1 : Infinity;
    const added = oneWays(target.direction).map((direction): Rule => ({
      kind, marker: target.links, direction, lastLinkId, delayMs: 0, stopReading: false, dropFin: false, ...settings,
    }));
    // The same fault on the same target replaces the earlier one (so delay(0) lifts a delay).
    this.removeRules((rule) => added.some((other) => rule.kind === other.kind && rule.marker === other.marker
      && rule.direction === other.direction && rule.lastLinkId === other.lastLinkId));
    this.rules.push(...added);
    this.pumpAll();
    const matched = this.openLinks(target.links).length;
    return { matched, clear: () => this.removeRules((rule) => added.includes(rule)) };
  }

  private removeRules(remove: (rule: Rule) => boolean): void {
    this.rules = this.rules.filter((rule) => !remove(rule));
    this.pumpAll();
  }

  private pumpAll(): void {
    for (const link of this.links) {
      this.pump(link, 'toRedis');
      this.pump(link, 'toClient');
    }
  }
}

function oneWays(direction: Direction = 'both'): OneWay[] {
  return direction === 'both' ? ['toRedis', 'toClient'] : [direction];
}
