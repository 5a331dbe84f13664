import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatProcess } from '../helpers/chat-process.js';
import { type LineClient, loggedIn } from '../helpers/client.js';
import { rssBytes } from '../helpers/process-memory.js';
import { waitFor } from '../helpers/wait.js';

// A client that never reads while 16 MiB is sent to it: cut off (and logged out) once 1 MiB
// waits for it, with the server's memory staying flat, and everyone else chatting on.


describe('a client that never reads', () => {
  let chat: ChatProcess;
  before(async () => { chat = await ChatProcess.start({ REDIS_URL: '', RATE_PER_SEC: '0' }); });
  after(async () => { await chat.stop(); });

  it('is disconnected after MAX_PENDING_BYTES, while memory stays bounded and others chat on', async () => {
    const sink = await loggedIn(chat.port, 'sink');
    sink.socket.pause();
    const flooder = await loggedIn(chat.port, 'flooder');
    const [alice, bob] = await Promise.all([loggedIn(chat.port, 'alice'), loggedIn(chat.port, 'bob')]);
    const text = 'x'.repeat(1000);

    const messagesOf = (mebibytes: number) => Math.ceil((mebibytes * 1024 * 1024) / (text.length + 24));
    const flood = async (to: string, count: number, reader?: LineClient) => {
      let replies: string[] = [];
      for (let sent = 0; sent < count; sent += 500) {
        const batch = Math.min(500, count - sent);
        flooder.send(...Array.from({ length: batch }, () => `MSG ${to} ${text}`));
        replies = replies.concat(await flooder.take(batch, 10_000));
        await reader?.take(batch, 10_000);
      }
      return replies;
    };
    // 5 MiB to a client that reads, twice, first: the heap grows to what the traffic
    // itself needs (one round was seen not to be enough), so what is measured next is only
    // what a reader that does not read costs.
    await flood('alice', messagesOf(5), alice);
    await flood('alice', messagesOf(5), alice);
    // Readings after a quiet second, when V8 has collected what the burst left: retention, not churn.
    const settledRss = async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      return rssBytes(chat.pid);
    };
    const rssBefore = await settledRss();
    const replies = await flood('sink', messagesOf(16));
    const rssGrowth = (await settledRss()) - rssBefore;
    assert.ok(replies.includes('ERROR sink NOT FOUND'), 'the sink was cut off and logged out before 16 MiB');
    assert.ok(chat.logs.some((line) => line.msg === 'closing a client that does not read' && line.user === 'sink'));
    // With the limit lifted, RSS grew by 11 MiB here (the kernel's socket buffers take the
    // rest). With it, settled RSS still moves by up to ~4 MiB between runs (allocator and GC
    // timing): 6 MiB tells the two apart. A 5 MiB flood and a 2 MiB bound did not; it flaked.
    assert.ok(rssGrowth < 6 * 1024 * 1024, `RSS grew by ${(rssGrowth / 1048576).toFixed(2)} MiB while 16 MiB was sent`);

    await alice.command('MSG bob fine here', 'OK');
    await bob.expect('GOTUSERMSG alice fine here');
    await waitFor('the name sink to be free', async () => {
      const again = await loggedIn(chat.port, 'sink').catch(() => undefined);
      again?.destroy();
      return again !== undefined;
    });
    for (const client of [sink, flooder, alice, bob]) client.destroy();
  });
});
