// Every line the server writes, in one place, so it can be read against PROTOCOL.md.
// Each function returns complete lines with their CRLF terminators.

const CRLF = '\r\n';

/** Longest MEMBERS line, not counting its CRLF (PROTOCOL.md 1.1, WHO). */
export const MAX_MEMBERS_LINE_BYTES = 1024;

export const replies = {
  ok: () => 'OK' + CRLF,
  error: (text: string) => `ERROR ${text}${CRLF}`,

  notLoggedIn: () => replies.error('USER NOT LOGGED IN'),
  alreadyLoggedIn: (me: string) => replies.error(`ALREADY LOGGED IN AS ${me}`),
  nameTaken: (user: string) => replies.error(`${user} IS ALREADY TAKEN`),
  alreadyJoined: (me: string, room: string) => replies.error(`${me} ALREADY JOINED ${room}`),
  tooManyRooms: () => replies.error('TOO MANY ROOMS'),
  roomFull: () => replies.error('ROOM FULL'),
  notInRoom: (me: string, room: string) => replies.error(`${me} NOT IN ${room}`),
  roomNotAvailable: (room: string) => replies.error(`ROOM ${room} NOT AVAILABLE`),
  userNotFound: (user: string) => replies.error(`${user} NOT FOUND`),
  serviceUnavailable: () => replies.error('SERVICE UNAVAILABLE'),
  internalError: () => replies.error('INTERNAL ERROR'),
  rateLimited: () => replies.error('RATE LIMITED'),

  // Sent once before the server closes a connection, naming the limit or the reason.
  serverFull: () => replies.error('SERVER FULL'),
  shuttingDown: () => replies.error('SERVER SHUTTING DOWN'),
  idleTimeout: () => replies.error('IDLE TIMEOUT'),
  loginTimeout: () => replies.error('LOGIN TIMEOUT'),
  tooManyConnections: () => replies.error('TOO MANY CONNECTIONS'),
  tooMuchPendingOutput: () => replies.error('TOO MUCH PENDING OUTPUT'),

  roomMessage: (sender: string, room: string, text: string) => `GOTROOMMSG ${sender} ${room} ${text}${CRLF}`,
  /** roomMessage split around the room name, for a fan-out that learns the room's spelling later. */
  roomMessageAround: (sender: string, text: string): [before: string, after: string] => [
    `GOTROOMMSG ${sender} `,
    ` ${text}${CRLF}`,
  ],
  userMessage: (sender: string, text: string) => `GOTUSERMSG ${sender} ${text}${CRLF}`,

  pong: (token: string | undefined) => (token === undefined ? 'PONG' : `PONG ${token}`) + CRLF,
  help: (lines: readonly string[]) => lines.map((line) => `HELP ${line}${CRLF}`).join(''),
  /** MEMBERS lines naming every user once, in the order given, none longer than the limit. */
  members: (room: string, users: readonly string[]): string => {
    const head = `MEMBERS ${room}`;
    const lines: string[] = [];
    let line = head;
    for (const user of users) {
      // Names are ASCII, so characters are bytes.
      if (line !== head && line.length + 1 + user.length > MAX_MEMBERS_LINE_BYTES) {
        lines.push(line);
        line = head;
      }
      line += ` ${user}`;
    }
    if (line !== head) lines.push(line);
    return lines.map((text) => text + CRLF).join('');
  },
  room: (room: string, members: number) => `ROOM ${room} ${members}${CRLF}`,
} as const;
