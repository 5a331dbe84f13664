import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Frame, LineFramer } from '../../src/protocol/framer.js';

const frames = (input: string | Buffer, max = 1024): Frame[] =>
  new LineFramer(max).push(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);

describe('line framer', () => {
  it('splits on LF and drops one CR before it', () => {
    assert.deepEqual(frames('LOGIN a\nJOIN #b\r\nMSG #b x\r\r\n'), [
      { line: 'LOGIN a' }, { line: 'JOIN #b' }, { error: 'INVALID CHARACTERS' },
    ]);
  });

  it('keeps an unfinished line until its LF arrives', () => {
    const framer = new LineFramer(1024);
    assert.deepEqual(framer.push(Buffer.from('LOG')), []);
    assert.deepEqual(framer.push(Buffer.from('IN al')), []);
    assert.deepEqual(framer.push(Buffer.from('ice\r')), []);
    assert.deepEqual(framer.push(Buffer.from('\n')), [{ line: 'LOGIN alice' }]);
  });

  it('ignores blank and whitespace-only lines', () => {
    assert.deepEqual(frames('\n\r\n  \t \nLOGOUT\n'), [{ line: 'LOGOUT' }]);
  });

  it('accepts a line of exactly the limit and refuses one byte more, once', () => {
    const exact = 'x'.repeat(1024);
    assert.deepEqual(frames(`${exact}\r\n`), [{ line: exact }]);
    assert.deepEqual(frames(`${exact}y\nLOGOUT\n`), [{ error: 'LINE TOO LONG' }, { line: 'LOGOUT' }]);
    assert.deepEqual(frames(`${'z'.repeat(5000)}\nLOGOUT\n`), [{ error: 'LINE TOO LONG' }, { line: 'LOGOUT' }]);
  });

  it('counts the limit in bytes, not characters', () => {
    const twoByteChars = 'é'.repeat(513); // 1026 bytes
    assert.deepEqual(frames(`${twoByteChars}\n`), [{ error: 'LINE TOO LONG' }]);
  });

  it('holds at most the limit in memory for a line that never ends', () => {
    const framer = new LineFramer(1024);
    const out: Frame[] = [];
    for (let i = 0; i < 10_000; i++) {
      out.push(...framer.push(Buffer.alloc(100, 0x61)));
      assert.ok(framer.bufferedBytes <= 1025);
    }
    assert.deepEqual(out, [{ error: 'LINE TOO LONG' }]);
    assert.deepEqual(framer.push(Buffer.from('\nLOGOUT\n')), [{ line: 'LOGOUT' }]);
  });

  it('refuses invalid UTF-8', () => {
    assert.deepEqual(frames(Buffer.from([0x4d, 0x53, 0x47, 0x20, 0xff, 0x0a])), [{ error: 'INVALID ENCODING' }]);
    // An overlong encoding of '/' and a lone surrogate are not valid UTF-8 either.
    assert.deepEqual(frames(Buffer.from([0xc0, 0xaf, 0x0a])), [{ error: 'INVALID ENCODING' }]);
    assert.deepEqual(frames(Buffer.from([0xed, 0xa0, 0x80, 0x0a])), [{ error: 'INVALID ENCODING' }]);
  });

  it('refuses control characters but allows TAB and any other Unicode', () => {
    assert.deepEqual(frames('MSG bob \x1b[31mred\n'), [{ error: 'INVALID CHARACTERS' }]);
    assert.deepEqual(frames('MSG bob a\x00b\n'), [{ error: 'INVALID CHARACTERS' }]);
    assert.deepEqual(frames('MSG bob del\x7f\n'), [{ error: 'INVALID CHARACTERS' }]);
    assert.deepEqual(frames('MSG bob\tünïcødé ✓ 🎉\n'), [{ line: 'MSG bob\tünïcødé ✓ 🎉' }]);
  });

  it('refuses the C1 controls and the Unicode line and paragraph separators (protocol 1.1)', () => {
    // U+009B is the one-byte CSI: a terminal escape without ESC.
    for (const hidden of ['\u0080', '\u009b', '\u009f', '\u2028', '\u2029']) {
      assert.deepEqual(frames(`MSG bob a${hidden}b\n`), [{ error: 'INVALID CHARACTERS' }], JSON.stringify(hidden));
    }
    // Their neighbours are ordinary text.
    assert.deepEqual(frames('MSG bob \u00a0\u2027\u202a\n'), [{ line: 'MSG bob \u00a0\u2027\u202a' }]);
  });

  it('gives the same frames however the bytes are split (property)', () => {
    const byte = fc.oneof(
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom(0x0a, 0x0d, 0x20, 0x09, 0x41), // make line structure likely
    );
    fc.assert(fc.property(
      fc.array(byte, { maxLength: 400 }),
      fc.array(fc.nat(400), { maxLength: 20 }),
      fc.integer({ min: 1, max: 40 }),
      (bytes, cutPoints, max) => {
        const input = Buffer.from(bytes);
        const whole = new LineFramer(max).push(input);
        const framer = new LineFramer(max);
        const pieces: Frame[] = [];
        let start = 0;
        for (const cut of [...new Set(cutPoints)].sort((a, b) => a - b)) {
          if (cut > input.length) break;
          pieces.push(...framer.push(input.subarray(start, cut)));
          start = cut;
        }
        pieces.push(...framer.push(input.subarray(start)));
        assert.deepEqual(pieces, whole);
        assert.ok(framer.bufferedBytes <= max + 1);
      },
    ), { numRuns: 2000 });
  });
});
