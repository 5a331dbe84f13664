import { parseArgs } from 'node:util';
import { BenchClient } from './client.js';
import { coresUsed, latencyOf, newHistogram } from './measure.js';

// How long a login takes, and how many per second, from one process against a running server:
// npx tsx bench/login-latency.ts --port 8888 --clients 4000 --concurrency 200
// Each client connects, sends LOGIN, waits for OK and stays connected until the end.

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8888' },
    clients: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '200' },
  },
});
const count = Number(args.clients);
const connectTimes = newHistogram();
const loginTimes = newHistogram();
const clients: BenchClient[] = [];
const prefix = `lat${Date.now().toString(36)}u`;
let next = 0;

async function loginLoop(): Promise<void> {
  while (next < count) {
    const i = next++;
    const opening = performance.now();
    const client = await BenchClient.open(Number(args.port), args.host);
    clients.push(client);
    const loggingIn = performance.now();
    const reply = await client.request(`LOGIN ${prefix}${i}`);
    if (reply !== 'OK') throw new Error(`LOGIN ${prefix}${i} → ${reply}`);
    connectTimes.recordValue(Math.max(1, Math.round((loggingIn - opening) * 1000)));
    loginTimes.recordValue(Math.max(1, Math.round((performance.now() - loggingIn) * 1000)));
  }
}

const cpu = process.cpuUsage();
const started = performance.now();
await Promise.all(Array.from({ length: Number(args.concurrency) }, loginLoop));
const wallMs = performance.now() - started;
const show = (latency: ReturnType<typeof latencyOf>) => `p50 ${latency.p50} ms, p99 ${latency.p99} ms, max ${latency.max} ms`;
console.log(`${count} logins at ${args.concurrency} concurrent: ${Math.round((count / wallMs) * 1000)}/s`);
console.log(`  connect: ${show(latencyOf(connectTimes))}`);
console.log(`  LOGIN → OK: ${show(latencyOf(loginTimes))}`);
console.log(`  this process used ${coresUsed(cpu, wallMs).toFixed(2)} cores`);
for (const client of clients) client.close();
