import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

// Loads the Lua scripts once per client and exposes each as a typed method. ioredis runs
// them by SHA (EVALSHA) and falls back to EVAL only when Redis does not know the script yet.
// Each file's header documents its keys, arguments and results.

const SCRIPT_FILES = {
  heartbeat: 'heartbeat-1.lua',
  login: 'login-1.lua',
  logout: 'logout-2.lua',
  reserveRoom: 'reserveRoom-2.lua',
  joinRoom: 'joinRoom-3.lua',
  partRoom: 'partRoom-3.lua',
  unindexRoom: 'unindexRoom-2.lua',
  sendToRoom: 'sendToRoom-2.lua',
  sendDirect: 'sendDirect-n.lua',
  publishTo: 'publishTo-1.lua',
  listRooms: 'listRooms-2.lua',
  claimReaping: 'claimReaping-2.lua',
} as const;

type ScriptName = keyof typeof SCRIPT_FILES;

const commandName = (name: ScriptName) => `chatline_${name}`;

/**
 * Commands written to Redis the moment they are called instead of through ioredis'
 * auto-pipeline, which defers to the next setImmediate. The DM batch is already one call per
 * event-loop turn, and deferring it again cost a whole extra turn. Room messages, and on Redis
 * Cluster their fan-out publishes, go the same way so that every delivery leaves in the order
 * it was called, as per-sender order needs. (The fan-out must not ride ioredis' Cluster pipeline
 * anyway: a pipeline is redirected only when all of its commands got the same MOVED, so in a
 * failover each member's publish would fail instead of following its slot.) On one Redis
 * primary the room messages of one stretch of synchronous work still leave as one write
 * (turn-writes.ts): held to the next tick, not the next turn.
 */
export const UNPIPELINED_COMMANDS = [commandName('sendDirect'), commandName('sendToRoom'), commandName('publishTo')];

type Arg = string | number;

/** The deadline a fenced script checks against Redis' clock, in ms; 0 turns the fence off. */
export type Deadline = number;
export const NO_DEADLINE: Deadline = 0;

/** Every fenced script answers this when Redis ran it after its deadline: it did nothing. */
export const EXPIRED = -1;

export interface ChatScripts {
  heartbeat(alive: string, workerId: string, ttlMs: number, probe: string, publish: string, mode: 'renew' | 'register'):
    Promise<[0 | 1, string, string]>;
  login(user: string, name: string, workerId: string, loginId: string, since: number, deadline: Deadline, replaces: string):
    Promise<1 | 0 | -1>;
  logout(user: string, userRooms: string, loginId: string): Promise<0 | 1>;
  reserveRoom(user: string, userRooms: string, loginId: string, roomKey: string, maxRooms: number, deadline: Deadline):
    Promise<2 | 1 | 0 | -1 | -2>;
  joinRoom(members: string, names: string, sizes: string, memberKey: string, loginId: string, display: string,
    roomKey: string, spelling: string, maxMembers: number, deadline: Deadline, feed: string, publish: string):
    Promise<1 | 0 | -1 | -3>;
  partRoom(members: string, names: string, sizes: string, memberKey: string, loginId: string, alsoLoginId: string,
    roomKey: string, deadline: Deadline, feed: string, publish: string): Promise<1 | 0 | -1>;
  unindexRoom(user: string, userRooms: string, loginId: string, roomKey: string, deadline: Deadline): Promise<1 | 0 | -1>;
  sendToRoom(members: string, names: string, senderKey: string, senderLoginId: string, roomKey: string,
    deadline: Deadline, mode: 'feed' | 'members', lineBefore: string, lineAfter: string, feed: string, publish: string):
    Promise<[1 | 0 | -1, string?, ...string[]]>;
  /** Keys: the user hashes; arguments: see sendDirect-n.lua. */
  sendDirect(numberOfKeys: number, ...keysThenArgs: Arg[]): Promise<number[]>;
  publishTo(user: string, inbox: string, loginId: string, payload: string, publish: string): Promise<0 | 1>;
  listRooms(names: string, sizes: string): Promise<string[]>;
  claimReaping(alive: string, reaper: string, workerId: string, claimMs: number): Promise<0 | 1>;
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

const INCLUDE = /^--- @include "([\w-]+)"$/m;

/**
 * A script's source with its includes expanded (BullMQ's convention): a line
 * `--- @include "name"` becomes scripts/include/name.lua, so a shared step is written once.
 */
export function scriptSource(file: string): string {
  let lua = readFileSync(new URL(`./scripts/${file}`, import.meta.url), 'utf8');
  for (let match = INCLUDE.exec(lua); match; match = INCLUDE.exec(lua)) {
    lua = lua.replace(match[0], readFileSync(new URL(`./scripts/include/${match[1]}.lua`, import.meta.url), 'utf8'));
  }
  return lua;
}

export function loadScripts(redis: Redis | Cluster): ChatScripts {
  const scripts: Partial<Record<ScriptName, (...args: Arg[]) => Promise<unknown>>> = {};
  for (const [name, file] of Object.entries(SCRIPT_FILES) as [ScriptName, string][]) {
    const lua = scriptSource(file);
    const command = commandName(name);
    redis.defineCommand(command, { numberOfKeys: numberOfKeys(file), lua });
    const call = (redis as unknown as Record<string, (...args: Arg[]) => Promise<unknown>>)[command]!;
    scripts[name] = (...args: Arg[]) => call.apply(redis, args);
  }
  return scripts as unknown as ChatScripts;
}
