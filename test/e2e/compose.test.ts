import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LineClient } from '../helpers/client.js';
import { ComposeProject, requireDockerEngine } from '../helpers/compose.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

// `docker compose up` as a user runs it: image built from the Dockerfile, Redis, chat replicas
// and HAProxy, all reached through one published port. Fails, never skips, without Docker.

const CLIENTS = 12;

describe('docker compose: HAProxy over chat replicas on one Redis', () => {
  let project: ComposeProject;
  let port: number;
  const clients: LineClient[] = [];

  /** Connects through HAProxy and logs in, retrying while no replica is ready yet. */
  const loginThroughBalancer = async (user: string, timeoutMs = 60_000): Promise<LineClient> =>
    waitFor(`a replica to accept ${user} through HAProxy`, async () => {
      let client: LineClient | undefined;
      try {
        client = await LineClient.connect(port);
        await client.command(`LOGIN ${user}`, 'OK');
        clients.push(client);
        return client;
      } catch {
        client?.destroy();
        return undefined;
      }
    }, timeoutMs);

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
    project = new ComposeProject(`chatline-e2e-${process.pid}`, { CHAT_PORT: String(port), CHAT_WORKERS: '2' });
    const cleanUp = () => void project.run('down', '-v', '--remove-orphans').finally(() => process.exit(130));
    process.once('SIGINT', cleanUp);
    process.once('SIGTERM', cleanUp);
    await project.run('build', 'chat');
    await project.run('up', '-d', '--scale', 'chat=3');
    // As a user would: wait until every replica reports ready, then one HAProxy check interval
    // (2 s, rise 1) so the balancer has them all; otherwise the first replica up takes everyone.
    await waitFor('three healthy chat replicas', async () => {
      const containers = await project.containers('chat');
      const states = await Promise.all(containers.map((id) => project.health(id)));
      return states.length === 3 && states.every((state) => state === 'healthy');
    }, 90_000);
    await new Promise((resolve) => setTimeout(resolve, 3000));
  });

  after(async () => {
    for (const client of clients) client.destroy();
    await project?.run('down', '-v', '--remove-orphans');
  });

  it('serves a dozen clients through one port, spread over the replicas, all able to chat', async () => {
    const users = Array.from({ length: CLIENTS }, (_, i) => `user${i}`);
    const [first] = [await loginThroughBalancer(users[0]!)];
    const rest = await Promise.all(users.slice(1).map((user) => loginThroughBalancer(user, 20_000)));
    const everyone = [first!, ...rest];

    const spread = await containersWithClients();
    assert.ok(spread.size >= 2, `clients landed on ${spread.size} replica(s): ${JSON.stringify([...spread])}`);

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
});
