import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { GRAMMAR } from '../../src/commands.js';
import { parseLine } from '../../src/protocol/parser.js';

const parse = (line: string) => parseLine(line, GRAMMAR);
const error = (e: string) => ({ error: e });
const message = (target: { kind: 'room'; room: string } | { kind: 'user'; user: string }, text: string) =>
  ({ shape: 'message', target, text });

describe('command parser', () => {
  it('parses every version 1 command, keyword in any case, words split by spaces and tabs', () => {
    assert.deepEqual(parse('LOGIN Alice'), { keyword: 'LOGIN', args: { shape: 'user', user: 'Alice' } });
    assert.deepEqual(parse('login\t \tAlice  '), { keyword: 'LOGIN', args: { shape: 'user', user: 'Alice' } });
    assert.deepEqual(parse('LoGoUt'), { keyword: 'LOGOUT', args: { shape: 'none' } });
    assert.deepEqual(parse('join #Lobby'), { keyword: 'JOIN', args: { shape: 'room', room: '#Lobby' } });
    assert.deepEqual(parse('PART #lobby'), { keyword: 'PART', args: { shape: 'room', room: '#lobby' } });
    assert.deepEqual(parse('  MSG #lobby hi'), { keyword: 'MSG', args: message({ kind: 'room', room: '#lobby' }, 'hi') });
    assert.deepEqual(parse('msg bob hi'), { keyword: 'MSG', args: message({ kind: 'user', user: 'bob' }, 'hi') });
  });

  it('parses the version 1.1 commands', () => {
    assert.deepEqual(parse('PING'), { keyword: 'PING', args: { shape: 'token', token: undefined } });
    assert.deepEqual(parse('ping   '), { keyword: 'PING', args: { shape: 'token', token: undefined } });
    assert.deepEqual(parse('PING abc  def '), { keyword: 'PING', args: { shape: 'token', token: 'abc  def ' } });
    assert.deepEqual(parse('quit'), { keyword: 'QUIT', args: { shape: 'none' } });
    assert.deepEqual(parse('Help'), { keyword: 'HELP', args: { shape: 'none' } });
    assert.deepEqual(parse('ROOMS'), { keyword: 'ROOMS', args: { shape: 'none' } });
    assert.deepEqual(parse('who #Tea'), { keyword: 'WHO', args: { shape: 'room', room: '#Tea' } });
  });

  it('keeps message text byte for byte after the whitespace that follows the target', () => {
    assert.deepEqual(parse('MSG bob \t  Hello   World\t '), { keyword: 'MSG', args: message({ kind: 'user', user: 'bob' }, 'Hello   World\t ') });
    assert.deepEqual(parse('MSG #r MSG #r x'), { keyword: 'MSG', args: message({ kind: 'room', room: '#r' }, 'MSG #r x') });
  });

  it('answers INVALID COMMAND for unknown keywords and wrong argument counts', () => {
    for (const line of ['LOGINX a', 'LOG IN a', 'LOGIN', 'LOGIN a b', 'LOGOUT now', 'JOIN', 'JOIN #a #b',
      'PART', 'MSG', 'MSG bob', 'MSG bob   ', 'MSG #room', 'HELLO', 'logın a', '/join #a',
      'QUIT x', 'HELP x', 'ROOMS x', 'WHO', 'WHO #a #b', 'LIST', 'PINGX', 'PONG']) {
      assert.deepEqual(parse(line), error('INVALID COMMAND'), line);
    }
  });

  it('checks argument count before names, and names before anything stateful', () => {
    assert.deepEqual(parse('LOGIN bad!name'), error('INVALID USERNAME'));
    assert.deepEqual(parse('LOGIN bad! extra'), error('INVALID COMMAND'));
    assert.deepEqual(parse('JOIN lobby'), error('INVALID ROOM'));
    assert.deepEqual(parse('PART #'), error('INVALID ROOM'));
    assert.deepEqual(parse('WHO lobby'), error('INVALID ROOM'));
    assert.deepEqual(parse('MSG #bad! hi'), error('INVALID ROOM'));
    assert.deepEqual(parse('MSG b@d hi'), error('INVALID USERNAME'));
    assert.deepEqual(parse('MSG b@d'), error('INVALID COMMAND'));
  });
});

/** The grammar as regular expressions: what the parser's scans must agree with. */
const KEYWORD = /^[ \t]*([^ \t]+)/;
const MESSAGE = /^[ \t]*[^ \t]+[ \t]+([^ \t]+)[ \t]+([^ \t][\s\S]*)$/;
const ASCII_WORD = /^[A-Za-z]+$/;

describe('command parser against the grammar written as regular expressions', () => {
  // Lines built mostly from the characters the scans decide on, so keywords, blanks and
  // targets line up in every way, including the odd ones.
  const lineArbitrary = fc.array(fc.constantFrom('MSG', 'msg', 'MsG', 'LOGIN', 'ping', 'ı', ' ', '\t', '  ', 'bob', '#r', 'x',
    'b@d', '#', 'é', '\u00a0', '\v', '\r'), { maxLength: 8 }).map((parts) => parts.join(''));

  it('finds the same keyword, target and text on any line', () => {
    fc.assert(fc.property(lineArbitrary, (line) => {
      const word = KEYWORD.exec(line)?.[1] ?? '';
      const keyword = ASCII_WORD.test(word) ? word.toUpperCase() : '';
      const parsed = parse(line);
      if (!GRAMMAR.has(keyword)) return assert.deepEqual(parsed, error('INVALID COMMAND'), line);
      assert.equal('keyword' in parsed ? parsed.keyword : keyword, keyword, line);
      if (keyword !== 'MSG') return;
      const match = MESSAGE.exec(line);
      if (!match) return assert.deepEqual(parsed, error('INVALID COMMAND'), line);
      if ('error' in parsed) return assert.notEqual(parsed.error, 'INVALID COMMAND', line);
      const { target, text } = parsed.args as { target: { kind: 'room'; room: string } | { kind: 'user'; user: string }; text: string };
      assert.equal(target.kind === 'room' ? target.room : target.user, match[1], line);
      assert.equal(text, match[2], line);
    }), { numRuns: 20_000 });
  });
});
