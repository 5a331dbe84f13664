import type { Backplane, ClientHandle, Member } from './backplane/types.js';
import type { Logger } from './log.js';
import { metrics } from './metrics.js';
import { nameKey } from './protocol/names.js';
import type { ArgumentShape, ArgumentsOf, Grammar } from './protocol/parser.js';
import { replies } from './protocol/replies.js';

// Every command is one entry here: its keyword, the shape of its arguments, whether it is a
// barrier, and its handler. The session dispatches through this table and knows no command
// by name. Adding a command is one entry (plus a backplane method if it needs shared state).

/** What a handler may see and do of the session it runs in. */
export interface CommandContext {
  readonly backplane: Backplane;
  /** The session's logger (connection bound). */
  readonly log: Logger;
  /** The login, read when the command runs (never earlier: a fault may rebind it meanwhile). */
  readonly me: Member | undefined;
  /** The session as the backplane sees it: where deliveries go. */
  readonly client: ClientHandle;
  loggedIn(member: Member): void;
  loggedOut(): void;
  /** Closes the connection once this command's reply is written. */
  closeAfterReply(): void;
}

export interface CommandSpec<S extends ArgumentShape = ArgumentShape> {
  readonly keyword: string;
  readonly shape: S;
  /**
   * Changes what later commands of the session see (who it is, which rooms it is in): runs
   * after everything before it finished and before anything after it starts. Commands that
   * only read or deliver run concurrently, their replies still in order.
   */
  readonly barrier: boolean;
  /** Answered ERROR USER NOT LOGGED IN before the handler runs when the session has no login. */
  readonly needsLogin: boolean;
  /** Costs a token of the session's listing allowance too: a read over many keys. */
  readonly listing?: boolean;
  /** For HELP: the syntax, and what the command does. */
  readonly syntax: string;
  readonly summary: string;
  run(context: CommandContext, args: ArgumentsOf<S>): Promise<string> | string;
}

const command = <S extends ArgumentShape>(spec: CommandSpec<S>): CommandSpec => spec as unknown as CommandSpec;

/** Case-insensitive order, as WHO and ROOMS list names. */
const byName = (a: string, b: string) => (nameKey(a) < nameKey(b) ? -1 : nameKey(a) > nameKey(b) ? 1 : 0);

export const COMMANDS: readonly CommandSpec[] = [
  command({
    keyword: 'LOGIN', shape: 'user', barrier: true, needsLogin: false,
    syntax: 'LOGIN <user>', summary: 'take a name; every command but PING, HELP and QUIT needs one',
    async run(context, { user }) {
      if (context.me) {
        metrics.logins.inc({ result: 'already_logged_in' });
        return replies.alreadyLoggedIn(context.me.user);
      }
      const result = await context.backplane.login(user, context.client);
      metrics.logins.inc({ result: result === 'taken' ? 'taken' : 'ok' });
      if (result === 'taken') return replies.nameTaken(user);
      context.loggedIn(result.member);
      return replies.ok();
    },
  }),
  command({
    keyword: 'LOGOUT', shape: 'none', barrier: true, needsLogin: true,
    syntax: 'LOGOUT', summary: 'leave every room and free your name; the connection stays open',
    async run(context) {
      const me = context.me!;
      context.loggedOut();
      await context.backplane.logout(me);
      return replies.ok();
    },
  }),
  command({
    keyword: 'JOIN', shape: 'room', barrier: true, needsLogin: true,
    syntax: 'JOIN #<room>', summary: 'enter a room, creating it if it does not exist',
    async run(context, { room }) {
      const me = context.me!;
      switch (await context.backplane.join(me, room)) {
        case 'ok':
          context.log.debug({ user: me.user, room }, 'joined');
          return replies.ok();
        case 'already-joined': return replies.alreadyJoined(me.user, room);
        case 'too-many-rooms': return replies.tooManyRooms();
        case 'room-full': return replies.roomFull();
      }
    },
  }),
  command({
    keyword: 'PART', shape: 'room', barrier: true, needsLogin: true,
    syntax: 'PART #<room>', summary: 'leave a room; a room left empty stops existing',
    async run(context, { room }) {
      const me = context.me!;
      if ((await context.backplane.part(me, room)) !== 'ok') return replies.notInRoom(me.user, room);
      context.log.debug({ user: me.user, room }, 'parted');
      return replies.ok();
    },
  }),
  command({
    keyword: 'MSG', shape: 'message', barrier: false, needsLogin: true,
    syntax: 'MSG <user>|#<room> <text>', summary: 'send text to one user, or to every member of a room you are in',
    // Chained, not async: the busiest path there is, and an async layer costs each message a promise.
    run(context, { target, text }) {
      const me = context.me!;
      if (target.kind === 'room') {
        return context.backplane.sendToRoom(me, target.room, text).then((result) => {
          if (result === 'not-available') return replies.roomNotAvailable(target.room);
          metrics.messagesAccepted.inc('room');
          // The sender's own copy rides with its OK, so the OK is always first.
          return replies.ok() + replies.roomMessage(me.user, result.roomName, text);
        });
      }
      if (nameKey(target.user) === nameKey(me.user)) {
        // Answered here, but only while the name is surely still ours (not after a long pause).
        return context.backplane.confirm(me).then(() => {
          metrics.messagesAccepted.inc('dm');
          return replies.ok() + replies.userMessage(me.user, text);
        });
      }
      return context.backplane.sendToUser(me, target.user, text).then((result) => {
        if (result === 'not-found') return replies.userNotFound(target.user);
        metrics.messagesAccepted.inc('dm');
        return replies.ok();
      });
    },
  }),
  command({
    keyword: 'WHO', shape: 'room', barrier: false, needsLogin: true, listing: true,
    syntax: 'WHO #<room>', summary: 'list the members of a room',
    async run(context, { room }) {
      const result = await context.backplane.roomMembers(context.me!, room);
      if (result === 'not-available') return replies.roomNotAvailable(room);
      return replies.members(result.roomName, result.members.sort(byName)) + replies.ok();
    },
  }),
  command({
    keyword: 'ROOMS', shape: 'none', barrier: false, needsLogin: true, listing: true,
    syntax: 'ROOMS', summary: 'list every room with its number of members',
    async run(context) {
      const rooms = (await context.backplane.listRooms(context.me!)).sort((a, b) => byName(a.name, b.name));
      return rooms.map((room) => replies.room(room.name, room.members)).join('') + replies.ok();
    },
  }),
  command({
    keyword: 'PING', shape: 'token', barrier: false, needsLogin: false,
    syntax: 'PING [<token>]', summary: 'answered PONG and the token: the connection works',
    run: (_context, { token }) => replies.pong(token),
  }),
  command({
    keyword: 'HELP', shape: 'none', barrier: false, needsLogin: false,
    syntax: 'HELP', summary: 'this list',
    run: () => helpText,
  }),
  command({
    keyword: 'QUIT', shape: 'none', barrier: true, needsLogin: false,
    syntax: 'QUIT', summary: 'log out and close the connection',
    run(context) {
      context.closeAfterReply();
      return replies.ok();
    },
  }),
];

const helpText = replies.help(COMMANDS.map((spec) => `${spec.syntax} - ${spec.summary}`)) + replies.ok();

export const COMMAND_BY_KEYWORD: ReadonlyMap<string, CommandSpec> = new Map(COMMANDS.map((spec) => [spec.keyword, spec]));

export const GRAMMAR: Grammar = new Map(COMMANDS.map((spec) => [spec.keyword, spec.shape]));
