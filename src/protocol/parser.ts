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
// keyword, then optionally whitespace and the rest of the line.
const TOKEN = /^[ \t]*[^ \t]+(?:[ \t]+([\s\S]*))?$/;

const SPACE = 0x20;
const TAB = 0x09;

const invalid = (error: ParseError): Parsed => ({ error });

// The keyword and a MSG's target and text are found by scanning, not by regular expressions:
// every message passes here, and a match array and its substrings per line are most of what
// parsing one costs. test/unit/parser.test.ts checks the scans against the expressions.

const isBlank = (code: number) => code === SPACE || code === TAB;

/** The index of the first character at or after `from` that is not a space or tab. */
function skipBlanks(line: string, from: number): number {
  while (from < line.length && isBlank(line.charCodeAt(from))) from++;
  return from;
}

/** The index just past the word that starts at `from`. */
function wordEnd(line: string, from: number): number {
  while (from < line.length && !isBlank(line.charCodeAt(from))) from++;
  return from;
}

/** The word as an upper-case keyword, or '' unless it is ASCII letters only. */
function keywordOf(word: string): string {
  let lowerCase = false;
  for (let i = 0; i < word.length; i++) {
    const code = word.charCodeAt(i);
    if (code >= 0x61 && code <= 0x7a) lowerCase = true;
    else if (code < 0x41 || code > 0x5a) return '';
  }
  // ASCII only, so toUpperCase cannot map a non-ASCII letter onto an ASCII one ('ı' → 'I').
  return lowerCase ? word.toUpperCase() : word;
}

export function parseLine(line: string, grammar: Grammar): Parsed {
  // Only the keyword first: splitting a MSG's whole text into words would cost per word.
  const start = skipBlanks(line, 0);
  const end = wordEnd(line, start);
  const keyword = keywordOf(line.slice(start, end));
  const shape = grammar.get(keyword);
  if (shape === undefined) return invalid('INVALID COMMAND');
  const args = parseArguments(line, shape, end);
  return 'error' in args ? args : { keyword, args };
}

function parseArguments(line: string, shape: ArgumentShape, keywordEnd: number): Arguments | { error: ParseError } {
  switch (shape) {
    case 'message':
      return parseMessage(line, keywordEnd);
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

/** keyword, blanks, target, blanks, then the text: the rest of the line, from its first non-blank. */
function parseMessage(line: string, keywordEnd: number): Arguments | { error: ParseError } {
  const targetStart = skipBlanks(line, keywordEnd);
  const targetEnd = wordEnd(line, targetStart);
  const textStart = skipBlanks(line, targetEnd);
  if (targetStart === keywordEnd || targetEnd === targetStart || textStart === targetEnd || textStart === line.length) {
    return { error: 'INVALID COMMAND' };
  }
  const target = line.slice(targetStart, targetEnd);
  const text = line.slice(textStart);
  if (isRoomName(target)) {
    return isValidRoom(target) ? { shape: 'message', target: { kind: 'room', room: target }, text } : { error: 'INVALID ROOM' };
  }
  return isValidUsername(target) ? { shape: 'message', target: { kind: 'user', user: target }, text } : { error: 'INVALID USERNAME' };
}
