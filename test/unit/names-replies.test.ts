import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidRoom, isValidUsername, nameKey } from '../../src/protocol/names.js';
import { replies } from '../../src/protocol/replies.js';

describe('name rules', () => {
  it('accepts 1–32 characters of A–Z a–z 0–9 _ . - as a username', () => {
    for (const name of ['a', 'Alice', 'bob_1', 'x.y-z', 'A'.repeat(32)]) assert.ok(isValidUsername(name), name);
    for (const name of ['', 'A'.repeat(33), 'al ice', 'al!ce', '#alice', 'älice', 'a\tb']) {
      assert.ok(!isValidUsername(name), name);
    }
  });

  it('accepts # then 1–64 of the same characters as a room', () => {
    for (const room of ['#a', '#Lobby', `#${'r'.repeat(64)}`, '#a.b-c_d']) assert.ok(isValidRoom(room), room);
    for (const room of ['#', 'lobby', `#${'r'.repeat(65)}`, '##a', '#a b', '#ä']) assert.ok(!isValidRoom(room), room);
  });

  it('folds case for identity', () => {
    assert.equal(nameKey('Alice'), nameKey('aLICE'));
    assert.equal(nameKey('#Lobby'), '#lobby');
  });
});

describe('replies', () => {
  it('terminates every line with CRLF and spells each error as PROTOCOL.md does', () => {
    assert.equal(replies.ok(), 'OK\r\n');
    assert.equal(replies.alreadyLoggedIn('Alice'), 'ERROR ALREADY LOGGED IN AS Alice\r\n');
    assert.equal(replies.nameTaken('BOB'), 'ERROR BOB IS ALREADY TAKEN\r\n');
    assert.equal(replies.alreadyJoined('Alice', '#LOBBY'), 'ERROR Alice ALREADY JOINED #LOBBY\r\n');
    assert.equal(replies.notInRoom('Alice', '#x'), 'ERROR Alice NOT IN #x\r\n');
    assert.equal(replies.roomNotAvailable('#x'), 'ERROR ROOM #x NOT AVAILABLE\r\n');
    assert.equal(replies.userNotFound('carol'), 'ERROR carol NOT FOUND\r\n');
    assert.equal(replies.roomMessage('Alice', '#Lobby', 'hi  there'), 'GOTROOMMSG Alice #Lobby hi  there\r\n');
    assert.equal(replies.userMessage('Alice', 'psst'), 'GOTUSERMSG Alice psst\r\n');
  });

  it('splits a room message around the room name without changing it', () => {
    const [before, after] = replies.roomMessageAround('Alice', 'hi');
    assert.equal(before + '#Lobby' + after, replies.roomMessage('Alice', '#Lobby', 'hi'));
  });
});
