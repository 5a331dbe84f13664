import type { BenchClient } from './client.js';

// What the room scenario says to a server, in its protocol: chatline's own, or IRC (for the
// reference server measured beside it). The scenario speaks only through this, so both servers
// run exactly the same load: the same sender window, the same sequence numbers and timestamps,
// the same bookkeeping on the receiving side.

export interface Dialect {
  readonly name: 'chatline' | 'irc';
  /** Takes a name; resolves once the server accepted it, rejects with the server's refusal. */
  login(client: BenchClient, name: string): Promise<void>;
  /** Joins a room (a name without '#'); resolves once the server confirmed it. */
  join(client: BenchClient, room: string): Promise<void>;
  /** The line that sends `text` to a room. */
  roomMessage(room: string, text: string): string;
  /**
   * The text of a room delivery ("<seq> <sent at>" at its end), or undefined for a line that is
   * not one, after answering it if it needs an answer (IRC's PING).
   */
  roomText(client: BenchClient, line: string): string | undefined;
  /**
   * What a sender (or a member before the measurement) does with a line it gets: 'reply' for a
   * reply to one of its messages (OK or ERROR …), undefined for anything else it may get.
   */
  senderLine(client: BenchClient, line: string): 'reply' | undefined;
  /** Every message gets one reply, in order (chatline); IRC answers only errors, without saying which. */
  readonly repliesToEveryMessage: boolean;
  /** Once logged in, before the room fills: whatever the sender needs to send at full rate. */
  prepareSender(client: BenchClient, name: string): Promise<void>;
}

/** Sends a line and resolves with the first reply that `accept` takes; a line `refuse` names rejects. */
function exchange(client: BenchClient, lines: string[], accept: (line: string) => boolean,
  refuse: (line: string) => boolean, onOther: (line: string) => void = () => {}): Promise<void> {
  return new Promise((resolve, reject) => {
    client.onLine = (line) => {
      if (accept(line)) resolve();
      else if (refuse(line)) reject(new Error(`${lines.join(' / ')} → ${line}`));
      else onOther(line);
    };
    for (const line of lines) client.send(line);
  });
}

export const chatline: Dialect = {
  name: 'chatline',
  login: (client, name) => exchange(client, [`LOGIN ${name}`], (line) => line === 'OK', () => true),
  join: (client, room) => exchange(client, [`JOIN #${room}`], (line) => line === 'OK', () => true),
  roomMessage: (room, text) => `MSG #${room} ${text}`,
  roomText(_client, line) {
    // GOTROOMMSG <sender> <#room> <seq> <sent at>. Nothing else is ever sent to a member.
    if (!line.startsWith('GOTROOMMSG ')) throw new Error(`a room member got ${line}`);
    return line;
  },
  senderLine(_client, line) {
    if (line === 'OK' || line.startsWith('ERROR ')) return 'reply';
    if (line.startsWith('GOTROOMMSG ')) return undefined;
    throw new Error(`the room's sender got ${line}`);
  },
  repliesToEveryMessage: true,
  prepareSender: async () => {},
};

/** An IRC numeric reply's code (":server 001 nick …" → "001"), or "" for any other line. */
function numeric(line: string): string {
  if (line.charCodeAt(0) !== 0x3a) return '';
  const space = line.indexOf(' ');
  const code = line.slice(space + 1, space + 4);
  return /^\d{3}$/.test(code) && line.charCodeAt(space + 4) === 0x20 ? code : '';
}

/** 4xx and 5xx numerics are errors (nickname in use, channel full, too many channels, ...), as is ERROR. */
function isError(line: string): boolean {
  if (line.startsWith('ERROR ')) return true;
  if (line.charCodeAt(0) !== 0x3a) return false;
  const first = line.charCodeAt(line.indexOf(' ') + 1);
  return (first === 0x34 || first === 0x35) && numeric(line) !== ''; // '4', '5'
}

function answerPing(client: BenchClient, line: string): boolean {
  if (!line.startsWith('PING ')) return false;
  client.send(`PONG ${line.slice(5)}`);
  return true;
}

/** An IRC operator's name and password (an [Operator] block of ngircd.conf). */
export interface IrcOperator {
  name: string;
  password: string;
}

/**
 * RFC 2812 as ngIRCd speaks it: NICK and USER, then 001; JOIN, then the NAMES list up to 366;
 * PRIVMSG to the channel; deliveries are ":<nick>!<user>@<host> PRIVMSG #<room> :<text>".
 * IRC has no reply to a PRIVMSG that worked and does not echo it to its sender.
 *
 * With an operator, the sender becomes one (OPER, then 381) and sets user mode +F on itself:
 * ngIRCd then reads up to 10 commands per connection per turn instead of 3, so a window of 4
 * PRIVMSGs read at once is handled at once. Without it the 4th waits for the next turn, and when
 * nothing else is happening ngIRCd sleeps up to a second before it has one (conn.c, Conn_Handler).
 */
export const irc = (operator?: IrcOperator): Dialect => ({
  name: 'irc',
  async prepareSender(client, name) {
    if (!operator) return;
    await exchange(client, [`OPER ${operator.name} ${operator.password}`], (line) => numeric(line) === '381', isError,
      (line) => answerPing(client, line));
    await exchange(client, [`MODE ${name} +F`], (line) => line.includes(' MODE ') && line.includes('+F'), isError,
      (line) => answerPing(client, line));
  },
  login: (client, name) => exchange(client, [`NICK ${name}`, `USER ${name} 0 * :bench`],
    (line) => numeric(line) === '001', isError, (line) => answerPing(client, line)),
  join: (client, room) => exchange(client, [`JOIN #${room}`],
    (line) => numeric(line) === '366', isError, (line) => answerPing(client, line)),
  roomMessage: (room, text) => `PRIVMSG #${room} :${text}`,
  roomText(client, line) {
    // Other members' JOINs can still be on their way when the first messages go out.
    if (answerPing(client, line)) return undefined;
    if (line.indexOf(' PRIVMSG ') === -1) {
      if (isError(line)) throw new Error(`a room member got ${line}`);
      return undefined;
    }
    return line.slice(line.indexOf(' :', 1) + 2);
  },
  senderLine(client, line) {
    if (isError(line)) throw new Error(`the room's sender got ${line}`);
    answerPing(client, line);
    return undefined;
  },
  repliesToEveryMessage: false,
});
