import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/helpers/ports.js';
import type { IrcOperator } from './dialects.js';

// ngIRCd (Debian's `ngircd` package), the reference point for the room scenario: a mature
// single-process C server that fans a channel message out to its members, measured in the same
// run on the same cores as chatline. The bench writes its configuration into a temp dir and
// starts it in the foreground on a free loopback port.
//
// What the configuration changes from ngIRCd's defaults, and why (ngircd.conf(5), and
// src/ngircd/conn.c of ngIRCd 26.1 for the flood control):
// - MaxConnectionsIP = 0: every bench client comes from 127.0.0.1; the default (5) refuses the 6th.
// - MaxPenaltyTime = 0: ngIRCd throttles a user that sent more than 3 commands in one read
//   (the sender's window is 4), or more than 256 bytes in a second (the sender sends far more),
//   with a 1 s penalty; 0 caps every penalty below 10 s at 0 seconds.
// - An [Operator] with a random password: the room's sender opers up and sets user mode +F
//   ("disable flood protection"), so ngIRCd reads up to 10 of its commands per turn, not 3
//   (see dialects.ts). Only the sender; members send nothing while measured.
// - MaxNickLength = 31 (its maximum; default 9): the bench's nicknames are up to 12 characters.
// - MaxJoins = 0 (no limit; default 10): only one channel per client here, set for clarity.
// - DNS = no, Ident = no, PAM = no: no lookups or authentication per connection (the default
//   resolves every client's address in a forked helper and asks its ident port).
// - PingTimeout = 600: no PING in a run (the IRC dialect answers one anyway).
// - MotdPhrase instead of a MOTD file, IncludeDir = an empty dir: nothing read from /etc.
// Left as they are: MaxConnections (0, no limit), the 32 KiB write buffer per client (a client
// more than that behind is closed; at window 4 a member is at most 4 lines behind).

export interface Ngircd {
  readonly port: number;
  readonly pid: number;
  readonly version: string;
  /** The operator the bench may OPER as. */
  readonly operator: IrcOperator;
  /** The last lines it logged, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

export function ngircdInstalled(): boolean {
  return spawnSync('ngircd', ['--version']).status === 0;
}

export function ngircdVersion(): string {
  const out = spawnSync('ngircd', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  return /ngIRCd (\S+?)-/.exec(out)?.[1] ?? 'unknown';
}

export async function startNgircd(): Promise<Ngircd> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'chatline-bench-ngircd-'));
  mkdirSync(join(dir, 'conf.d'));
  const config = join(dir, 'ngircd.conf');
  const operator = { name: 'bench', password: randomBytes(12).toString('hex') };
  writeFileSync(config, [
    '[Global]',
    'Name = bench.chatline.invalid',
    'Info = chatline bench reference',
    'AdminInfo1 = chatline bench',
    'AdminEMail = bench@chatline.invalid',
    'Listen = 127.0.0.1',
    `Ports = ${port}`,
    'MotdPhrase = bench',
    '[Limits]',
    'MaxConnections = 0',
    'MaxConnectionsIP = 0',
    'MaxJoins = 0',
    'MaxNickLength = 31',
    'MaxPenaltyTime = 0',
    'PingTimeout = 600',
    '[Options]',
    'DNS = no',
    'Ident = no',
    'PAM = no',
    `IncludeDir = ${join(dir, 'conf.d')}`,
    '[Operator]',
    `Name = ${operator.name}`,
    `Password = ${operator.password}`,
    '',
  ].join('\n'));
  // -n: in the foreground, logging to stderr. As root it drops to "nobody" after reading the config.
  const child = spawn('ngircd', ['-n', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (text: string) => { output = (output + text).slice(-8192); };
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding('utf8');
    stream.on('data', keep);
  }
  // However the bench ends (an error, Ctrl-C: redis.ts' handler exits through process.exit), no
  // ngIRCd or config dir outlives it.
  const killOnExit = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);
  const exited = once(child, 'exit');
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await listening(port, () => (child.exitCode !== null ? `ngircd exited with ${child.exitCode}:\n${output}` : undefined));
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, pid: child.pid!, version: ngircdVersion(), operator, output: () => output, stop };
}

/** Resolves once the port accepts a connection (within 10 s); `failed` says why to give up early. */
async function listening(port: number, failed: () => string | undefined): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const why = failed();
    if (why) throw new Error(why);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > deadline) throw new Error(`ngircd did not listen on ${port} within 10 s`);
    await sleep(50);
  }
}
