import { isRoomName, isValidRoom, isValidUsername } from './names.js';

// Line → command (PROTOCOL.md "Commands"). Pure. Name checks happen here because the
// protocol ranks INVALID USERNAME / INVALID ROOM before every check that needs state.

export type Command =
  | { kind: 'login'; user: string }
  | { kind: 'logout' }
  | { kind: 'join'; room: string }
  | { kind: 'part'; room: string }
  | { kind: 'roomMessage'; room: string; text: string }
  | { kind: 'userMessage'; user: string; text: string };

export type ParseError = 'INVALID COMMAND' | 'INVALID USERNAME' | 'INVALID ROOM';

export type Parsed = Command | { kind: 'error'; error: ParseError };

const WORDS = /[^ \t]+/g;
const KEYWORD = /^[ \t]*([^ \t]+)/;
// keyword, target, then text: everything after the whitespace that follows the target.
const MESSAGE = /^[ \t]*[^ \t]+[ \t]+([^ \t]+)[ \t]+([^ \t][\s\S]*)$/;
const ASCII_WORD = /^[A-Za-z]+$/;

const invalid = (error: ParseError): Parsed => ({ kind: 'error', error });

export function parseCommand(line: string): Parsed {
  // Only the keyword first: splitting a MSG's whole text into words would cost per word.
  const keyword = KEYWORD.exec(line)?.[1] ?? '';
  // ASCII only: String#toUpperCase maps some non-ASCII letters onto ASCII ones ('ı' → 'I').
  const upper = ASCII_WORD.test(keyword) ? keyword.toUpperCase() : '';
  if (upper === 'MSG') return parseMessage(line);
  const words = line.match(WORDS) ?? [];
  switch (upper) {
    case 'LOGIN': {
      if (words.length !== 2) return invalid('INVALID COMMAND');
      const user = words[1]!;
      return isValidUsername(user) ? { kind: 'login', user } : invalid('INVALID USERNAME');
    }
    case 'LOGOUT':
      return words.length === 1 ? { kind: 'logout' } : invalid('INVALID COMMAND');
    case 'JOIN':
    case 'PART': {
      if (words.length !== 2) return invalid('INVALID COMMAND');
      const room = words[1]!;
      if (!isValidRoom(room)) return invalid('INVALID ROOM');
      return upper === 'JOIN' ? { kind: 'join', room } : { kind: 'part', room };
    }
    default:
      return invalid('INVALID COMMAND');
  }
}

function parseMessage(line: string): Parsed {
  const match = MESSAGE.exec(line);
  if (!match) return invalid('INVALID COMMAND');
  const target = match[1]!;
  const text = match[2]!;
  if (isRoomName(target)) {
    return isValidRoom(target) ? { kind: 'roomMessage', room: target, text } : invalid('INVALID ROOM');
  }
  return isValidUsername(target) ? { kind: 'userMessage', user: target, text } : invalid('INVALID USERNAME');
}
