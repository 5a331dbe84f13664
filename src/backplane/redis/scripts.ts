import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

// Loads the Lua scripts once per client and exposes each as a typed method. ioredis runs
// them by SHA (EVALSHA) and falls back to EVAL only when Redis does not know the script yet.

const SCRIPT_FILES = {
  login: 'login-1.lua',
  reserveRoom: 'reserveRoom-2.lua',
  joinRoom: 'joinRoom-2.lua',
  partRoom: 'partRoom-2.lua',
  unindexRoom: 'unindexRoom-2.lua',
  logout: 'logout-2.lua',
  sendToUsers: 'sendToUsers-n.lua',
  sendToRoom: 'sendToRoom-2.lua',
  claimReaping: 'claimReaping-2.lua',
} as const;

type ScriptName = keyof typeof SCRIPT_FILES;

const commandName = (name: ScriptName) => `chatline_${name}`;

/**
 * Scripts written to Redis the moment they are called instead of through ioredis'
 * auto-pipeline, which defers to the next setImmediate. The DM batch is already one call per
 * event-loop turn, and deferring it again cost a whole extra turn. Room messages go the same
 * way so that every delivery leaves in the order it was called, as per-sender order needs.
 */
export const UNPIPELINED_SCRIPTS = [commandName('sendToUsers'), commandName('sendToRoom')];
type Arg = string | number;

export interface ChatScripts {
  login(userHash: string, name: string, workerId: string, connectionId: string, since: number): Promise<0 | 1>;
  reserveRoom(userHash: string, userRooms: string, connectionId: string, roomKey: string, maxRooms: number): Promise<-1 | 0 | 1>;
  joinRoom(members: string, roomName: string, memberKey: string, connectionId: string, spelling: string): Promise<0 | 1>;
  partRoom(members: string, roomName: string, memberKey: string, connectionId: string): Promise<0 | 1>;
  unindexRoom(userHash: string, userRooms: string, connectionId: string, roomKey: string): Promise<0 | 1>;
  logout(userHash: string, userRooms: string, connectionId: string): Promise<0 | 1>;
  /** Keys: n user hashes; arguments: their n channels, then their n batches of lines. */
  sendToUsers(n: number, ...keysThenArgs: string[]): Promise<(0 | 1)[]>;
  claimReaping(alive: string, reaper: string, workerId: string, claimMs: number): Promise<0 | 1>;
  sendToRoom(
    members: string, roomName: string, senderKey: string, connectionId: string,
    lineBefore: string, lineAfter: string, channelBefore: string, channelAfter: string, spelling: string,
  ): Promise<string | null>;
}

/**
 * The number of keys a script takes is the number in its file name (BullMQ's convention);
 * "-n" means the caller passes the count as the first argument.
 */
function numberOfKeys(file: string): number | undefined {
  const match = /-(\d+|n)\.lua$/.exec(file);
  if (!match) throw new Error(`script file ${file} does not end in -<number of keys>.lua or -n.lua`);
  return match[1] === 'n' ? undefined : Number(match[1]);
}

export function loadScripts(redis: Redis): ChatScripts {
  const scripts: Partial<Record<ScriptName, (...args: Arg[]) => Promise<unknown>>> = {};
  for (const [name, file] of Object.entries(SCRIPT_FILES) as [ScriptName, string][]) {
    const lua = readFileSync(new URL(`./scripts/${file}`, import.meta.url), 'utf8');
    const command = commandName(name);
    redis.defineCommand(command, { numberOfKeys: numberOfKeys(file), lua });
    const call = (redis as unknown as Record<string, (...args: Arg[]) => Promise<unknown>>)[command]!;
    scripts[name] = (...args: Arg[]) => call.apply(redis, args);
  }
  return scripts as unknown as ChatScripts;
}
