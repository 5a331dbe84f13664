import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';

// A telnet-like test client: writes lines, reads CRLF-terminated lines, and fails a test
// with what it got when the expected line does not come.

const DEFAULT_TIMEOUT_MS = 5000;

export class LineClient {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      let end: number;
      while ((end = this.buffer.indexOf('\n')) !== -1) {
        const raw = this.buffer.slice(0, end + 1);
        this.buffer = this.buffer.slice(end + 1);
        assert.ok(raw.endsWith('\r\n'), `server line not terminated by CRLF: ${JSON.stringify(raw)}`);
        this.lines.push(raw.slice(0, -2));
      }
      this.waiter?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.ended = true;
      this.waiter?.();
      resolve();
    }));
  }

  /** A client on a socket that is already connected (a TLS socket, one that sent a PROXY header). */
  static over(socket: Socket): LineClient {
    return new LineClient(socket);
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<LineClient> {
    const socket = connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new LineClient(socket);
  }

  /** Sends each line with an LF, all in one write. */
  send(...lines: string[]): void {
    this.socket.write(lines.map((line) => line + '\n').join(''));
  }

  sendRaw(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** The next line the server sent, without its CRLF. */
  async nextLine(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.ended) throw new Error('connection closed while waiting for a line');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line from the server within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.lines.shift()!;
  }

  async take(count: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string[]> {
    const taken: string[] = [];
    for (let i = 0; i < count; i++) taken.push(await this.nextLine(timeoutMs));
    return taken;
  }

  /** Asserts that the next lines are exactly these, in this order. */
  async expect(...expected: string[]): Promise<void> {
    const got: string[] = [];
    for (const line of expected) {
      try {
        got.push(await this.nextLine());
      } catch (error) {
        assert.fail(`expected ${JSON.stringify(line)} after ${JSON.stringify(got)}: ${(error as Error).message}`);
      }
    }
    assert.deepEqual(got, expected);
  }

  /** Sends one command and asserts its reply lines. */
  async command(line: string, ...expected: string[]): Promise<void> {
    this.send(line);
    await this.expect(...expected);
  }

  /** Asserts the server sends nothing for a while. */
  async expectSilence(ms = 300): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    assert.deepEqual(this.lines, [], 'expected no lines from the server');
  }

  async close(): Promise<void> {
    this.socket.end();
    await this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Connects and logs in; returns the client with the OK consumed. */
export async function loggedIn(port: number, user: string): Promise<LineClient> {
  const client = await LineClient.connect(port);
  await client.command(`LOGIN ${user}`, 'OK');
  return client;
}

/**
 * Logs in as soon as the name is free. A closed connection's implicit LOGOUT finishes a moment
 * after the close, so a test that reuses the name waits for it, within a bound.
 */
export async function loggedInOnceFree(port: number, user: string, timeoutMs = 5000): Promise<LineClient> {
  const client = await LineClient.connect(port);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    client.send(`LOGIN ${user}`);
    const reply = await client.nextLine();
    if (reply === 'OK') return client;
    assert.equal(reply, `ERROR ${user} IS ALREADY TAKEN`);
    if (Date.now() > deadline) assert.fail(`${user} was still taken after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
