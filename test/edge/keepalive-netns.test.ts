import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { vanishedClientBoundMs } from '../../src/net/keepalive.js';
import { ChatProcess } from '../helpers/chat-process.js';
import { LineClient } from '../helpers/client.js';

// A client that vanishes without a FIN or RST (coverage lost, a NAT forgetting the flow): it
// sits in a network namespace made here, connected across a veth pair, and then every packet
// in and out of that namespace is dropped. Its name must come free within the bound that
// docs/security.md gives: KEEPALIVE_MS + 10 s when nothing is sent to it, and no more than
// 2 × that when something is (TCP_USER_TIMEOUT; without it the kernel retransmits ~15 minutes).
//
// Needs root (CI runs as root): without it the test fails, saying so.

const KEEPALIVE_MS = 2000;
const BOUND_MS = vanishedClientBoundMs(KEEPALIVE_MS); // 12 s
const NS = `chatline-ka-${process.pid}`;
const HOST_IF = `ckh${process.pid % 1_000_000}`;
const NS_IF = `ckn${process.pid % 1_000_000}`;
// RFC 2544's benchmarking range, on interfaces this test makes and removes.
const SERVER_ADDRESS = '198.18.0.1';
const CLIENT_ADDRESS = '198.18.0.2';

const run = (command: string, ...args: string[]) => execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
const inNamespace = (...args: string[]) => run('ip', 'netns', 'exec', NS, ...args);

// Two connections from inside the namespace; prints each line the server sends, tagged.
const GHOSTS = `
const net = require('node:net');
for (const name of ['ghostIdle', 'ghostBusy']) {
  const socket = net.connect({ host: '${SERVER_ADDRESS}', port: Number(process.argv[1]), localAddress: '${CLIENT_ADDRESS}' });
  socket.setEncoding('utf8');
  socket.on('data', (text) => process.stdout.write(text.split('\\r\\n').filter(Boolean).map((line) => name + ' ' + line + '\\n').join('')));
  socket.on('error', () => {});
  socket.on('connect', () => socket.write('LOGIN ' + name + '\\n'));
}
`;

describe('a client that vanishes without closing', { timeout: 120_000 }, () => {
  let chat: ChatProcess | undefined;
  let ghosts: ChildProcess | undefined;
  let namespaceMade = false;

  before(async () => {
    if (process.getuid?.() !== 0) assert.fail('this test makes a network namespace and needs root (CI runs as root)');
    run('ip', 'netns', 'add', NS);
    namespaceMade = true;
    run('ip', 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF);
    run('ip', 'link', 'set', NS_IF, 'netns', NS);
    run('ip', 'addr', 'add', `${SERVER_ADDRESS}/30`, 'dev', HOST_IF);
    run('ip', 'link', 'set', HOST_IF, 'up');
    inNamespace('ip', 'addr', 'add', `${CLIENT_ADDRESS}/30`, 'dev', NS_IF);
    inNamespace('ip', 'link', 'set', NS_IF, 'up');
    inNamespace('ip', 'link', 'set', 'lo', 'up');
    chat = await ChatProcess.start({ REDIS_URL: '', HOST: SERVER_ADDRESS, KEEPALIVE_MS: String(KEEPALIVE_MS), LOG_LEVEL: 'debug' });
  });

  after(async () => {
    if (ghosts && ghosts.exitCode === null && ghosts.signalCode === null) {
      const exited = once(ghosts, 'exit');
      ghosts.kill('SIGKILL');
      await exited;
    }
    await chat?.stop();
    // Deleting the namespace removes the veth pair (both ends) and its nft table with it.
    if (namespaceMade) run('ip', 'netns', 'del', NS);
    try {
      run('ip', 'link', 'del', HOST_IF);
    } catch {
      // Gone with the namespace, as expected.
    }
  });

  it(`frees its name within KEEPALIVE_MS + 10 s (${BOUND_MS / 1000} s) idle, and within twice that while being sent messages`, async () => {
    const port = chat!.port;
    ghosts = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', GHOSTS, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    ghosts.stdout!.setEncoding('utf8').on('data', (text: string) => { output += text; });
    const deadline = Date.now() + 5000;
    while (!(output.includes('ghostIdle OK') && output.includes('ghostBusy OK'))) {
      if (Date.now() > deadline) assert.fail(`the clients in the namespace did not log in: ${JSON.stringify(output)}`);
      await sleep(20);
    }

    const observer = await LineClient.connect(port, SERVER_ADDRESS);
    await observer.command('LOGIN observer', 'OK');
    await observer.command('LOGIN ghostIdle', 'ERROR ALREADY LOGGED IN AS observer');
    const checker = await LineClient.connect(port, SERVER_ADDRESS);

    // The namespace goes dark: no FIN, no RST, nothing in or out.
    execFileSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], {
      input: ['table inet blackhole {', '  chain input { type filter hook input priority 0; policy drop; }',
        '  chain output { type filter hook output priority 0; policy drop; }', '}'].join('\n'),
    });
    const dark = performance.now();

    let idleFreedMs: number | undefined;
    let busyFreedMs: number | undefined;
    let sent = 0;
    while (idleFreedMs === undefined || busyFreedMs === undefined) {
      const elapsed = performance.now() - dark;
      if (elapsed > 2 * BOUND_MS + 4000) break;
      if (busyFreedMs === undefined) {
        // Keeps unacknowledged data in flight to the busy ghost, as a busy room would.
        observer.send(`MSG ghostBusy are you there ${sent++}`);
        const reply = await observer.nextLine();
        if (reply === 'ERROR ghostBusy NOT FOUND') busyFreedMs = performance.now() - dark;
        else assert.equal(reply, 'OK');
      }
      if (idleFreedMs === undefined) {
        checker.send('LOGIN ghostIdle');
        const reply = await checker.nextLine();
        if (reply === 'OK') idleFreedMs = performance.now() - dark;
        else assert.equal(reply, 'ERROR ghostIdle IS ALREADY TAKEN');
      }
      await sleep(250);
    }
    observer.destroy();
    checker.destroy();
    assert.ok(idleFreedMs !== undefined, `the idle ghost still held its name ${Math.round(2 * BOUND_MS / 1000) + 4} s after vanishing`);
    assert.ok(busyFreedMs !== undefined, `the ghost being sent messages still held its name ${Math.round(2 * BOUND_MS / 1000) + 4} s after vanishing`);
    // The bound is the real number, not a loose ceiling: keepalive, not some other timeout, did it.
    assert.ok(idleFreedMs > BOUND_MS - 2500 && idleFreedMs < BOUND_MS + 1500,
      `idle ghost freed after ${Math.round(idleFreedMs)} ms; expected about ${BOUND_MS} ms`);
    assert.ok(busyFreedMs > BOUND_MS - 2500 && busyFreedMs < 2 * BOUND_MS + 1500,
      `busy ghost freed after ${Math.round(busyFreedMs)} ms; expected under ${2 * BOUND_MS} ms`);
    console.log(`vanished clients freed after ${Math.round(idleFreedMs)} ms (idle) and ${Math.round(busyFreedMs)} ms (sent ${sent} messages); bound ${BOUND_MS} ms`);
  });
});
