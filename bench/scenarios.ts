import { fork } from 'node:child_process';
import { BenchClient } from './client.js';
import { chatline, type Dialect } from './dialects.js';
import { coresUsed, latencyOf, newHistogram, nowMicros, type Result, SequenceTracker } from './measure.js';

// The scenarios. Clients are spread over the endpoints. When the bench runs the servers itself
// it knows which worker took each connection, and pairs each DM sender with a receiver on
// another worker; against external endpoints it pairs consecutive connections, which
// node:cluster's round-robin usually, but not always, puts on different workers.

export interface Endpoint {
  host: string;
  port: number;
}

export interface Timing {
  warmupMs: number;
  measureMs: number;
}

/** Which worker serves a client, when the bench can tell (it started the servers). */
export type Placement = (client: BenchClient) => Promise<string>;

/** What the servers spent in the measured window: cores per process, and Redis' CPU if there is one. */
export interface WindowCosts {
  cores: Record<string, number>;
  redisCpuMicros?: number;
  /** Of that, what Redis would have used idle over the same time. */
  redisIdleMicros?: number;
}

/** Called as the measured window opens; the function it returns is called as it closes. */
export type Observe = () => Promise<(generatorCores: number) => Promise<WindowCosts>>;

export interface DeliveryOptions {
  /** Where each connection landed: DM pairs cross workers, room members spread evenly. */
  placement?: Placement;
  /** How many workers serve the endpoints (with placement: room members are spread over them). */
  workers?: number;
  observe?: Observe;
}

let run = 0;

async function openClients(endpoints: Endpoint[], count: number): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  // Sequential, so the cluster's round-robin alternates workers predictably.
  for (let i = 0; i < count; i++) {
    const endpoint = endpoints[i % endpoints.length]!;
    clients.push(await BenchClient.open(endpoint.port, endpoint.host));
  }
  return clients;
}

/**
 * Sender→receiver pairs on different workers: clients are opened one by one and each is
 * paired with a waiting client of another worker, giving up after six connections per pair.
 */
async function openPairs(endpoints: Endpoint[], pairs: number, placement: Placement | undefined): Promise<[BenchClient, BenchClient][]> {
  if (!placement) {
    const clients = await openClients(endpoints, pairs * 2);
    return Array.from({ length: pairs }, (_, i) => [clients[2 * i]!, clients[2 * i + 1]!]);
  }
  const result: [BenchClient, BenchClient][] = [];
  const waiting = new Map<string, BenchClient[]>();
  for (let opened = 0; result.length < pairs && opened < pairs * 6; opened++) {
    const endpoint = endpoints[opened % endpoints.length]!;
    const client = await BenchClient.open(endpoint.port, endpoint.host);
    const worker = await placement(client);
    const partner = [...waiting].find(([other, clients]) => other !== worker && clients.length > 0)?.[1].shift();
    if (partner) result.push([partner, client]);
    else waiting.set(worker, [...(waiting.get(worker) ?? []), client]);
  }
  for (const clients of waiting.values()) for (const client of clients) client.close();
  if (result.length < pairs) throw new Error(`only ${result.length} of ${pairs} pairs could be placed on different workers`);
  return result;
}

async function expectOk(client: BenchClient, line: string): Promise<void> {
  const reply = await client.request(line);
  if (reply !== 'OK') throw new Error(`${line} → ${reply}`);
}

function progress(label: string, delivered: () => number, startedAt: number): NodeJS.Timeout {
  return setInterval(() => {
    const seconds = (performance.now() - startedAt) / 1000;
    process.stderr.write(`\r  ${label}: ${delivered()} delivered, ${Math.round(delivered() / seconds)}/s   `);
  }, 1000);
}

/** Runs warm-up then the measured window; `measuring` tells the scenario when to record. */
async function window(label: string, timing: Timing, delivered: () => number, onMeasureStart: () => void, observe?: Observe) {
  await new Promise((resolve) => setTimeout(resolve, timing.warmupMs));
  const observed = await observe?.();
  onMeasureStart();
  const cpu = process.cpuUsage();
  const startedAt = performance.now();
  const ticker = progress(label, delivered, startedAt);
  await new Promise((resolve) => setTimeout(resolve, timing.measureMs));
  clearInterval(ticker);
  const wallMs = performance.now() - startedAt;
  const cores = coresUsed(cpu, wallMs);
  const costs = await observed?.(cores);
  process.stderr.write('\r' + ' '.repeat(70) + '\r');
  return { wallMs, cores, costs };
}

function generatorNotes(cores: number): string[] {
  return cores > 0.85 ? [`load generator used ${cores.toFixed(2)} cores: it may be the bottleneck`] : [];
}

/** The sequence number and send time that end every message the bench sends. */
function stamps(line: string): { seq: number; sentAt: number } {
  const last = line.lastIndexOf(' ');
  const beforeLast = line.lastIndexOf(' ', last - 1);
  return { seq: Number(line.slice(beforeLast + 1, last)), sentAt: Number(line.slice(last + 1)) };
}

/**
 * The replies a chatline sender gets, one per MSG in the order sent: OK, or an ERROR line (the
 * server refused it, e.g. SERVICE UNAVAILABLE under load). A refused message is taken out of
 * what must arrive, and frees its place in the window; if it arrives anyway, that is counted
 * apart, not as a duplicate or a loss.
 */
class SenderReplies {
  private readonly awaiting: number[] = [];
  readonly refused = new Set<number>();
  firstRefusal: string | undefined;
  /** Deliveries of refused messages: before the refusal (already counted as unique) and after. */
  deliveredBeforeRefusal = 0;
  deliveredAfterRefusal = 0;

  sent(seq: number): void {
    this.awaiting.push(seq);
  }

  /** A reply line; returns the seq it refused, if it is a refusal. */
  reply(line: string): number | undefined {
    const seq = this.awaiting.shift();
    if (line === 'OK' || seq === undefined) return undefined;
    this.refused.add(seq);
    this.firstRefusal ??= line;
    return seq;
  }
}

/** The refusals of all senders, for a Result: a note, and what to take off the expected count. */
function refusalsOf(replies: SenderReplies[], recipients: number) {
  const refused = replies.reduce((sum, r) => sum + r.refused.size, 0);
  const first = replies.find((r) => r.firstRefusal)?.firstRefusal;
  const despite = replies.reduce((sum, r) => sum + r.deliveredBeforeRefusal + r.deliveredAfterRefusal, 0);
  return {
    refused,
    expectedLess: refused * recipients,
    uniqueLess: replies.reduce((sum, r) => sum + r.deliveredBeforeRefusal, 0),
    notes: refused ? [`${refused} messages refused by the server (first: ${first})${despite ? `; ${despite} deliveries of them arrived anyway` : ''}`] : [],
  };
}

/** N sender→receiver pairs, each sender keeping `window` DMs in flight. */
export async function dm(
  mode: string, endpoints: Endpoint[], pairs: number, inFlight: number, timing: Timing, options: DeliveryOptions = {},
): Promise<Result> {
  const tag = `d${++run}`;
  const clients = (await openPairs(endpoints, pairs, options.placement)).flat();
  const histogram = newHistogram();
  let measuring = false;
  let stopping = false;
  let delivered = 0;
  const sent = new Array<number>(pairs).fill(0);
  const trackers = Array.from({ length: pairs }, () => new SequenceTracker());
  // Each pair's messages sent and neither delivered nor refused.
  const outstanding = Array.from({ length: pairs }, () => new Set<number>());
  const replies = Array.from({ length: pairs }, () => new SenderReplies());

  for (let i = 0; i < pairs; i++) {
    await expectOk(clients[2 * i]!, `LOGIN ${tag}s${i}`);
    await expectOk(clients[2 * i + 1]!, `LOGIN ${tag}r${i}`);
  }
  const topUp = (i: number) => {
    const sender = clients[2 * i]!;
    while (!stopping && outstanding[i]!.size < inFlight) {
      const seq = sent[i]!++;
      outstanding[i]!.add(seq);
      replies[i]!.sent(seq);
      sender.send(`MSG ${tag}r${i} ${seq} ${nowMicros()}`);
    }
  };
  for (let i = 0; i < pairs; i++) {
    clients[2 * i]!.onLine = (line) => {
      if (line !== 'OK' && !line.startsWith('ERROR ')) throw new Error(`sender got ${line}`);
      const refused = replies[i]!.reply(line);
      if (refused === undefined) return;
      if (outstanding[i]!.delete(refused)) topUp(i);
      else replies[i]!.deliveredBeforeRefusal++;
    };
    clients[2 * i + 1]!.onLine = (line) => {
      // GOTUSERMSG <sender> <seq> <sent at>
      const { seq, sentAt } = stamps(line);
      if (replies[i]!.refused.has(seq)) {
        replies[i]!.deliveredAfterRefusal++;
        return;
      }
      trackers[i]!.record(seq);
      if (measuring) {
        histogram.recordValue(Math.max(1, nowMicros() - sentAt));
        delivered++;
      }
      outstanding[i]!.delete(seq);
      topUp(i);
    };
  }
  for (let i = 0; i < pairs; i++) topUp(i);
  const { wallMs, cores, costs } = await window(`dm ${pairs}x${inFlight}`, timing, () => delivered, () => { measuring = true; },
    options.observe);
  measuring = false;
  stopping = true;
  await drain(() => outstanding.every((seqs) => seqs.size === 0));
  for (const client of clients) client.close();
  return summary(mode, `dm ${pairs} pairs, window ${inFlight}`, {
    delivered, messages: delivered, wallMs, cores, costs, histogram, trackers, expected: sent.reduce((a, b) => a + b, 0),
    refusals: refusalsOf(replies, 1),
  });
}

/** The Result of a delivery scenario: rate, latency, and what the trackers saw against what was sent. */
function summary(mode: string, scenario: string, run: {
  delivered: number; messages: number; wallMs: number; cores: number; costs: WindowCosts | undefined;
  histogram: ReturnType<typeof newHistogram>; trackers: SequenceTracker[]; expected: number;
  refusals: ReturnType<typeof refusalsOf>;
}): Result {
  const total = (field: 'unique' | 'duplicated' | 'outOfOrder') => run.trackers.reduce((a, t) => a + t[field], 0);
  const redisCpu = run.costs?.redisCpuMicros;
  const redisIdle = run.costs?.redisIdleMicros ?? 0;
  // Redis' CPU for this load: what it used less what it uses idle over the same time.
  const perUnit = (count: number) => (redisCpu !== undefined && count > 0 ? Math.round(((redisCpu - redisIdle) / count) * 100) / 100 : 0);
  return {
    mode, scenario,
    rate: Math.round((run.delivered / run.wallMs) * 1000),
    latencyMs: latencyOf(run.histogram),
    lost: run.expected - run.refusals.expectedLess - (total('unique') - run.refusals.uniqueLess),
    duplicated: total('duplicated'),
    outOfOrder: total('outOfOrder'),
    refused: run.refusals.refused,
    loadgenCores: run.cores,
    notes: [...generatorNotes(run.cores), ...run.refusals.notes],
    messages: run.messages,
    messageRate: Math.round((run.messages / run.wallMs) * 1000),
    ...(run.costs ? { cores: { generator: Math.round(run.cores * 100) / 100, ...run.costs.cores } } : {}),
    ...(redisCpu !== undefined
      ? { redis: { cpuMicros: redisCpu, idleMicros: redisIdle, perMessageMicros: perUnit(run.messages), perDeliveryMicros: perUnit(run.delivered) } }
      : {}),
  };
}

export interface RoomOptions extends DeliveryOptions {
  /** The server's protocol: chatline (default) or IRC, for the reference server. */
  dialect?: Dialect;
  /**
   * Connects not yet through login at once, for a server with a short listen backlog (ngIRCd's
   * is 10): past it the kernel drops a SYN and that client waits a second to retry. Unset: all
   * clients are connected first, one by one, then log in 50 at a time.
   */
  connectConcurrency?: number;
}

/**
 * R rooms of M members; one sender per room keeps `window` messages in flight to all. With
 * placement and workers, every room's members are spread evenly over the workers.
 */
export async function room(
  mode: string, endpoints: Endpoint[], rooms: number, members: number, inFlight: number, timing: Timing, options: RoomOptions = {},
): Promise<Result> {
  const dialect = options.dialect ?? chatline;
  const tag = `r${++run}`;
  const notes: string[] = [];
  let clients: BenchClient[];
  if (options.placement && (options.workers ?? 1) > 1) {
    const spread = await openSpread(endpoints, rooms * members, options.placement, options.workers!);
    clients = spread.clients;
    notes.push(`members per worker: ${spread.perWorker.join('/')} (each room: ${spread.perWorkerPerRoom(members).join(', ')}), `
      + `${spread.opened} connections opened to place them`);
  } else if (options.connectConcurrency === undefined) {
    clients = await openClients(endpoints, rooms * members);
  } else {
    clients = [];
  }
  const histogram = newHistogram();
  let measuring = false;
  let stopping = false;
  let delivered = 0;
  let messages = 0;
  const sent = new Array<number>(rooms).fill(0);
  // waiting[r] maps a message's seq to how many members have yet to get it.
  const waiting = Array.from({ length: rooms }, () => new Map<number, number>());
  const trackers = Array.from({ length: rooms * members }, () => new SequenceTracker());
  const replies = Array.from({ length: rooms }, () => new SenderReplies());
  const roomName = (r: number) => `${tag}room${r}`;

  const setupStarted = performance.now();
  // All logins, then all joins: an IRC server tells every member about each join, so joins
  // that run together share its writes (and the generator's reads).
  await inParallel(rooms * members, options.connectConcurrency ?? SETUP_CONCURRENCY, async (index) => {
    const endpoint = endpoints[index % endpoints.length]!;
    const client = clients[index] ??= await BenchClient.open(endpoint.port, endpoint.host);
    const name = `${tag}u${Math.floor(index / members)}x${index % members}`;
    await dialect.login(client, name);
    if (index % members === 0) await dialect.prepareSender(client, name);
  });
  await inParallel(rooms * members, SETUP_CONCURRENCY, async (index) => {
    const client = clients[index]!;
    await dialect.join(client, roomName(Math.floor(index / members)));
    client.onLine = (line) => dialect.senderLine(client, line);
  });
  notes.push(`${clients.length} ${options.connectConcurrency ? 'connects, ' : ''}logins and joins took ${((performance.now() - setupStarted) / 1000).toFixed(1)} s`);
  const topUp = (r: number) => {
    while (!stopping && waiting[r]!.size < inFlight) {
      const seq = sent[r]!++;
      waiting[r]!.set(seq, members - 1);
      if (dialect.repliesToEveryMessage) replies[r]!.sent(seq);
      if (measuring) messages++;
      clients[r * members]!.send(dialect.roomMessage(roomName(r), `${seq} ${nowMicros()}`));
    }
  };
  for (let r = 0; r < rooms; r++) {
    const sender = clients[r * members]!;
    sender.onLine = (line) => {
      if (dialect.senderLine(sender, line) !== 'reply' || !dialect.repliesToEveryMessage) return;
      const refused = replies[r]!.reply(line);
      if (refused === undefined) return;
      // Members that got it before the refusal came (all of them if it is no longer waited for).
      const left = waiting[r]!.get(refused) ?? 0;
      replies[r]!.deliveredBeforeRefusal += members - 1 - left;
      if (waiting[r]!.delete(refused)) topUp(r);
    };
    for (let m = 1; m < members; m++) {
      const index = r * members + m;
      const client = clients[index]!;
      client.onLine = (line) => {
        const text = dialect.roomText(client, line);
        if (text === undefined) return;
        const { seq, sentAt } = stamps(text);
        if (replies[r]!.refused.has(seq)) {
          replies[r]!.deliveredAfterRefusal++;
          return;
        }
        trackers[index]!.record(seq);
        if (measuring) {
          histogram.recordValue(Math.max(1, nowMicros() - sentAt));
          delivered++;
        }
        const left = waiting[r]!.get(seq)! - 1;
        if (left === 0) {
          waiting[r]!.delete(seq);
          topUp(r);
        } else waiting[r]!.set(seq, left);
      };
    }
  }
  for (let r = 0; r < rooms; r++) topUp(r);
  const { wallMs, cores, costs } = await window(`room ${rooms}x${members}`, timing, () => delivered, () => { measuring = true; },
    options.observe);
  measuring = false;
  stopping = true;
  await drain(() => waiting.every((w) => w.size === 0));
  // The one-room rows also time WHO on the full room: a read over every member.
  if (rooms === 1 && dialect.name === 'chatline') notes.push(await timeWho(clients[1]!, `#${roomName(0)}`, members));
  for (const client of clients) client.close();
  const result = summary(mode, `room ${rooms}x${members}, window ${inFlight}`, {
    delivered, messages, wallMs, cores, costs, histogram, trackers, expected: sent.reduce((a, b) => a + b, 0) * (members - 1),
    refusals: refusalsOf(replies, members - 1),
  });
  result.notes.push(...notes);
  return result;
}

/** WHO of a room, asked 5 times in a row by one member: how long to its OK, and what it listed. */
async function timeWho(client: BenchClient, room: string, members: number): Promise<string> {
  const times: number[] = [];
  let lines = 0;
  let names = 0;
  for (let i = 0; i < 5; i++) {
    lines = 0;
    names = 0;
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`WHO ${room} not answered within 30 s`)), 30_000);
      client.onLine = (line) => {
        if (line === 'OK') {
          clearTimeout(timer);
          return resolve();
        }
        // A room message the drain gave up waiting for may still arrive.
        if (line.startsWith('GOTROOMMSG ')) return;
        if (!line.startsWith(`MEMBERS ${room} `)) return reject(new Error(`WHO ${room} got ${line}`));
        lines++;
        names += line.split(' ').length - 2;
      };
      client.send(`WHO ${room}`);
    });
    times.push(performance.now() - started);
  }
  if (names !== members) throw new Error(`WHO ${room} listed ${names} of its ${members} members`);
  times.sort((a, b) => a - b);
  return `WHO of the ${members} members: ${names} names in ${lines} lines, ${times[2]!.toFixed(1)} ms median of 5 (${times[0]!.toFixed(1)}–${times[4]!.toFixed(1)})`;
}

/** Logins and joins under way at once while a room fills. */
const SETUP_CONCURRENCY = 50;

/** Runs task(0 … count-1), `concurrency` at a time; the first failure rejects. */
async function inParallel(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await task(next++);
  }));
}

/**
 * `count` clients spread evenly over `workers` workers: opened 100 at a time, each kept only
 * while its worker holds fewer than its share, the others closed; gives up after opening three
 * times `count`. Returned interleaved (worker A, B, A, B, …), so that consecutive blocks, one
 * per room, are spread evenly too.
 */
async function openSpread(endpoints: Endpoint[], count: number, placement: Placement, workers: number) {
  const share = Math.ceil(count / workers);
  const kept = new Map<string, BenchClient[]>();
  let total = 0;
  let opened = 0;
  while (total < count && opened < count * 3) {
    const batch = Math.min(100, count - total);
    const fresh = await Promise.all(Array.from({ length: batch }, (_, i) => {
      const endpoint = endpoints[(opened + i) % endpoints.length]!;
      return BenchClient.open(endpoint.port, endpoint.host);
    }));
    opened += batch;
    const where = await Promise.all(fresh.map(placement));
    fresh.forEach((client, i) => {
      const list = kept.get(where[i]!) ?? [];
      kept.set(where[i]!, list);
      if (list.length < share && total < count) {
        list.push(client);
        total++;
      } else client.close();
    });
  }
  if (total < count) {
    for (const list of kept.values()) for (const client of list) client.close();
    throw new Error(`could not spread ${count} clients over ${workers} workers: ${[...kept.values()].map((l) => l.length).join('/')} after ${opened} connections`);
  }
  const lists = [...kept.values()];
  const clients: BenchClient[] = [];
  const workerOf: number[] = [];
  for (let i = 0; clients.length < count; i++) {
    lists.forEach((list, w) => {
      if (i < list.length) {
        clients.push(list[i]!);
        workerOf.push(w);
      }
    });
  }
  return {
    clients,
    opened,
    perWorker: lists.map((list) => list.length),
    /** Members per worker in each block of `members` (one room). */
    perWorkerPerRoom: (members: number) => Array.from({ length: Math.ceil(count / members) }, (_, r) =>
      lists.map((_, w) => workerOf.slice(r * members, (r + 1) * members).filter((x) => x === w).length).join('/')),
  };
}

async function drain(done: () => boolean): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!done() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * K clients log in and stay. The clients are split over child processes (one process may hold
 * only so many sockets); `sample` reads the servers' memory while all of them are connected.
 */
export async function connectMany(
  mode: string, endpoints: Endpoint[], count: number, sample: () => Promise<{ serverBytes: number; redisBytes: number }>,
): Promise<Result> {
  const tag = `c${++run}`;
  const before = await sample();
  const processes = Math.ceil(count / 10_000);
  const started = performance.now();
  const children = Array.from({ length: processes }, (_, p) => {
    const share = Math.floor(count / processes) + (p < count % processes ? 1 : 0);
    return fork(new URL('./connect-child.ts', import.meta.url), [JSON.stringify({ endpoints, count: share, prefix: `${tag}p${p}u` })],
      { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  });
  const reports = await Promise.all(children.map((child) => new Promise<{ loggedIn: number; cores: number }>((resolve, reject) => {
    child.once('message', (message) => resolve(message as { loggedIn: number; cores: number }));
    child.once('exit', (code) => reject(new Error(`connect child exited with ${code}`)));
  })));
  const seconds = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 1000)); // let the servers settle
  const after = await sample();
  for (const child of children) child.kill();
  const total = reports.reduce((sum, report) => sum + report.loggedIn, 0);
  // The children ran side by side over about the same time: their cores add up.
  const cores = reports.reduce((sum, report) => sum + report.cores, 0);
  const perClient = (bytes: number) => Math.round(bytes / total);
  return {
    mode, scenario: `connect ${count} clients`,
    rate: Math.round(total / seconds),
    latencyMs: { p50: 0, p90: 0, p99: 0, max: 0 },
    lost: count - total, duplicated: 0, outOfOrder: 0,
    loadgenCores: cores,
    notes: generatorNotes(cores),
    extra: {
      serverBytesPerClient: perClient(after.serverBytes - before.serverBytes),
      redisBytesPerClient: perClient(after.redisBytes - before.redisBytes),
    },
  };
}
