// Name rules from PROTOCOL.md "Names". Both kinds compare case-insensitively, so every
// lookup key is the lower-cased form; the spelling a user typed is kept separately for display.

const USERNAME = /^[A-Za-z0-9_.-]{1,32}$/;
const ROOM = /^#[A-Za-z0-9_.-]{1,64}$/;

export function isValidUsername(name: string): boolean {
  return USERNAME.test(name);
}

export function isValidRoom(room: string): boolean {
  return ROOM.test(room);
}

export function isRoomName(target: string): boolean {
  return target.startsWith('#');
}

/** The case-folded identity of a user or room; names are ASCII-only, so this is exact. */
export function nameKey(name: string): string {
  return name.toLowerCase();
}
