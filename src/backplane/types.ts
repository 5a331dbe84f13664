// The shared state of the chat service and delivery between connections, behind one
// interface so the server never knows whether it runs embedded (memory) or clustered (Redis).
// Names passed in are as the user typed them; implementations compare them case-insensitively.

/** Writes complete protocol lines (text or UTF-8 bytes) to the connection with this id, if it is still open here. */
export type DeliverySink = (connectionId: string, lines: string | Uint8Array) => void;

/** Who is acting: the connection and the name it logged in with (display spelling). */
export interface Member {
  readonly connectionId: string;
  readonly user: string;
}

export type LoginResult = 'ok' | 'taken';
export type JoinResult = 'ok' | 'already-joined' | 'too-many-rooms';
export type PartResult = 'ok' | 'not-in-room';
/** On success, the room's display spelling (set by the member who created it). */
export type RoomMessageResult = { roomName: string } | 'not-available';
export type UserMessageResult = 'ok' | 'not-found';

export interface Backplane {
  /** Claims the name cluster-wide. Deliveries to the name reach this connection before it resolves. */
  login(member: Member): Promise<LoginResult>;
  /** Leaves every room, then frees the name. Safe to call for a session that is already gone. */
  logout(member: Member): Promise<void>;
  join(member: Member, room: string): Promise<JoinResult>;
  part(member: Member, room: string): Promise<PartResult>;
  /** Delivers to every member but the sender: the sender's own copy follows its OK locally. */
  sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult>;
  /** Delivers to the user's connection; a message to oneself is delivered too. */
  sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult>;
  /** Whether the shared state can be reached right now (for /readyz). */
  isHealthy(): boolean;
  close(): Promise<void>;
}

/** A logged-in connection as the backplane sees it when it must restore the shared state. */
export interface LiveSession {
  readonly standing: { member: Member; rooms: string[] } | undefined;
  /** Another connection holds the name now: tell the client and forget the login. */
  loseName(): void;
}

export class BackplaneUnavailableError extends Error {
  constructor(cause: unknown) {
    super('shared state unreachable', { cause });
    this.name = 'BackplaneUnavailableError';
  }
}
