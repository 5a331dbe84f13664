// Every line the server writes, in one place, so it can be read against PROTOCOL.md.
// Each function returns the complete line with its CRLF terminator.

const CRLF = '\r\n';

export const replies = {
  ok: () => 'OK' + CRLF,
  error: (text: string) => `ERROR ${text}${CRLF}`,

  invalidCommand: () => replies.error('INVALID COMMAND'),
  notLoggedIn: () => replies.error('USER NOT LOGGED IN'),
  alreadyLoggedIn: (me: string) => replies.error(`ALREADY LOGGED IN AS ${me}`),
  nameTaken: (user: string) => replies.error(`${user} IS ALREADY TAKEN`),
  alreadyJoined: (me: string, room: string) => replies.error(`${me} ALREADY JOINED ${room}`),
  tooManyRooms: () => replies.error('TOO MANY ROOMS'),
  notInRoom: (me: string, room: string) => replies.error(`${me} NOT IN ${room}`),
  roomNotAvailable: (room: string) => replies.error(`ROOM ${room} NOT AVAILABLE`),
  userNotFound: (user: string) => replies.error(`${user} NOT FOUND`),
  serviceUnavailable: () => replies.error('SERVICE UNAVAILABLE'),
  serverFull: () => replies.error('SERVER FULL'),
  shuttingDown: () => replies.error('SERVER SHUTTING DOWN'),
  rateLimited: () => replies.error('RATE LIMITED'),
  idleTimeout: () => replies.error('IDLE TIMEOUT'),

  roomMessage: (sender: string, room: string, text: string) => `GOTROOMMSG ${sender} ${room} ${text}${CRLF}`,
  /** roomMessage split around the room name, for a fan-out that learns the room's spelling later. */
  roomMessageAround: (sender: string, text: string): [before: string, after: string] => [
    `GOTROOMMSG ${sender} `,
    ` ${text}${CRLF}`,
  ],
  userMessage: (sender: string, text: string) => `GOTUSERMSG ${sender} ${text}${CRLF}`,
} as const;
