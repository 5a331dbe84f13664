import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { SenderTurns } from '../../src/backplane/redis/sender-turns.js';

/** Deliveries the test finishes, each recording when it started. */
function recorder() {
  const started: string[] = [];
  const finishers = new Map<string, { ok: () => void; fail: (error: Error) => void }>();
  const delivery = (name: string) => () => new Promise<string>((resolve, reject) => {
    started.push(name);
    finishers.set(name, { ok: () => resolve(name), fail: reject });
  });
  const finish = async (name: string) => {
    finishers.get(name)!.ok();
    await nextTurn();
  };
  return { started, delivery, finish, finishers };
}

describe('SenderTurns (Redis Cluster delivery order)', () => {
  it('starts the DMs sent during a turn together, in order, once it finished', async () => {
    const turns = new SenderTurns();
    const { started, delivery, finish } = recorder();
    const first = turns.share('s', delivery('dm1'));
    const rest = ['dm2', 'dm3', 'dm4'].map((name) => turns.share('s', delivery(name)));
    await nextTurn();
    assert.deepEqual(started, ['dm1'], 'a DM started before the one ahead of it finished');
    await finish('dm1');
    assert.deepEqual(started, ['dm1', 'dm2', 'dm3', 'dm4']);
    // A DM sent once that shared turn started waits for the next one.
    const late = turns.share('s', delivery('dm5'));
    await nextTurn();
    assert.deepEqual(started, ['dm1', 'dm2', 'dm3', 'dm4']);
    for (const name of ['dm2', 'dm3', 'dm4']) await finish(name);
    assert.deepEqual(started.at(-1), 'dm5');
    await finish('dm5');
    assert.deepEqual(await Promise.all([first, ...rest, late]), ['dm1', 'dm2', 'dm3', 'dm4', 'dm5']);
  });

  it('never lets a DM overtake a room message sent before it, nor join a turn from before it', async () => {
    const turns = new SenderTurns();
    const { started, delivery, finish } = recorder();
    void turns.share('s', delivery('dm1'));
    void turns.share('s', delivery('dm2'));
    void turns.take('s', delivery('room'));
    void turns.share('s', delivery('dm3'));
    await finish('dm1');
    assert.deepEqual(started, ['dm1', 'dm2']);
    await finish('dm2');
    assert.deepEqual(started, ['dm1', 'dm2', 'room']);
    await finish('room');
    assert.deepEqual(started, ['dm1', 'dm2', 'room', 'dm3']);
  });

  it('keeps each sender to its own turns', async () => {
    const turns = new SenderTurns();
    const { started, delivery } = recorder();
    void turns.take('a', delivery('a-room'));
    void turns.share('b', delivery('b-dm'));
    void turns.share('a', delivery('a-dm'));
    await nextTurn();
    assert.deepEqual(started, ['a-room', 'b-dm']);
  });

  it('gives a failure to its own sender only, and goes on with the next turn', async () => {
    const turns = new SenderTurns();
    const { started, delivery, finishers, finish } = recorder();
    const failing = turns.share('s', delivery('dm1'));
    const thrown = turns.share('s', () => { throw new Error('synchronous'); });
    const next = turns.share('s', delivery('dm2'));
    finishers.get('dm1')!.fail(new Error('no answer'));
    await assert.rejects(failing, /no answer/);
    await assert.rejects(thrown, /synchronous/);
    await nextTurn();
    assert.deepEqual(started, ['dm1', 'dm2']);
    await finish('dm2');
    assert.equal(await next, 'dm2');
  });
});
