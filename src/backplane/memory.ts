import { nameKey } from '../protocol/names.js';
import { replies } from '../protocol/replies.js';
import { LocalLogins } from './local-logins.js';
import type {
  Backplane, BackplaneStatus, ClientHandle, JoinResult, LoginResult, Member, PartResult, RoomListing,
  RoomMembersResult, RoomMessageResult, UserMessageResult,
} from './types.js';

// The embedded backplane: all state in this process. One MemoryState may be shared by several
// MemoryBackplane instances (each with its own logins), which is how the contract suite models
// several workers without Redis.

interface UserEntry {
  loginId: string;
  /** The node (worker) holding the login, which routes deliveries to it. */
  node: MemoryBackplane;
  rooms: Set<string>;
}

interface RoomEntry {
  name: string;
  /** member key → that member's login id and display name */
  members: Map<string, { loginId: string; user: string }>;
}

export class MemoryState {
  readonly users = new Map<string, UserEntry>();
  readonly rooms = new Map<string, RoomEntry>();
  nextNode = 0;
}

export interface MemoryLimits {
  maxRoomsPerUser: number;
  maxRoomMembers: number;
}

export class MemoryBackplane implements Backplane {
  private readonly logins = new LocalLogins();
  private readonly nodeId: string;
  private loginCount = 0;

  constructor(private readonly state: MemoryState, private readonly limits: MemoryLimits) {
    this.nodeId = `m${(state.nextNode++).toString(36)}`;
  }

  async login(user: string, client: ClientHandle): Promise<LoginResult> {
    const key = nameKey(user);
    if (this.state.users.has(key)) return 'taken';
    const member: Member = { loginId: `${this.nodeId}.${(++this.loginCount).toString(36)}`, user };
    this.state.users.set(key, { loginId: member.loginId, node: this, rooms: new Set() });
    this.logins.add(member, client);
    return { member };
  }

  async logout(member: Member): Promise<void> {
    if (!this.logins.remove(member.loginId)) return;
    const key = nameKey(member.user);
    const entry = this.state.users.get(key);
    if (entry?.loginId !== member.loginId) return;
    for (const room of entry.rooms) this.leaveRoom(room, key);
    this.state.users.delete(key);
  }

  async join(member: Member, room: string): Promise<JoinResult> {
    const login = this.logins.acting(member);
    const entry = this.state.users.get(login.userKey)!;
    const roomKey = nameKey(room);
    if (entry.rooms.has(roomKey)) return 'already-joined';
    if (entry.rooms.size >= this.limits.maxRoomsPerUser) return 'too-many-rooms';
    let roomEntry = this.state.rooms.get(roomKey);
    if (roomEntry && roomEntry.members.size >= this.limits.maxRoomMembers) return 'room-full';
    if (!roomEntry) {
      roomEntry = { name: room, members: new Map() };
      this.state.rooms.set(roomKey, roomEntry);
    }
    roomEntry.members.set(login.userKey, { loginId: member.loginId, user: member.user });
    entry.rooms.add(roomKey);
    login.rooms.set(roomKey, room);
    return 'ok';
  }

  async part(member: Member, room: string): Promise<PartResult> {
    const login = this.logins.acting(member);
    const roomKey = nameKey(room);
    const entry = this.state.users.get(login.userKey)!;
    if (!entry.rooms.delete(roomKey)) return 'not-in-room';
    login.rooms.delete(roomKey);
    this.leaveRoom(roomKey, login.userKey);
    return 'ok';
  }

  async sendToRoom(sender: Member, room: string, text: string): Promise<RoomMessageResult> {
    const login = this.logins.acting(sender);
    const roomEntry = this.state.rooms.get(nameKey(room));
    if (!roomEntry || roomEntry.members.get(login.userKey)?.loginId !== sender.loginId) return 'not-available';
    const line = replies.roomMessage(sender.user, roomEntry.name, text);
    for (const [memberKey, { loginId }] of roomEntry.members) {
      if (memberKey !== login.userKey) this.state.users.get(memberKey)?.node.logins.deliver(loginId, line);
    }
    return { roomName: roomEntry.name };
  }

  async sendToUser(sender: Member, user: string, text: string): Promise<UserMessageResult> {
    this.logins.acting(sender);
    const recipient = this.state.users.get(nameKey(user));
    if (!recipient) return 'not-found';
    recipient.node.logins.deliver(recipient.loginId, replies.userMessage(sender.user, text));
    return 'ok';
  }

  async confirm(member: Member): Promise<void> {
    this.logins.acting(member);
  }

  async roomMembers(member: Member, room: string): Promise<RoomMembersResult> {
    this.logins.acting(member);
    const roomEntry = this.state.rooms.get(nameKey(room));
    if (!roomEntry) return 'not-available';
    return { roomName: roomEntry.name, members: [...roomEntry.members.values()].map(({ user }) => user) };
  }

  async listRooms(member: Member): Promise<RoomListing[]> {
    this.logins.acting(member);
    return [...this.state.rooms.values()].map((room) => ({ name: room.name, members: room.members.size }));
  }

  status(): BackplaneStatus {
    return { up: true, state: 'embedded' };
  }

  async close(): Promise<void> {}

  private leaveRoom(roomKey: string, memberKey: string): void {
    const roomEntry = this.state.rooms.get(roomKey);
    if (!roomEntry) return;
    roomEntry.members.delete(memberKey);
    // A room left empty stops existing, so the next creator's spelling becomes its name.
    if (roomEntry.members.size === 0) this.state.rooms.delete(roomKey);
  }
}
