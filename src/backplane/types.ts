// The shared state of the chat service and delivery between connections, behind one
// interface so the server never knows whether it runs embedded (memory) or clustered (Redis).
// Names passed in are as the user typed them; implementations compare them case-insensitively.

/**
 * One login: a name held by one connection. The login id is new for every LOGIN (and for every
 * restore after a fault), so nothing meant for an earlier login of a connection or a name ever
 * reaches a later one.
 */
export interface Member {
  readonly loginId: string;
  /** The name as spelled at LOGIN (display spelling). */
  readonly user: string;
}

/** What the backplane needs of a logged-in client. */
export interface ClientHandle {
  /** Writes complete protocol lines (GOTROOMMSG, GOTUSERMSG) to the client. */
  deliver(lines: string | Uint8Array): void;
  /** After a fault, the shared state gave this name to another connection: the login is over. */
  nameLost(): void;
  /** After a fault, the login was restored under a new identity; act as this member from now on. */
  rebound(member: Member): void;
}

export type LoginResult = { member: Member } | 'taken';
export type JoinResult = 'ok' | 'already-joined' | 'too-many-rooms' | 'room-full';
export type PartResult = 'ok' | 'not-in-room';
/** On success, the room's display spelling (set by the member who created it). */
export type RoomMessageResult = { roomName: string } | 'not-available';
export type UserMessageResult = 'ok' | 'not-found';
/** Every member's display name, each once, in no particular order. */
export type RoomMembersResult = { roomName: string; members: string[] } | 'not-available';

export interface RoomListing {
  /** Display spelling. */
  readonly name: string;
  readonly members: number;
}

/** What /readyz and the metrics say about the shared state. */
export interface BackplaneStatus {
  /** Reachable, writable, and this worker holds its lease: commands can succeed. */
  readonly up: boolean;
  /** A short word for operators: 'embedded', 'ok', 'unreachable', 'not-writable', 'lease-lost', … */
  readonly state: string;
}

/**
 * Every method that changes shared state either has its whole effect or none, as far as the
 * caller can tell: a BackplaneUnavailableError means nothing happened and nothing will.
 * Acting as a member this backplane did not log in (or that logged out) is refused the same way.
 */
export interface Backplane {
  /** Claims the name cluster-wide. Deliveries to the name reach `client` from the moment it resolves. */
  login(user: string, client: ClientHandle): Promise<LoginResult>;
  /**
   * Ends the login here at once (nothing more is delivered to it) and frees the name and every
   * membership in the shared state: now, or as soon as the shared state can be reached. Never fails.
   */
  logout(member: Member): Promise<void>;
  join(member: Member, room: string): Promise<JoinResult>;
  part(member: Member, room: string): Promise<PartResult>;
  /** Delivers to every member but the sender: the sender's own copy follows its OK locally. */
  sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult>;
  /** Delivers to the user's connection; a message to oneself is delivered too. */
  sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult>;
  /**
   * Resolves once this backplane may act for the member now (its login is held here, and the
   * worker knows it has not been taken for dead): for what a session answers by itself, like a
   * message to oneself.
   */
  confirm(member: Member): Promise<void>;
  /** WHO: the room's members at one moment. */
  roomMembers(member: Member, room: string): Promise<RoomMembersResult>;
  /** ROOMS: every room that exists, with its member count, at one moment per room. */
  listRooms(member: Member): Promise<RoomListing[]>;
  status(): BackplaneStatus;
  /** Leaves the cluster cleanly; call after every login ended. */
  close(): Promise<void>;
}
