import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LineClient } from '../helpers/client.js';
import { ComposeProject, loginThroughHaproxy, requireDockerEngine } from '../helpers/compose.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

// `docker compose up` as a user runs it (deploy/compose/up.sh, which the README names): image
// built from the Dockerfile, Redis, chat replicas and HAProxy, all reached through one
// published port, with the monitoring profile's Prometheus scraping them. Fails, never skips,
// without Docker.

const CLIENTS = 12;

/** One number from Prometheus' HTTP query API (undefined while the query returns nothing). */
async function promQuery(port: number, query: string): Promise<number | undefined> {
  const response = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = await response.json() as { status: string; error?: string; data: { resultType: string; result: { value: [number, string] }[] } };
  assert.equal(body.status, 'success', `${query}: ${body.error}`);
  if (body.data.result.length === 0) return undefined;
  assert.equal(body.data.result.length, 1, `${query} returns one series`);
  return Number(body.data.result[0]!.value[1]);
}

describe('docker compose: HAProxy over chat replicas on one Redis', () => {
  let project: ComposeProject;
  let port: number;
  let prometheusPort: number;
  const clients: LineClient[] = [];

  const loginThroughBalancer = (user: string, timeoutMs?: number) => loginThroughHaproxy(port, user, clients, timeoutMs);

  /** Which containers logged 'connection opened', by container id. */
  const containersWithClients = async (): Promise<Map<string, number>> => {
    const counts = new Map<string, number>();
    for (const container of await project.containers('chat')) {
      const opened = (await project.logsOf(container)).filter((line) => line.msg === 'connection opened').length;
      if (opened > 0) counts.set(container, opened);
    }
    return counts;
  };

  before(async () => {
    requireDockerEngine();
    port = await freePort();
    prometheusPort = await freePort();
    project = new ComposeProject(`chatline-e2e-${process.pid}`, {
      CHAT_PORT: String(port),
      CHAT_WORKERS: '2',
      COMPOSE_PROFILES: 'monitoring',
      PROMETHEUS_PORT: String(prometheusPort),
      HAPROXY_STATS_PORT: String(await freePort()),
    });
    await project.startStack(3, 120);
  });

  after(async () => {
    for (const client of clients) client.destroy();
    // The image too: compose named it after this throwaway project.
    await project?.run('down', '-v', '--remove-orphans', '--rmi', 'local');
  });

  it('serves a dozen clients through one port, spread over the replicas, all able to chat', async () => {
    const users = Array.from({ length: CLIENTS }, (_, i) => `user${i}`);
    const [first] = [await loginThroughBalancer(users[0]!)];
    const rest = await Promise.all(users.slice(1).map((user) => loginThroughBalancer(user, 20_000)));
    const everyone = [first!, ...rest];

    const spread = await containersWithClients();
    assert.ok(spread.size >= 2, `clients landed on ${spread.size} replica(s): ${JSON.stringify([...spread])}`);
    // HAProxy sends a PROXY v2 header: each replica logs the client's address, and HAProxy as `via`.
    const [lb] = await project.containers('lb');
    const lbAddress = (await project.exec(lb!, 'hostname', '-i')).trim().split(/\s+/)[0]!;
    for (const container of spread.keys()) {
      for (const line of (await project.logsOf(container)).filter((entry) => entry.msg === 'connection opened')) {
        assert.ok(String(line.via).startsWith(`${lbAddress}:`), `via ${line.via}, HAProxy is ${lbAddress}`);
        assert.ok(!String(line.remote).startsWith(`${lbAddress}:`), `remote ${line.remote} is the client, not HAProxy`);
      }
    }

    // Every pair exchanges a direct message, in both directions.
    everyone.forEach((client, i) => client.send(...users.filter((_, j) => j !== i).map((to) => `MSG ${to} from ${users[i]}`)));
    await Promise.all(everyone.map(async (client, i) => {
      const lines = await client.take(2 * (CLIENTS - 1), 20_000);
      assert.equal(lines.filter((line) => line === 'OK').length, CLIENTS - 1);
      const got = lines.filter((line) => line !== 'OK').sort();
      const expected = users.filter((_, j) => j !== i).map((from) => `GOTUSERMSG ${from} from ${from}`).sort();
      assert.deepEqual(got, expected, `${users[i]} got every DM`);
    }));

    // And a room with everyone in it.
    await Promise.all(everyone.map((client) => client.command('JOIN #everyone', 'OK')));
    everyone.forEach((client, i) => client.send(`MSG #everyone hello from ${users[i]}`));
    await Promise.all(everyone.map(async (client) => {
      const lines = await client.take(CLIENTS + 1, 20_000);
      assert.equal(lines.filter((line) => line === 'OK').length, 1);
      assert.deepEqual(lines.filter((line) => line !== 'OK').sort(),
        users.map((from) => `GOTROOMMSG ${from} #everyone hello from ${from}`).sort());
    }));
  });

  it('adds a replica with --scale chat=4 that new clients reach, with no file edited', async () => {
    const before = new Set(await project.containers('chat'));
    await project.run('up', '-d', '--no-recreate', '--scale', 'chat=4');
    const added = (await project.containers('chat')).filter((id) => !before.has(id));
    assert.equal(added.length, 1);
    const newcomer = added[0]!;
    // The older replicas keep their clients, so once HAProxy sees the new one ready, the
    // fewest-connections balance sends new clients there.
    let n = 0;
    await waitFor('a new client to land on the added replica', async () => {
      const client = await loginThroughBalancer(`late${n++}`, 20_000);
      await client.command(`MSG user0 hello from the new replica's side`, 'OK');
      return (await project.logsOf(newcomer)).some((line) => line.msg === 'connection opened');
    }, 60_000);
  });

  it('runs Redis with a password, no eviction and sized pub/sub buffers', async () => {
    const [redis] = await project.containers('redis');
    const cli = (...args: string[]) => project.exec(redis!, 'sh', '-c',
      `IFS= read -r REDISCLI_AUTH < /run/secrets/redis_password; export REDISCLI_AUTH; redis-cli --no-auth-warning ${args.join(' ')}`);
    assert.match(await project.exec(redis!, 'redis-cli', 'ping'), /NOAUTH/);
    assert.match(await cli('config get maxmemory-policy'), /noeviction/);
    assert.match(await cli('config get client-output-buffer-limit'), /pubsub 134217728 33554432 60/);
  });

  it('counts a known workload exactly, summed over every replica, through Prometheus (--profile monitoring)', async () => {
    const replicas = (await project.containers('chat')).length;
    // Prometheus finds every replica through Docker's DNS, the one --scale added included.
    await waitFor(`Prometheus scraping all ${replicas} chat replicas and HAProxy`, async () =>
      await promQuery(prometheusPort, 'count(up{job="chatline"} == 1)') === replicas
      && await promQuery(prometheusPort, 'up{job="haproxy"}') === 1, 60_000);
    // HAProxy marks a replica up after its own checks, and Prometheus scrapes it every 5 s.
    await waitFor('HAProxy\'s exporter to see every replica', async () =>
      await promQuery(prometheusPort, 'haproxy_backend_active_servers{proxy="chat"}') === replicas, 60_000);

    const logins = 'sum(chatline_logins_total{result="ok"})';
    const messages = 'sum(chatline_messages_accepted_total)';
    /** Two scrapes apart (5 s each), the same numbers: nothing is still on its way. */
    const settled = async () => {
      const first = [await promQuery(prometheusPort, logins), await promQuery(prometheusPort, messages)];
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      const second = [await promQuery(prometheusPort, logins), await promQuery(prometheusPort, messages)];
      return JSON.stringify(first) === JSON.stringify(second) ? second.map((n) => n ?? 0) : undefined;
    };
    const [loginsBefore, messagesBefore] = await waitFor('the counters to settle', settled, 60_000);

    const USERS = 6;
    const ROUNDS = 3;
    const users = Array.from({ length: USERS }, (_, i) => `metered${i}`);
    const metered = await Promise.all(users.map((user) => loginThroughBalancer(user, 20_000)));
    // Each user sends ROUNDS DMs to the next one: every MSG answered OK, every DM delivered.
    metered.forEach((client, i) => client.send(...Array.from({ length: ROUNDS }, (_, round) => `MSG ${users[(i + 1) % USERS]} round ${round}`)));
    await Promise.all(metered.map(async (client, i) => {
      const lines = await client.take(2 * ROUNDS, 20_000);
      assert.equal(lines.filter((line) => line === 'OK').length, ROUNDS);
      assert.equal(lines.filter((line) => line.startsWith(`GOTUSERMSG ${users[(i + USERS - 1) % USERS]} round`)).length, ROUNDS);
    }));

    const expected = [loginsBefore! + USERS, messagesBefore! + USERS * ROUNDS];
    let seen: number[] | undefined;
    await waitFor('Prometheus to show the workload', async () => {
      seen = (await settled())?.slice();
      return seen !== undefined && JSON.stringify(seen) === JSON.stringify(expected);
    }, 60_000).catch((error: Error) => {
      throw new Error(`${error.message}: expected logins, messages = ${expected}, Prometheus says ${seen}`);
    });
  });
});
