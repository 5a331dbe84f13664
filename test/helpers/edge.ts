import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { encodeProxyHeader, type ProxyHeader } from '../../src/net/proxy-protocol.js';
import type { LogLine } from './chat-process.js';
import { LineClient } from './client.js';

// Clients as a balancer or a TLS client would connect: with a PROXY v2 header first, over TLS,
// or both.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface EdgeClientOptions {
  /** A PROXY v2 header sent before anything else (before the TLS handshake, as HAProxy does). */
  proxy?: ProxyHeader;
  /** Speak TLS, trusting this CA (PEM file). */
  tlsCa?: string;
  /** Bytes sent right after the header, in the same write (a client that talks at once). */
  firstBytes?: string;
}

export interface EdgeClient {
  client: LineClient;
  /** The server certificate's SHA-256 fingerprint, on TLS. */
  fingerprint: string | undefined;
}

export async function edgeClient(port: number, options: EdgeClientOptions = {}): Promise<EdgeClient> {
  const raw = tcpConnect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    raw.once('connect', resolve);
    raw.once('error', reject);
  });
  const header = options.proxy ? encodeProxyHeader(options.proxy) : Buffer.alloc(0);
  if (!options.tlsCa) {
    raw.write(Buffer.concat([header, Buffer.from(options.firstBytes ?? '')]));
    return { client: LineClient.over(raw), fingerprint: undefined };
  }
  if (header.length > 0) raw.write(header);
  const secure: TLSSocket = tlsConnect({ socket: raw, ca: readFileSync(options.tlsCa), servername: 'localhost' });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  if (options.firstBytes) secure.write(options.firstBytes);
  return { client: LineClient.over(secure), fingerprint: secure.getPeerCertificate().fingerprint256 };
}

/** A PROXY header for a TCP client at `address`:`port` (IPv4 or IPv6). */
export function proxiedFrom(address: string, port = 40000): ProxyHeader {
  const family = address.includes(':') ? 'IPv6' as const : 'IPv4' as const;
  const destination = family === 'IPv6' ? '2001:db8::1' : '192.0.2.1';
  return { command: 'PROXY', source: { address, port, family }, destination: { address: destination, port: 8888, family } };
}

/** Runs chatline until it exits by itself; returns its exit code and its output. */
export async function runToExit(env: Record<string, string>): Promise<{ code: number | null; logs: LogLine[]; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT, env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => { stdout += text; });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  const logs = stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogLine);
  return { code: code as number | null, logs, stderr };
}

/** One counter's value from a /metrics text, or 0. */
export async function metricValue(healthPort: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}
