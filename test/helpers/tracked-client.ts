import { connect, type Socket } from 'node:net';

// A chat client for fault tests that keeps a history, Jepsen-style: every command it sent with
// the reply it got (or none), every line delivered to it, each with the time. It sends one
// command at a time, so it can tell a reply from a delivery or an unasked ERROR line, and it
// keeps its own view of what it holds (its name, its rooms), which the checker compares with
// the shared state once the faults are over.

export interface Operation {
  client: number;
  seq: number;
  command: string;
  /** The name the client believed it held when it sent the command. */
  as: string | undefined;
  sentAt: number;
  /** Undefined: never answered (the connection closed first). */
  reply?: string;
  repliedAt?: number;
}

export interface Delivery {
  /** The receiving client and its connection (a client reconnects under a new number). */
  client: number;
  connection: number;
  line: string;
  at: number;
  /** The name the receiving connection believed it held. */
  as: string | undefined;
}

export class History {
  readonly operations: Operation[] = [];
  readonly deliveries: Delivery[] = [];
  /** Unasked lines other than deliveries (ERROR … IS ALREADY TAKEN after a fault, goodbyes). */
  readonly notices: Delivery[] = [];
  /** Connections that ended (either side closed): whatever they held ended with them. */
  readonly closes: { client: number; connection: number; at: number }[] = [];
  private nextConnection = 0;

  connectionNumber(): number {
    return ++this.nextConnection;
  }
}

const DELIVERY = /^GOT(USER|ROOM)MSG /;
const DEFAULT_TIMEOUT_MS = 15_000;

export class TrackedClient {
  /** What this client believes it holds. */
  name: string | undefined;
  readonly rooms = new Set<string>();
  open = false;
  private socket: Socket | undefined;
  private connection = 0;
  private buffer = '';
  private pending: { operation: Operation; resolve: (reply: string | undefined) => void; ownCopy: boolean } | undefined;
  private seq = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly id: number, private readonly history: History, private readonly port: () => number) {}

  async connect(): Promise<void> {
    const socket = connect({ port: this.port(), host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    this.socket = socket;
    this.connection = this.history.connectionNumber();
    this.open = true;
    this.buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.receive(text));
    socket.on('error', () => {});
    socket.on('close', () => this.closed(socket));
  }

  /**
   * Sends one command once the ones before it were answered, and resolves with its reply;
   * undefined when the connection closed first or it timed out. "{tag}" in the line becomes
   * this command's own tag ("h:<client>:<seq>"), by which the checker finds a delivered message.
   */
  command(line: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string | undefined> {
    const seq = ++this.seq;
    const sent = this.queue.then(() => this.send(line.replaceAll('{tag}', `h:${this.id}:${seq}`), seq, timeoutMs));
    this.queue = sent.then(() => {}, () => {});
    return sent;
  }

  private async send(line: string, seq: number, timeoutMs: number): Promise<string | undefined> {
    if (!this.open || !this.socket) return undefined;
    const operation: Operation = { client: this.id, seq, command: line, as: this.name, sentAt: performance.now() };
    this.history.operations.push(operation);
    const reply = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      this.pending = {
        operation,
        ownCopy: /^MSG #/i.test(line),
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
      };
      this.socket!.write(`${line}\n`);
    });
    this.pending = undefined;
    if (reply !== undefined) this.learn(line, reply);
    return reply;
  }

  close(): void {
    this.socket?.end();
  }

  destroy(): void {
    this.socket?.destroy();
  }

  private receive(text: string): void {
    this.buffer += text;
    let end: number;
    while ((end = this.buffer.indexOf('\r\n')) !== -1) {
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      this.line(line);
    }
  }

  private line(line: string): void {
    const now = performance.now();
    const pending = this.pending;
    if (DELIVERY.test(line)) {
      this.history.deliveries.push({ client: this.id, connection: this.connection, line, at: now, as: this.name });
      return;
    }
    // An unasked notice: a lost name (the reply to a LOGIN of the same name looks alike only
    // when this client is not logged in), or a goodbye before the server closes.
    const lostName = this.name !== undefined && line === `ERROR ${this.name} IS ALREADY TAKEN`
      && !(pending && /^LOGIN /i.test(pending.operation.command));
    if (!pending || lostName) {
      this.history.notices.push({ client: this.id, connection: this.connection, line, at: now, as: this.name });
      if (lostName) this.loggedOut();
      return;
    }
    pending.operation.reply = line;
    pending.operation.repliedAt = now;
    pending.resolve(line);
  }

  /** Updates what this client holds from a command and its reply. */
  private learn(command: string, reply: string): void {
    if (reply !== 'OK') return;
    const [keyword, argument] = command.split(/\s+/);
    switch (keyword!.toUpperCase()) {
      case 'LOGIN':
        this.name = argument;
        return;
      case 'LOGOUT':
        this.loggedOut();
        return;
      case 'JOIN':
        this.rooms.add(argument!.toLowerCase());
        return;
      case 'PART':
        this.rooms.delete(argument!.toLowerCase());
        return;
      case 'QUIT':
        this.loggedOut();
    }
  }

  private loggedOut(): void {
    this.name = undefined;
    this.rooms.clear();
  }

  private closed(socket: Socket): void {
    if (socket !== this.socket) return;
    this.history.closes.push({ client: this.id, connection: this.connection, at: performance.now() });
    this.open = false;
    this.loggedOut();
    this.pending?.resolve(undefined);
  }
}
