import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommand } from '../../src/protocol/parser.js';

const error = (e: string) => ({ kind: 'error', error: e });

describe('command parser', () => {
  it('parses every command, keyword in any case, words split by spaces and tabs', () => {
    assert.deepEqual(parseCommand('LOGIN Alice'), { kind: 'login', user: 'Alice' });
    assert.deepEqual(parseCommand('login\t \tAlice  '), { kind: 'login', user: 'Alice' });
    assert.deepEqual(parseCommand('LoGoUt'), { kind: 'logout' });
    assert.deepEqual(parseCommand('join #Lobby'), { kind: 'join', room: '#Lobby' });
    assert.deepEqual(parseCommand('PART #lobby'), { kind: 'part', room: '#lobby' });
    assert.deepEqual(parseCommand('  MSG #lobby hi'), { kind: 'roomMessage', room: '#lobby', text: 'hi' });
    assert.deepEqual(parseCommand('msg bob hi'), { kind: 'userMessage', user: 'bob', text: 'hi' });
  });

  it('keeps message text byte for byte after the whitespace that follows the target', () => {
    assert.deepEqual(parseCommand('MSG bob \t  Hello   World\t '), { kind: 'userMessage', user: 'bob', text: 'Hello   World\t ' });
    assert.deepEqual(parseCommand('MSG #r MSG #r x'), { kind: 'roomMessage', room: '#r', text: 'MSG #r x' });
    assert.deepEqual(parseCommand('MSG bob a\u2028b'), { kind: 'userMessage', user: 'bob', text: 'a\u2028b' });
  });

  it('answers INVALID COMMAND for unknown keywords and wrong argument counts', () => {
    for (const line of ['LOGINX a', 'LOG IN a', 'LOGIN', 'LOGIN a b', 'LOGOUT now', 'JOIN', 'JOIN #a #b',
      'PART', 'MSG', 'MSG bob', 'MSG bob   ', 'MSG #room', 'HELLO', 'logın a', '/join #a']) {
      assert.deepEqual(parseCommand(line), error('INVALID COMMAND'), line);
    }
  });

  it('checks argument count before names, and names before anything stateful', () => {
    assert.deepEqual(parseCommand('LOGIN bad!name'), error('INVALID USERNAME'));
    assert.deepEqual(parseCommand('LOGIN bad! extra'), error('INVALID COMMAND'));
    assert.deepEqual(parseCommand('JOIN lobby'), error('INVALID ROOM'));
    assert.deepEqual(parseCommand('PART #'), error('INVALID ROOM'));
    assert.deepEqual(parseCommand('MSG #bad! hi'), error('INVALID ROOM'));
    assert.deepEqual(parseCommand('MSG b@d hi'), error('INVALID USERNAME'));
    assert.deepEqual(parseCommand('MSG b@d'), error('INVALID COMMAND'));
  });
});
