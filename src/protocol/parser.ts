import { isRoomName, isValidRoom, isValidUsername } from './names.js';

// Line → keyword and arguments (PROTOCOL.md "Commands"). Pure. Which keywords exist and what
// arguments each takes is the command table's business (src/commands.ts); this module knows only
// the few argument shapes and how each is read. Name checks happen here because the protocol
// ranks INVALID USERNAME / INVALID ROOM before every check that needs state.

export type ArgumentShape = 'none' | 'user' | 'room' | 'message' | 'token';

export type MessageTarget = { kind: 'room'; room: string } | { kind: 'user'; user: string };

export type Arguments =
  | { shape: 'none' }
  | { shape: 'user'; user: string }
  | { shape: 'room'; room: string }
  | { shape: 'message'; target: MessageTarget; text: string }
  /** The rest of the line after the keyword and the whitespace that follows it, as sent; undefined when none. */
  | { shape: 'token'; token: string | undefined };

export type ArgumentsOf<S extends ArgumentShape> = Extract<Arguments, { shape: S }>;

export type ParseError = 'INVALID COMMAND' | 'INVALID USERNAME' | 'INVALID ROOM';

export type Parsed = { keyword: string; args: Arguments } | { error: ParseError };

/** Upper-case keyword → the shape of its arguments. */
export type Grammar = ReadonlyMap<string, ArgumentShape>;

const WORDS = /[^ \t]+/g;
const KEYWORD = /^[ \t]*([^ \t]+)/;
// keyword, target, then text: everything after the whitespace that follows the target.
const MESSAGE = /^[ \t]*[^ \t]+[ \t]+([^ \t]+)[ \t]+([^ \t][\s\S]*)$/;
// keyword, then optionally whitespace and the rest of the line.
const TOKEN = /^[ \t]*[^ \t]+(?:[ \t]+([\s\S]*))?$/;
const ASCII_WORD = /^[A-Za-z]+$/;

const invalid = (error: ParseError): Parsed => ({ error });

export function parseLine(line: string, grammar: Grammar): Parsed {
  // Only the keyword first: splitting a MSG's whole text into words would cost per word.
  const word = KEYWORD.exec(line)?.[1] ?? '';
  // ASCII only: String#toUpperCase maps some non-ASCII letters onto ASCII ones ('ı' → 'I').
  const keyword = ASCII_WORD.test(word) ? word.toUpperCase() : '';
  const shape = grammar.get(keyword);
  if (shape === undefined) return invalid('INVALID COMMAND');
  const args = parseArguments(line, shape);
  return 'error' in args ? args : { keyword, args };
}

function parseArguments(line: string, shape: ArgumentShape): Arguments | { error: ParseError } {
  switch (shape) {
    case 'message':
      return parseMessage(line);
    case 'token': {
      const rest = TOKEN.exec(line)?.[1];
      return { shape, token: rest === undefined || rest === '' ? undefined : rest };
    }
    case 'none':
      return countWords(line) === 1 ? { shape } : { error: 'INVALID COMMAND' };
    case 'user':
    case 'room': {
      const words = line.match(WORDS) ?? [];
      if (words.length !== 2) return { error: 'INVALID COMMAND' };
      const name = words[1]!;
      if (shape === 'user') return isValidUsername(name) ? { shape, user: name } : { error: 'INVALID USERNAME' };
      return isValidRoom(name) ? { shape, room: name } : { error: 'INVALID ROOM' };
    }
  }
}

function countWords(line: string): number {
  return line.match(WORDS)?.length ?? 0;
}

function parseMessage(line: string): Arguments | { error: ParseError } {
  const match = MESSAGE.exec(line);
  if (!match) return { error: 'INVALID COMMAND' };
  const target = match[1]!;
  const text = match[2]!;
  if (isRoomName(target)) {
    return isValidRoom(target) ? { shape: 'message', target: { kind: 'room', room: target }, text } : { error: 'INVALID ROOM' };
  }
  return isValidUsername(target) ? { shape: 'message', target: { kind: 'user', user: target }, text } : { error: 'INVALID USERNAME' };
}
