import { isUtf8 } from 'node:buffer';

// Turns a TCP byte stream into protocol lines (PROTOCOL.md "Transport"). Pure: no sockets.
// Memory per connection is bounded by the line limit: bytes past it are counted, never kept.

export type FramingError = 'LINE TOO LONG' | 'INVALID ENCODING' | 'INVALID CHARACTERS';

export type Frame = { line: string } | { error: FramingError };

const LF = 0x0a;
const CR = 0x0d;
// C0 controls other than TAB, DEL, the C1 controls, and the Unicode line and paragraph
// separators (hidden line breaks in some terminals). LF never reaches this check; a lone CR does.
const CONTROL_CHARACTER = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/;
const BLANK = /^[ \t]*$/;

export class LineFramer {
  private readonly maxLineBytes: number;
  private pieces: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Bytes held for the unfinished line; never more than the limit plus one (a CR). */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /** Feeds one chunk; returns the frames it completed, in order. Blank lines yield nothing. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        this.take(chunk.subarray(start), frames);
        break;
      }
      const bytes = chunk.subarray(start, lf);
      if (this.pendingBytes === 0 && !this.discarding) this.finishLine(bytes, frames);
      else {
        this.take(bytes, frames);
        this.endLine(frames);
      }
      start = lf + 1;
    }
    return frames;
  }

  private take(bytes: Buffer, frames: Frame[]): void {
    if (this.discarding || bytes.length === 0) return;
    // One byte of slack: a CR at the limit may still turn out to be the terminator.
    if (this.pendingBytes + bytes.length > this.maxLineBytes + 1) {
      frames.push({ error: 'LINE TOO LONG' });
      this.reset();
      this.discarding = true;
      return;
    }
    // Copied, so a short unfinished line does not pin the socket's whole read buffer.
    this.pieces.push(Buffer.from(bytes));
    this.pendingBytes += bytes.length;
  }

  private endLine(frames: Frame[]): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const line = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.pendingBytes);
    this.reset();
    this.finishLine(line, frames);
  }

  private finishLine(terminated: Buffer, frames: Frame[]): void {
    const line = terminated[terminated.length - 1] === CR ? terminated.subarray(0, -1) : terminated;
    if (line.length > this.maxLineBytes) {
      frames.push({ error: 'LINE TOO LONG' });
      return;
    }
    const frame = decodeLine(line);
    if (frame) frames.push(frame);
  }

  private reset(): void {
    this.pieces = [];
    this.pendingBytes = 0;
  }
}

function decodeLine(bytes: Buffer): Frame | undefined {
  if (!isUtf8(bytes)) return { error: 'INVALID ENCODING' };
  const text = bytes.toString('utf8');
  if (CONTROL_CHARACTER.test(text)) return { error: 'INVALID CHARACTERS' };
  if (BLANK.test(text)) return undefined;
  return { line: text };
}
