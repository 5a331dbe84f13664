import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeProxyHeader, formatIPv6, MAX_HEADER_BYTES, parseProxyHeader, type ProxiedAddress, type ProxyHeader, ProxyHeaderReader,
} from '../../src/net/proxy-protocol.js';

// The PROXY v2 parser: what a balancer sends is read exactly, however TCP splits it, and
// nothing else is ever taken for a header.

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join('.'));
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 })
  // Mapped addresses come out as IPv4 (tested on their own).
  .filter((bytes) => !(bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff))
  .map((bytes) => formatIPv6(bytes));
const port = fc.nat(65535);
const endpoints = fc.oneof(
  fc.tuple(ipv4, port, ipv4, port).map(([a, p, b, q]) => [{ address: a, port: p, family: 'IPv4' }, { address: b, port: q, family: 'IPv4' }] as const),
  fc.tuple(ipv6, port, ipv6, port).map(([a, p, b, q]) => [{ address: a, port: p, family: 'IPv6' }, { address: b, port: q, family: 'IPv6' }] as const),
);
const header: fc.Arbitrary<ProxyHeader> = fc.oneof(
  endpoints.map(([source, destination]) => ({ command: 'PROXY' as const, source: source as ProxiedAddress, destination: destination as ProxiedAddress })),
  fc.constant({ command: 'LOCAL' as const }),
);
const tlvs = fc.uint8Array({ maxLength: 300 });
const afterHeader = fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes));

/** Splits bytes into chunks at the given cut points, as TCP may deliver them. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

describe('PROXY protocol v2 parser', () => {
  it('reads back any header it is given, split anywhere, and hands over the bytes after it untouched', () => {
    fc.assert(fc.property(header, tlvs, afterHeader, fc.array(fc.nat(), { maxLength: 6 }), (sent, extra, rest, cuts) => {
      const encoded = encodeProxyHeader(sent, extra);
      const reader = new ProxyHeaderReader();
      let result: ReturnType<ProxyHeaderReader['push']> | undefined;
      const chunks = split(Buffer.concat([encoded, rest]), cuts);
      for (const [i, chunk] of chunks.entries()) {
        result = reader.push(chunk);
        if (result.state !== 'incomplete') {
          // The rest of what was sent after the chunk that completed the header.
          assert.equal(result.state, 'done');
          assert.deepEqual(result.header, sent);
          assert.deepEqual(Buffer.concat([result.rest, ...chunks.slice(i + 1)]), rest);
          return;
        }
      }
      assert.fail(`header never completed: ${JSON.stringify(result)}`);
    }));
  });

  it('says incomplete for every strict prefix of a valid header', () => {
    fc.assert(fc.property(header, tlvs, (sent, extra) => {
      const encoded = encodeProxyHeader(sent, extra);
      for (let length = 0; length < encoded.length; length++) {
        assert.deepEqual(parseProxyHeader(encoded.subarray(0, length)), { state: 'incomplete' }, `prefix of ${length} bytes`);
      }
    }));
  });

  it('never throws on arbitrary bytes, and never takes more than its limit', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      // Past the signature, so the version, family and length checks are reached too.
      fc.uint8Array({ maxLength: 600 }).map((tail) => new Uint8Array([...SIGNATURE, ...tail])),
      fc.tuple(fc.nat(255), fc.nat(255), fc.nat(0xffff), fc.uint8Array({ maxLength: 300 }))
        .map(([version, family, length, tail]) => new Uint8Array([...SIGNATURE, version, family, length >> 8, length & 0xff, ...tail])),
    );
    fc.assert(fc.property(bytes, (input) => {
      const parsed = parseProxyHeader(input);
      assert.ok(['incomplete', 'done', 'error'].includes(parsed.state));
      if (parsed.state === 'done') {
        assert.ok(parsed.headerBytes <= MAX_HEADER_BYTES && parsed.headerBytes <= input.length);
        if (parsed.header.command === 'PROXY') {
          assert.ok(parsed.header.source.port >= 0 && parsed.header.source.port <= 65535);
        }
      }
      if (parsed.state === 'incomplete') assert.ok(input.length < MAX_HEADER_BYTES);
    }), { numRuns: 2000 });
  });

  it('refuses a chat line, a v1 header, HTTP or TLS at the first byte, without waiting for more', () => {
    for (const [text, reason] of [
      ['LOGIN alice\n', /no PROXY protocol v2 signature/],
      ['L', /no PROXY protocol v2 signature/],
      ['PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n', /v1 \(text\) header; v2 is expected/],
      ['PRO', /v1/],
      ['GET / HTTP/1.1\r\n', /no PROXY protocol v2 signature/],
      ['\x16\x03\x01', /no PROXY protocol v2 signature/],
    ] as const) {
      const parsed = parseProxyHeader(Buffer.from(text, 'latin1'));
      assert.equal(parsed.state, 'error', text);
      assert.match((parsed as { reason: string }).reason, reason);
    }
  });

  it('refuses a wrong version or command as soon as that byte arrives', () => {
    assert.match((parseProxyHeader(Buffer.concat([SIGNATURE, Buffer.from([0x11])])) as { reason: string }).reason, /version 1, not 2/);
    assert.match((parseProxyHeader(Buffer.concat([SIGNATURE, Buffer.from([0x22])])) as { reason: string }).reason, /unknown command 2/);
  });

  it('refuses a header over its size limit from its length field alone', () => {
    const big = MAX_HEADER_BYTES; // + 16 fixed bytes: over the limit
    const parsed = parseProxyHeader(Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, big >> 8, big & 0xff])]));
    assert.equal(parsed.state, 'error');
    assert.match((parsed as { reason: string }).reason, /over the 4096-byte limit/);
  });

  it('takes LOCAL, UNSPEC and UNIX as "use the socket address", and refuses UDP and short address blocks', () => {
    const fixed = (command: number, family: number, body: Buffer) =>
      Buffer.concat([SIGNATURE, Buffer.from([command, family, body.length >> 8, body.length & 0xff]), body]);
    assert.deepEqual(parseProxyHeader(fixed(0x20, 0x00, Buffer.alloc(0))), { state: 'done', header: { command: 'LOCAL' }, headerBytes: 16 });
    // LOCAL with an address block (HAProxy's health checks may send one): ignored.
    assert.equal((parseProxyHeader(fixed(0x20, 0x11, Buffer.alloc(12))) as { header: ProxyHeader }).header.command, 'LOCAL');
    assert.equal((parseProxyHeader(fixed(0x21, 0x00, Buffer.alloc(0))) as { header: ProxyHeader }).header.command, 'LOCAL');
    assert.equal((parseProxyHeader(fixed(0x21, 0x31, Buffer.alloc(216))) as { header: ProxyHeader }).header.command, 'LOCAL');
    assert.match((parseProxyHeader(fixed(0x21, 0x12, Buffer.alloc(12))) as { reason: string }).reason, /UDP/);
    assert.match((parseProxyHeader(fixed(0x21, 0x11, Buffer.alloc(11))) as { reason: string }).reason, /IPv4 address block of 11 bytes/);
    assert.match((parseProxyHeader(fixed(0x21, 0x21, Buffer.alloc(35))) as { reason: string }).reason, /IPv6 address block of 35 bytes/);
  });

  it('reads an IPv4-mapped IPv6 source as the IPv4 client it is', () => {
    const body = Buffer.alloc(36);
    Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7]).copy(body, 0);
    body.writeUInt16BE(40000, 32);
    const parsed = parseProxyHeader(Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x21, 0, 36]), body]));
    assert.deepEqual((parsed as { header: { source: ProxiedAddress } }).header.source, { address: '203.0.113.7', port: 40000, family: 'IPv4' });
  });

  it('writes IPv6 addresses in the canonical text every other tool prints', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(8), fc.nat(8), (bytes, zeroFrom, zeroCount) => {
      // Runs of zero groups are what canonical text is about: make some.
      bytes.fill(0, zeroFrom * 2, Math.min(16, (zeroFrom + zeroCount) * 2));
      const text = formatIPv6(bytes);
      if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(text)) return; // WHATWG keeps hex; not a client we show as IPv6
      assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1));
    }), { numRuns: 2000 });
    assert.equal(formatIPv6(Buffer.from('20010db8000000000001000000000001', 'hex')), '2001:db8::1:0:0:1');
    assert.equal(formatIPv6(Buffer.alloc(16)), '::');
  });
});
