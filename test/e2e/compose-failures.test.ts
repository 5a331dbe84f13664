import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ComposeProject, requireDockerEngine } from '../helpers/compose.js';
import { freePort } from '../helpers/ports.js';

// A start that fails must say so, and not leave half the stack running behind the user's back.
// Both through deploy/compose/up.sh, the README's command. Fails, never skips, without Docker.

describe('docker compose: a failed start is loud', () => {
  const projects: ComposeProject[] = [];
  let blocker: Server | undefined;

  const project = (suffix: string, env: Record<string, string>) => {
    const made = new ComposeProject(`chatline-fail-${suffix}-${process.pid}`, env);
    projects.push(made);
    return made;
  };

  before(() => requireDockerEngine());

  after(async () => {
    blocker?.close();
    for (const made of projects) await made.run('down', '-v', '--remove-orphans', '--rmi', 'local').catch(() => {});
  });

  it('with the chat port taken: fails at once, and starts nothing', async () => {
    const port = await freePort();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(port, '127.0.0.1', resolve));
    const stack = project('port', { CHAT_PORT: String(port), HAPROXY_STATS_PORT: String(await freePort()) });
    await stack.run('build', 'chat');
    const up = await stack.upAndWait(60, '--scale', 'chat=2');
    assert.notEqual(up.code, 0, up.output);
    assert.match(up.output, /address already in use|port is already allocated/);
    // HAProxy, which publishes the port, starts first; everything else waits for it.
    assert.deepEqual(await stack.running(), [], 'no container of the project is running');
    blocker.close();
    blocker = undefined;
  });

  it('with a replica that cannot start: fails within the wait, naming it and showing why', async () => {
    const stack = project('config', {
      CHAT_PORT: String(await freePort()),
      HAPROXY_STATS_PORT: String(await freePort()),
      LOG_LEVEL: 'chatty',
    });
    await stack.run('build', 'chat');
    const started = Date.now();
    const up = await stack.upAndWait(90, '--scale', 'chat=2');
    assert.equal(up.code, 1, up.output);
    assert.match(up.output, /the stack did not come up/);
    assert.match(up.output, /chat[-_]1 \(/);
    assert.match(up.output, /bad configuration: LOG_LEVEL="chatty"/);
    assert.ok(Date.now() - started < 90_000, 'a crashing replica is caught before the timeout');
  });
});
