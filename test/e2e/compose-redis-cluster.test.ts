import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LineClient } from '../helpers/client.js';
import { ComposeProject, loginThroughHaproxy, requireDockerEngine } from '../helpers/compose.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

// docker-compose.redis-cluster.yml as the README tells users to run it (deploy/compose/up.sh with
// COMPOSE_FILE): six redis:7 nodes formed into a cluster by the one-shot init, chat replicas on
// REDIS_CLUSTER_NODES, HAProxy in front. Fails, never skips, without Docker.

const FILE = 'docker-compose.redis-cluster.yml';
const NODES = ['redis-node-0', 'redis-node-1', 'redis-node-2', 'redis-node-3', 'redis-node-4', 'redis-node-5'];
const CLIENTS = 12;
/** Messages each sender sends to each recipient (and to the room): enough to see an order. */
const ROUNDS = 3;

/** Per sender, the round numbers in the order they arrived: `GOT… <sender> … <round>` lines. */
function roundsBySender(lines: string[], pattern: RegExp): Map<string, number[]> {
  const bySender = new Map<string, number[]>();
  for (const line of lines) {
    const match = pattern.exec(line);
    assert.ok(match, `unexpected line ${JSON.stringify(line)}`);
    const [, sender, round] = match;
    bySender.set(sender!, [...(bySender.get(sender!) ?? []), Number(round)]);
  }
  return bySender;
}

describe('docker compose on a Redis Cluster: HAProxy over chat replicas on 3 primaries + 3 replicas', () => {
  let project: ComposeProject;
  let port: number;
  const clients: LineClient[] = [];
  /** users[i]'s client, once logged in. */
  let everyone: LineClient[] = [];
  const users = Array.from({ length: CLIENTS }, (_, i) => `user${i}`);

  /** A shell command run in a container of a cluster node, with redis-cli authenticated. */
  const onNode = async (node: string, script: string): Promise<string> => {
    const [container] = await project.containers(node);
    assert.ok(container, `${node} runs`);
    return project.exec(container, 'sh', '-c',
      `IFS= read -r REDISCLI_AUTH < /run/secrets/redis_password; export REDISCLI_AUTH; ${script}`);
  };

  /** The init's container: it has exited, so only `ps -a` lists it (Compose v2's `ps` shows running ones). */
  const initLog = async (): Promise<string> => {
    const [init] = (await project.run('ps', '-a', '-q', 'redis-cluster-init')).split('\n').filter(Boolean);
    assert.ok(init, 'the init container is there');
    return project.logText(init);
  };

  const loginThroughBalancer = (user: string, timeoutMs?: number) => loginThroughHaproxy(port, user, clients, timeoutMs);

  before(async () => {
    requireDockerEngine();
    port = await freePort();
    project = new ComposeProject(`chatline-cluster-e2e-${process.pid}`, {
      COMPOSE_FILE: FILE,
      CHAT_PORT: String(port),
      CHAT_WORKERS: '2',
      HAPROXY_STATS_PORT: String(await freePort()),
    });
    await project.startStack(3, 150);
  });

  after(async () => {
    for (const client of clients) client.destroy();
    await project?.run('down', '-v', '--remove-orphans', '--rmi', 'local');
  });

  it('forms one cluster of 3 primaries and 3 replicas, each node set up like the main stack\'s Redis', async () => {
    assert.match(await initLog(), /forming a cluster of (\d+\.\d+\.\d+\.\d+:6379 ?){6}/);
    const info = await onNode('redis-node-0', 'redis-cli cluster info');
    assert.match(info, /^cluster_state:ok\r?$/m);
    assert.match(info, /^cluster_known_nodes:6\r?$/m);
    assert.match(info, /^cluster_size:3\r?$/m);
    const roles = (await onNode('redis-node-0', 'redis-cli cluster nodes')).split('\n').filter(Boolean)
      .map((line) => (line.split(' ')[2]!.includes('master') ? 'primary' : 'replica')).sort();
    assert.deepEqual(roles, ['primary', 'primary', 'primary', 'replica', 'replica', 'replica']);
    await Promise.all(NODES.map(async (node) => {
      const [ping, policy, buffers, protectedMode] = (await onNode(node, [
        'REDISCLI_AUTH= redis-cli ping', 'echo ---', 'redis-cli config get maxmemory-policy', 'echo ---',
        'redis-cli config get client-output-buffer-limit', 'echo ---', 'redis-cli config get protected-mode',
      ].join('; '))).split('---\n');
      assert.match(ping!, /NOAUTH/, `${node} wants the password`);
      assert.match(policy!, /noeviction/, node);
      assert.match(buffers!, /pubsub 134217728 33554432 60/, node);
      assert.match(protectedMode!, /yes/, node);
    }));
  });

  it('serves a dozen clients over the replicas: every DM and room message arrives once, in order', async () => {
    const inOrder = Array.from({ length: ROUNDS }, (_, round) => round);
    everyone = await Promise.all(users.map((user) => loginThroughBalancer(user)));

    const served = new Map<string, number>();
    for (const container of await project.containers('chat')) {
      const opened = (await project.logsOf(container)).filter((line) => line.msg === 'connection opened').length;
      if (opened > 0) served.set(container.slice(0, 12), opened);
    }
    assert.ok(served.size >= 2, `clients landed on ${served.size} replica(s): ${JSON.stringify([...served])}`);

    // Every pair, both ways, ROUNDS numbered DMs each, all pipelined at once.
    everyone.forEach((client, i) => client.send(...Array.from({ length: ROUNDS }, (_, round) =>
      users.filter((_, j) => j !== i).map((to) => `MSG ${to} dm ${users[i]} ${round}`)).flat()));
    await Promise.all(everyone.map(async (client, i) => {
      const lines = await client.take(2 * (CLIENTS - 1) * ROUNDS, 30_000);
      assert.equal(lines.filter((line) => line === 'OK').length, (CLIENTS - 1) * ROUNDS, `${users[i]}: every MSG answered OK`);
      const got = roundsBySender(lines.filter((line) => line !== 'OK'), /^GOTUSERMSG (\S+) dm \1 (\d+)$/);
      const expected = new Map(users.filter((_, j) => j !== i).map((from) => [from, inOrder]));
      assert.deepEqual(new Map([...got].sort()), new Map([...expected].sort()), `${users[i]}: each DM once, in order`);
    }));

    // One room with everyone in it.
    await Promise.all(everyone.map((client) => client.command('JOIN #everyone', 'OK')));
    everyone.forEach((client, i) => client.send(...Array.from({ length: ROUNDS }, (_, round) => `MSG #everyone room ${users[i]} ${round}`)));
    await Promise.all(everyone.map(async (client, i) => {
      const lines = await client.take(ROUNDS + CLIENTS * ROUNDS, 30_000);
      assert.equal(lines.filter((line) => line === 'OK').length, ROUNDS);
      const got = roundsBySender(lines.filter((line) => line !== 'OK'), /^GOTROOMMSG (\S+) #everyone room \1 (\d+)$/);
      const expected = new Map(users.map((from) => [from, inOrder]));
      assert.deepEqual(new Map([...got].sort()), new Map([...expected].sort()), `${users[i]}: each room message once, in order`);
    }));
    // Nothing more on its way: no duplicate shows up late.
    await Promise.all(everyone.map((client) => client.expectSilence(500)));
  });

  it('spreads the users\' keys over more than one primary, each reachable through the cluster (redis-cli -c)', async () => {
    const userKeys = users.map((user) => `chat:{${user}}:user`);
    // From one node, following MOVED: every logged-in user's hash is in the cluster.
    const exists = await onNode('redis-node-0', userKeys.map((key) => `redis-cli -c exists '${key}'`).join('; '));
    assert.deepEqual(exists.trim().split('\n'), userKeys.map(() => '1'), 'redis-cli -c finds every user');
    // Where they live: each primary's own keys.
    const primaries = (await onNode('redis-node-0', 'redis-cli cluster nodes')).split('\n').filter(Boolean)
      .map((line) => line.split(' ')).filter((fields) => fields[2]!.includes('master')).map((fields) => fields[1]!.split('@')[0]!);
    assert.equal(primaries.length, 3);
    const keysOn = new Map<string, string[]>();
    for (const address of primaries) {
      const [host, nodePort] = address.split(':');
      const keys = (await onNode('redis-node-0', `redis-cli -h ${host} -p ${nodePort} --scan --pattern 'chat:{user*}:user'`))
        .split('\n').filter(Boolean);
      keysOn.set(address, keys);
    }
    assert.deepEqual([...keysOn.values()].flat().sort(), [...userKeys].sort(), 'each user hash on exactly one primary');
    const holding = [...keysOn].filter(([, keys]) => keys.length > 0);
    assert.ok(holding.length >= 2, `user keys on ${holding.length} primary(ies): ${JSON.stringify([...keysOn])}`);
  });

  it('leaves a formed cluster alone on the next `up`, and keeps serving', async () => {
    const chatBefore = (await project.containers('chat')).sort();
    // Plain `up -d`: it succeeds only if the init exits 0 again (chat depends on that). Not
    // up.sh, whose health wait would make this test about the replicas' health at that moment.
    await project.run('up', '-d', '--scale', 'chat=3');
    const log = await waitFor('the init to have run again', async () => {
      const text = await initLog();
      return text.match(/all 6 nodes say cluster_state:ok/g)?.length === 2 && text;
    }, 30_000);
    assert.equal(log.match(/forming a cluster/g)?.length, 1, 'the cluster was created once');
    assert.match(log, /the cluster is already formed/);
    assert.deepEqual((await project.containers('chat')).sort(), chatBefore, 'the chat replicas kept running');
    const [first, second] = everyone;
    assert.ok(first && second, 'the clients of the chat test');
    await first.command(`MSG ${users[1]} after the second up`, 'OK');
    await second.expect(`GOTUSERMSG ${users[0]} after the second up`);
  });

  it('refuses, loudly, a cluster some of whose nodes lost their /data (and up.sh shows why)', async () => {
    // A node container removed with its volume comes back fresh, outside the cluster the others
    // still form. The init does not guess a repair: it fails, and says how to start over.
    await project.run('rm', '-s', '-f', '-v', 'redis-node-5');
    const up = await project.upAndWait(60, '--scale', 'chat=3');
    assert.equal(up.code, 1, up.output);
    assert.match(up.output, /the stack did not come up/);
    assert.match(up.output, /redis-cluster-init[-_]1 \(exited/);
    assert.match(up.output, /5 node\(s\) are in a cluster and 1 are fresh/);
    assert.match(up.output, /down -v, then up/);
  });
});
