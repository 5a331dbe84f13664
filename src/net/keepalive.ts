import type { Socket } from 'node:net';
import type { Logger } from '../log.js';

// How long a client that vanished (a phone out of coverage, a laptop closed, a NAT that forgot
// the flow) keeps its connection, and so its name. The chat protocol never speaks unasked, so
// only TCP can notice:
//
//   - Nothing to send to it: after KEEPALIVE_MS without a packet from the client the kernel
//     sends keepalive probes. Node 20's setKeepAlive (libuv 1.46) sets TCP_KEEPIDLE to
//     KEEPALIVE_MS and also TCP_KEEPINTVL = 1 s and TCP_KEEPCNT = 10 on every socket, whatever
//     the sysctls say: dead after KEEPALIVE_MS + 10 s.
//   - Something to send to it (a DM, a busy room): the kernel sends no keepalive probe while
//     data is unacknowledged; it retransmits instead, for tcp_retries2 (15 by default: about
//     15 minutes). TCP_USER_TIMEOUT caps that, and Node has no call for it, so it is set here
//     through net-keepalive (setsockopt over FFI) to the same KEEPALIVE_MS + 10 s: dead at most
//     that long after the first byte it did not acknowledge. With TCP_USER_TIMEOUT set, the
//     keepalive path above ends at the same moment (the kernel then counts time, not probes).
//
// So a vanished client is closed, and its name freed, within KEEPALIVE_MS + 10 s of its last
// packet when nobody writes to it, and within 2 × (KEEPALIVE_MS + 10 s) in the worst case
// (something sent to it just before its probes would have ended it). docs/security.md has it too.

/** Node's (libuv's) fixed probe interval and count, which the bound above rests on. */
export const PROBE_INTERVAL_MS = 1000;
export const PROBE_COUNT = 10;

type SetUserTimeout = (socket: Socket, ms: number) => boolean;

let setUserTimeout: SetUserTimeout | undefined;
let loaded = false;

/**
 * Loads the setsockopt binding once per process. Without it (a platform ffi-rs has no build
 * for) everything works, but a vanished client that is being written to lasts as long as the
 * kernel's retransmissions: said once, at start.
 */
export async function loadSocketOptions(log: Logger): Promise<void> {
  if (loaded) return;
  loaded = true;
  try {
    const binding = await import('net-keepalive');
    setUserTimeout = binding.setUserTimeout as SetUserTimeout;
  } catch (error) {
    log.warn({ err: (error as Error).message },
      'TCP_USER_TIMEOUT cannot be set on this platform: a vanished client that is sent messages is dropped only '
      + 'after the kernel gives up retransmitting (net.ipv4.tcp_retries2, about 15 minutes by default)');
  }
}

/** KEEPALIVE_MS as the kernel gets it: whole seconds, at least one (0 would mean "leave the default"). */
export function keepaliveIdleMs(keepaliveMs: number): number {
  return Math.max(1, Math.round(keepaliveMs / 1000)) * 1000;
}

/** Longest a vanished client lasts when nothing is sent to it (and the TCP_USER_TIMEOUT set). */
export function vanishedClientBoundMs(keepaliveMs: number): number {
  return keepaliveIdleMs(keepaliveMs) + PROBE_INTERVAL_MS * PROBE_COUNT;
}

/** Turns keepalive on for a client socket (KEEPALIVE_MS = 0: off, and no user timeout either). */
export function applyKeepalive(socket: Socket, keepaliveMs: number): void {
  if (keepaliveMs === 0) return;
  socket.setKeepAlive(true, keepaliveIdleMs(keepaliveMs));
  if (!setUserTimeout) return;
  try {
    setUserTimeout(socket, vanishedClientBoundMs(keepaliveMs));
  } catch {
    // The socket closed in the meantime (no file descriptor left): nothing to bound.
  }
}
