import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { type Heartbeat, Lease, leaseTiming } from '../../src/backplane/redis/lease.js';

type Reply = [0 | 1, string, string];

/** Heartbeats answered by the test, one at a time, in the order they were sent. */
function scriptedHeartbeat() {
  const pending: { mode: string; answer: (reply: Reply) => void }[] = [];
  const heartbeat: Heartbeat = (mode) => new Promise<Reply>((answer) => pending.push({ mode, answer }));
  return { heartbeat, pending };
}

const NOW: Reply = [1, '1800000000', '0'];
const GONE: Reply = [0, '1800000000', '0'];

function leaseWith(heartbeat: Heartbeat) {
  const events = { lost: 0, renewed: 0 };
  const lease = new Lease(heartbeat, leaseTiming(10_000), {
    lost: () => events.lost++,
    unanswered: () => {},
    renewed: () => events.renewed++,
  }, pino({ level: 'silent' }));
  return { lease, events };
}

describe('Lease', () => {
  it('takes a worker for dead when its renewal finds the key gone', async () => {
    const { heartbeat, pending } = scriptedHeartbeat();
    const { lease, events } = leaseWith(heartbeat);
    const registered = lease.register();
    pending.shift()!.answer(NOW);
    await registered;
    assert.ok(lease.valid());
    const beat = lease.beat();
    pending.shift()!.answer(GONE);
    assert.equal(await beat, 'gone');
    assert.equal(events.lost, 1);
    assert.equal(lease.valid(), false);
    lease.stop();
  });

  it('ignores a renewal sent before the worker registered again: its key is not the current one', async () => {
    const { heartbeat, pending } = scriptedHeartbeat();
    const { lease, events } = leaseWith(heartbeat);
    const first = lease.register();
    pending.shift()!.answer(NOW);
    await first;
    // A renewal under the old id is on its way when the worker registers a new id.
    const stale = lease.beat();
    const again = lease.register();
    const [staleBeat, registration] = [pending.shift()!, pending.shift()!];
    assert.deepEqual([staleBeat.mode, registration.mode], ['renew', 'register']);
    registration.answer(NOW);
    await again;
    staleBeat.answer(GONE);
    await stale;
    assert.equal(events.lost, 0, 'a stale "gone" started another renewal');
    assert.ok(lease.valid(), 'a stale "gone" revoked the new lease');
    lease.stop();
  });
});
