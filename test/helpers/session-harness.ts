import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Backplane } from '../../src/backplane/types.js';
import { InputBudget } from '../../src/input-budget.js';
import type { Logger } from '../../src/log.js';
import { Session, type SessionLimits } from '../../src/session.js';
import { LineClient } from './client.js';

// One Session over a real TCP connection on 127.0.0.1, with a line client at the other end and
// a record of every socket.write the session makes (what "one write per turn" is about: the
// client's data events may merge or split writes, so only the server side can count them).

/** Limits for tests: rate limiting off, the other limits as configured by default. */
export const TEST_LIMITS: SessionLimits = {
  maxLineBytes: 1024,
  maxPendingBytes: 1024 * 1024,
  ratePerSec: 0,
  rateBurst: 200,
  rateLimitStrikes: 100,
};

export interface LoggedEntry {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger whose lines the test can read. */
export function capturingLogger(level = 'debug'): { log: Logger; entries: LoggedEntry[] } {
  const entries: LoggedEntry[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) entries.push(JSON.parse(line) as LoggedEntry);
      done();
    },
  });
  // pino writes to a plain stream synchronously, so a line is in `entries` once the call returns
  // (Writable.write runs its write() at once when nothing is buffered).
  return { log: pino({ level }, stream), entries };
}

export const PINO_ERROR = 50;

export interface SessionUnderTest {
  session: Session;
  client: LineClient;
  /** The server's end of the connection. */
  socket: Socket;
  /** Every chunk the session passed to socket.write, as text, in order. */
  writes: string[];
  /** Everything the session wrote, concatenated. */
  readonly written: string;
  stop(): Promise<void>;
}

export async function startSession(options: {
  backplane: Backplane;
  limits?: Partial<SessionLimits>;
  input?: InputBudget;
  log?: Logger;
  id?: string;
}): Promise<SessionUnderTest> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = await LineClient.connect((server.address() as AddressInfo).port);
  const [socket] = await accepted;
  const writes: string[] = [];
  const write = socket.write.bind(socket) as (chunk: string | Uint8Array) => boolean;
  socket.write = ((chunk: string | Uint8Array) => {
    writes.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    return write(chunk);
  }) as Socket['write'];
  const session = new Session(options.id ?? 'test.1', socket, {
    backplane: options.backplane,
    log: options.log ?? pino({ level: 'silent' }),
    limits: { ...TEST_LIMITS, ...options.limits },
    input: options.input ?? new InputBudget(16 * 1024 * 1024),
  });
  return {
    session,
    client,
    socket,
    writes,
    get written() { return writes.join(''); },
    async stop() {
      client.destroy();
      socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Lets `count` microtasks run: everything here happens within the current event-loop turn. */
export async function withinThisTurn(count = 50): Promise<void> {
  for (let i = 0; i < count; i++) await null;
}

/** Lets the event loop go round a while: for checks that something does NOT happen. */
export function aWhile(ms = 100): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, failing with `what` after `timeoutMs` rather than hanging the test run. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
