import { BenchClient } from './client.js';
import { coresUsed } from './measure.js';
import type { Endpoint } from './scenarios.js';

// One share of the connect scenario, in its own process: logs `count` clients in, 200 at a
// time, reports how many succeeded and the CPU it used, then holds them open until killed.

const { endpoints, count, prefix } = JSON.parse(process.argv[2]!) as { endpoints: Endpoint[]; count: number; prefix: string };
const clients: BenchClient[] = [];
let loggedIn = 0;
let next = 0;
async function worker(): Promise<void> {
  while (next < count) {
    const i = next++;
    const endpoint = endpoints[i % endpoints.length]!;
    try {
      const client = await BenchClient.open(endpoint.port, endpoint.host);
      clients.push(client);
      if ((await client.request(`LOGIN ${prefix}${i}`)) === 'OK') loggedIn++;
    } catch {
      // counted as not logged in
    }
  }
}
const cpu = process.cpuUsage();
const started = performance.now();
await Promise.all(Array.from({ length: 200 }, worker));
process.send!({ loggedIn, cores: coresUsed(cpu, performance.now() - started) });
setInterval(() => {}, 60_000);
