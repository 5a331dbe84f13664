import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChatProcess, runChatToExit } from '../helpers/chat-process.js';
import { protocolSuite } from './protocol.suite.js';

protocolSuite('embedded mode (one process, in-memory state)', async () => {
  const chat = await ChatProcess.start({ REDIS_URL: '' });
  return { ports: [chat.port], stop: async () => { await chat.stop(); } };
});

describe('starting chatline', () => {
  it('says in its first log line that it is embedded and how to scale out', async () => {
    const chat = await ChatProcess.start({ REDIS_URL: '' });
    try {
      const first = chat.logs[0]!;
      assert.equal(first.mode, 'embedded');
      assert.match(first.msg, /REDIS_URL=redis:\/\/host:6379/);
    } finally {
      assert.equal(await chat.stop(), 0);
    }
  });

  it('answers /healthz and /readyz on HEALTH_PORT', async () => {
    const chat = await ChatProcess.start({ REDIS_URL: '' });
    try {
      assert.equal((await chat.probe('/healthz')).status, 200);
      const ready = await chat.probe('/readyz');
      assert.equal(ready.status, 200);
      assert.equal(ready.body.ready, true);
    } finally {
      await chat.stop();
    }
  });

  for (const [variable, value, expected] of [
    ['PORT', 'eighty', /PORT="eighty" must be a whole number/],
    ['PORT', '70000', /PORT="70000" must be at most 65535/],
    ['REDIS_URL', 'localhost:6379', /REDIS_URL="localhost:6379" must be a URL like redis:\/\/host:6379/],
    ['WORKERS', '0', /WORKERS="0" must be at least 1/],
    ['CONNECTION_DISTRIBUTION', 'random', /CONNECTION_DISTRIBUTION="random" .*"round-robin"\|"kernel"/],
    ['MAX_LINE_BYTES', '-5', /MAX_LINE_BYTES="-5" must be a whole number/],
  ] as const) {
    it(`refuses ${variable}=${value} with one line that names the variable`, async () => {
      const { code, stderr } = await runChatToExit({ [variable]: value });
      assert.equal(code, 1);
      assert.match(stderr, expected);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
    });
  }
});
