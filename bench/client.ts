import { connect, type Socket } from 'node:net';

// A load-generator connection: writes are queued and sent as one write per socket per
// event-loop turn, so the generator spends its CPU on the server, not on syscalls.

const pendingFlush = new Set<BenchClient>();
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  for (const client of pendingFlush) client.flush();
  pendingFlush.clear();
}

const LF = 0x0a;

export class BenchClient {
  private outgoing: string[] = [];
  private partial: Buffer | undefined;
  onLine: (line: string) => void = () => {};

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => {});
  }

  private receive(chunk: Buffer): void {
    const data = this.partial ? Buffer.concat([this.partial, chunk]) : chunk;
    this.partial = undefined;
    let start = 0;
    for (let lf = data.indexOf(LF); lf !== -1; lf = data.indexOf(LF, start)) {
      // Without the CRLF. As latin1, the cheapest decoding: the bench only ever sends ASCII.
      this.onLine(data.toString('latin1', start, lf - 1));
      start = lf + 1;
    }
    if (start < data.length) this.partial = Buffer.from(data.subarray(start));
  }

  static open(port: number, host = '127.0.0.1'): Promise<BenchClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => resolve(new BenchClient(socket)));
      socket.once('error', reject);
    });
  }

  send(line: string): void {
    this.outgoing.push(line);
    pendingFlush.add(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  flush(): void {
    if (this.outgoing.length === 0) return;
    this.socket.write(this.outgoing.join('\n') + '\n');
    this.outgoing = [];
  }

  /** Sends a command and resolves with the next line (only before onLine is taken over). */
  request(line: string): Promise<string> {
    return new Promise((resolve) => {
      this.onLine = resolve;
      this.send(line);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
