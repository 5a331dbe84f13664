// The PROXY protocol, version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt): the binary
// header a load balancer sends before the client's own bytes, naming the client's address.
// Pure: bytes in, a header or an error out. No sockets, no timers.
//
// What is accepted, per the spec's "receiver" rules:
//   - the 12-byte signature, version 2, command LOCAL or PROXY; anything else is refused at once
//     (without waiting for more bytes once the bytes so far cannot become a valid header);
//   - PROXY over TCP (STREAM) for IPv4 or IPv6: the client's address and port are taken;
//   - LOCAL (the balancer's own connection, e.g. a health check), or PROXY with an unspecified
//     or UNIX family: the header is skipped and the socket's own address stands;
//   - TLVs after the addresses are skipped unread; the whole header is bounded (MAX_HEADER_BYTES).
// A version 1 (text) header is refused with a reason that says so.

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED_BYTES = 16;
/**
 * Longest header accepted, TLVs included. Balancers send far less (HAProxy with its SSL TLVs a
 * few hundred bytes, cloud balancers under 128); the spec allows 64 KiB, which would be memory
 * held for a peer that has proven nothing yet.
 */
export const MAX_HEADER_BYTES = 4096;

const ADDRESS_BYTES = { ipv4: 12, ipv6: 36, unix: 216 } as const;

export interface ProxiedAddress {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type ProxyHeader =
  /** The connection carries a client: these are its address and the address it connected to. */
  | { command: 'PROXY'; source: ProxiedAddress; destination: ProxiedAddress }
  /** No client address to take (LOCAL, or a family without one): use the socket's. */
  | { command: 'LOCAL' };

export type ProxyParse =
  | { state: 'incomplete' }
  | { state: 'done'; header: ProxyHeader; headerBytes: number }
  | { state: 'error'; reason: string };

/**
 * Parses the header at the start of `bytes`: 'incomplete' when more bytes could still make a
 * valid header, 'done' with the header's length (what follows is the client's stream), or
 * 'error' as soon as the bytes cannot.
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParse {
  const signatureSeen = Math.min(bytes.length, SIGNATURE.length);
  for (let i = 0; i < signatureSeen; i++) {
    if (bytes[i] !== SIGNATURE[i]) {
      return { state: 'error', reason: startsLikeVersion1(bytes) ? 'a PROXY protocol v1 (text) header; v2 is expected' : 'no PROXY protocol v2 signature' };
    }
  }
  if (bytes.length < FIXED_BYTES) {
    // Refuse a bad version or command byte without waiting for the rest.
    if (bytes.length > 12) {
      const early = versionAndCommand(bytes[12]!);
      if ('reason' in early) return { state: 'error', reason: early.reason };
    }
    return { state: 'incomplete' };
  }
  const head = versionAndCommand(bytes[12]!);
  if ('reason' in head) return { state: 'error', reason: head.reason };
  const familyByte = bytes[13]!;
  const length = (bytes[14]! << 8) | bytes[15]!;
  const total = FIXED_BYTES + length;
  if (total > MAX_HEADER_BYTES) return { state: 'error', reason: `header of ${total} bytes is over the ${MAX_HEADER_BYTES}-byte limit` };
  const family = familyByte >> 4;
  const transport = familyByte & 0x0f;
  if (family > 3) return { state: 'error', reason: `unknown address family ${family}` };
  if (transport > 2) return { state: 'error', reason: `unknown transport ${transport}` };
  if (bytes.length < total) return { state: 'incomplete' };
  const body = bytes.subarray(FIXED_BYTES, total);

  // LOCAL: "the receiver must accept this connection as valid and must use the real connection
  // endpoints and discard the protocol block including the family".
  if (head.command === 'LOCAL') return { state: 'done', header: { command: 'LOCAL' }, headerBytes: total };
  if (family === 0 || family === 3) {
    // UNSPEC: no address to take; UNIX: a socket path, no use as a client address. Both are
    // accepted and the socket's own address stands, as for LOCAL.
    if (family === 3 && length < ADDRESS_BYTES.unix) return { state: 'error', reason: `UNIX address block of ${length} bytes, under ${ADDRESS_BYTES.unix}` };
    return { state: 'done', header: { command: 'LOCAL' }, headerBytes: total };
  }
  // A chat client is a TCP stream; a datagram (or unspecified) transport carries no such client.
  if (transport !== 1) return { state: 'error', reason: transport === 2 ? 'a UDP (DGRAM) connection' : 'PROXY command with an unspecified transport' };
  if (family === 1) {
    if (length < ADDRESS_BYTES.ipv4) return { state: 'error', reason: `IPv4 address block of ${length} bytes, under ${ADDRESS_BYTES.ipv4}` };
    const source = { address: formatIPv4(body.subarray(0, 4)), port: readPort(body, 8), family: 'IPv4' as const };
    const destination = { address: formatIPv4(body.subarray(4, 8)), port: readPort(body, 10), family: 'IPv4' as const };
    return { state: 'done', header: { command: 'PROXY', source, destination }, headerBytes: total };
  }
  if (length < ADDRESS_BYTES.ipv6) return { state: 'error', reason: `IPv6 address block of ${length} bytes, under ${ADDRESS_BYTES.ipv6}` };
  const source = ipv6Endpoint(body.subarray(0, 16), readPort(body, 32));
  const destination = ipv6Endpoint(body.subarray(16, 32), readPort(body, 34));
  return { state: 'done', header: { command: 'PROXY', source, destination }, headerBytes: total };
}

function versionAndCommand(byte: number): { command: 'LOCAL' | 'PROXY' } | { reason: string } {
  if (byte >> 4 !== 2) return { reason: `version ${byte >> 4}, not 2` };
  const command = byte & 0x0f;
  if (command === 0) return { command: 'LOCAL' };
  if (command === 1) return { command: 'PROXY' };
  return { reason: `unknown command ${command}` };
}

function startsLikeVersion1(bytes: Uint8Array): boolean {
  const text = Buffer.from(bytes.subarray(0, 6)).toString('latin1');
  return text.length > 0 && 'PROXY '.startsWith(text);
}

function readPort(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 client, and is counted as one. */
function ipv6Endpoint(bytes: Uint8Array, port: number): ProxiedAddress {
  const mapped = bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return { address: formatIPv4(bytes.subarray(12, 16)), port, family: 'IPv4' };
  return { address: formatIPv6(bytes), port, family: 'IPv6' };
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups as `::`. */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * Collects a connection's first bytes until its header is complete: push() each chunk as it
 * arrives. Holds at most MAX_HEADER_BYTES (+ one chunk's tail) before deciding.
 */
export class ProxyHeaderReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { state: 'incomplete' } | { state: 'done'; header: ProxyHeader; rest: Buffer } | { state: 'error'; reason: string } {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const parsed = parseProxyHeader(this.buffered);
    if (parsed.state !== 'done') return parsed;
    const rest = this.buffered.subarray(parsed.headerBytes);
    this.buffered = Buffer.alloc(0);
    return { state: 'done', header: parsed.header, rest };
  }
}

/** A v2 header for these endpoints (PROXY over TCP), or LOCAL: for tests and tools. */
export function encodeProxyHeader(header: ProxyHeader, tlvs: Uint8Array = new Uint8Array()): Buffer {
  if (header.command === 'LOCAL') {
    return Buffer.concat([SIGNATURE, Buffer.from([0x20, 0x00, tlvs.length >> 8, tlvs.length & 0xff]), tlvs]);
  }
  const { source, destination } = header;
  const ipv6 = source.family === 'IPv6';
  const addresses = ipv6
    ? Buffer.concat([ipv6Bytes(source.address), ipv6Bytes(destination.address)])
    : Buffer.from([...source.address.split('.').map(Number), ...destination.address.split('.').map(Number)]);
  const ports = Buffer.from([source.port >> 8, source.port & 0xff, destination.port >> 8, destination.port & 0xff]);
  const length = addresses.length + ports.length + tlvs.length;
  return Buffer.concat([SIGNATURE, Buffer.from([0x21, ipv6 ? 0x21 : 0x11, length >> 8, length & 0xff]), addresses, ports, tlvs]);
}

function ipv6Bytes(text: string): Buffer {
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const before = parse(head);
  const after = tail === undefined ? [] : parse(tail);
  const groups = [...before, ...Array(8 - before.length - after.length).fill(0), ...after];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
  return bytes;
}
