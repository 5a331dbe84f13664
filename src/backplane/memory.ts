import { nameKey } from '../protocol/names.js';
import { replies } from '../protocol/replies.js';
import type {
  Backplane, DeliverySink, JoinResult, LoginResult, Member, PartResult, RoomMessageResult, UserMessageResult,
} from './types.js';

// The embedded backplane: all state in this process. One MemoryState may be shared by several
// MemoryBackplane instances (each with its own sink), which is how the contract suite models
// several workers without Redis.

interface UserEntry {
  name: string;
  connectionId: string;
  deliver: DeliverySink;
  rooms: Set<string>;
}

interface RoomEntry {
  name: string;
  /** member key → that member's connection id */
  members: Map<string, string>;
}

export class MemoryState {
  readonly users = new Map<string, UserEntry>();
  readonly rooms = new Map<string, RoomEntry>();
}

export class MemoryBackplane implements Backplane {
  constructor(
    private readonly state: MemoryState,
    private readonly deliver: DeliverySink,
    private readonly maxRoomsPerUser: number,
  ) {}

  async login(member: Member): Promise<LoginResult> {
    const key = nameKey(member.user);
    if (this.state.users.has(key)) return 'taken';
    this.state.users.set(key, { name: member.user, connectionId: member.connectionId, deliver: this.deliver, rooms: new Set() });
    return 'ok';
  }

  async logout(member: Member): Promise<void> {
    const entry = this.owned(member);
    if (!entry) return;
    for (const room of entry.rooms) this.leaveRoom(room, nameKey(member.user));
    this.state.users.delete(nameKey(member.user));
  }

  async join(member: Member, room: string): Promise<JoinResult> {
    const entry = this.owned(member);
    if (!entry) return 'ok';
    const roomKey = nameKey(room);
    if (entry.rooms.has(roomKey)) return 'already-joined';
    if (entry.rooms.size >= this.maxRoomsPerUser) return 'too-many-rooms';
    entry.rooms.add(roomKey);
    let roomEntry = this.state.rooms.get(roomKey);
    if (!roomEntry) {
      roomEntry = { name: room, members: new Map() };
      this.state.rooms.set(roomKey, roomEntry);
    }
    roomEntry.members.set(nameKey(member.user), member.connectionId);
    return 'ok';
  }

  async part(member: Member, room: string): Promise<PartResult> {
    const entry = this.owned(member);
    const roomKey = nameKey(room);
    if (!entry?.rooms.has(roomKey)) return 'not-in-room';
    entry.rooms.delete(roomKey);
    this.leaveRoom(roomKey, nameKey(member.user));
    return 'ok';
  }

  async sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult> {
    const roomEntry = this.state.rooms.get(nameKey(room));
    const senderKey = nameKey(sender.user);
    if (!roomEntry || roomEntry.members.get(senderKey) !== sender.connectionId) return 'not-available';
    const line = replies.roomMessage(sender.user, roomEntry.name, text);
    for (const [memberKey, connectionId] of roomEntry.members) {
      if (memberKey !== senderKey) this.state.users.get(memberKey)?.deliver(connectionId, line);
    }
    return { roomName: roomEntry.name };
  }

  async sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult> {
    const recipient = this.state.users.get(nameKey(user));
    if (!recipient) return 'not-found';
    recipient.deliver(recipient.connectionId, replies.userMessage(sender.user, text));
    return 'ok';
  }

  isHealthy(): boolean {
    return true;
  }

  async close(): Promise<void> {}

  /** The user entry, if this connection (not a later login of the same name) holds it. */
  private owned(member: Member): UserEntry | undefined {
    const entry = this.state.users.get(nameKey(member.user));
    return entry?.connectionId === member.connectionId ? entry : undefined;
  }

  private leaveRoom(roomKey: string, memberKey: string): void {
    const roomEntry = this.state.rooms.get(roomKey);
    if (!roomEntry) return;
    roomEntry.members.delete(memberKey);
    // A room left empty stops existing, so the next creator's spelling becomes its name.
    if (roomEntry.members.size === 0) this.state.rooms.delete(roomKey);
  }
}
