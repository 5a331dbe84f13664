import { X509Certificate } from 'node:crypto';
import { type FSWatcher, unwatchFile, watch, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Socket } from 'node:net';
import { createSecureContext, createServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { ConfigError, readConfiguredFile, type TlsSettings } from '../config.js';
import type { Logger } from '../log.js';

// The TLS side of the chat port: one tls.Server that never listens itself (the chat server
// accepts TCP, reads a PROXY header if configured, then hands the socket over), and the
// certificate it presents, read again when the files change.
//
// Renewal: certbot, cert-manager and Kubernetes Secret volumes replace the files by renaming
// (a new file, or a new `..data` symlink) in the files' directory: that directory is watched,
// which sees it at once. A file rewritten in place, or behind a symlink into another directory,
// is seen by polling the files' status every STAT_POLL_MS (through symlinks). Either way the
// pair is read a moment later (the key and the certificate are not always replaced together),
// and every RELOAD_POLL_MS regardless, whatever the file system reports. A new pair is
// used for new handshakes only (setSecureContext): connections already open keep theirs.
// A pair that does not load (half written, key and certificate not matching) is logged and
// the current one kept; the next change or poll tries again.

/** Re-read the files this often even without a change event (a watch can miss some file systems' changes). */
const RELOAD_POLL_MS = 60_000;
/** How often the files' status (size, mtime, inode, through symlinks) is compared. */
const STAT_POLL_MS = 1000;
/** Changes come in bursts (certificate, key, symlink): read once they settle. */
const SETTLE_MS = 200;
/** A client that has not finished its handshake this long after connecting is dropped. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

interface CertificatePair {
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
  validTo: string;
}

export class TlsCertificates {
  readonly server: TlsServer;
  private current: CertificatePair;
  private readonly watchers: FSWatcher[] = [];
  private readonly poll: NodeJS.Timeout;
  private settle: NodeJS.Timeout | undefined;
  private reading = false;
  /** Connections handed to the TLS server, by their TCP peer (unique among open connections). */
  private readonly handshaking = new Map<string, (secure: TLSSocket) => void>();

  /** Reads the pair now; a pair that cannot be used stops the start with a line naming the variable. */
  constructor(private readonly settings: TlsSettings, private readonly log: Logger) {
    this.current = loadAtStart(settings);
    this.server = createServer({ cert: this.current.cert, key: this.current.key, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    log.info({ fingerprint: this.current.fingerprint, validTo: this.current.validTo }, 'TLS certificate loaded');
    this.server.on('secureConnection', (secure: TLSSocket) => {
      const key = peerKey(secure);
      const secured = this.handshaking.get(key);
      this.handshaking.delete(key);
      if (secured) secured(secure);
      else secure.destroy();
    });
    // A failed or timed-out handshake: node destroys the socket; the chat server counts the close.
    this.server.on('tlsClientError', () => {});
    for (const directory of new Set([dirname(settings.certFile), dirname(settings.keyFile)])) {
      try {
        const watcher = watch(directory, { persistent: false }, this.changed);
        watcher.on('error', () => {});
        this.watchers.push(watcher);
      } catch {
        // The poll still picks changes up.
      }
    }
    for (const file of this.files) watchFile(file, { interval: STAT_POLL_MS, persistent: false }, this.changed);
    this.poll = setInterval(() => void this.reload(), RELOAD_POLL_MS);
    this.poll.unref();
  }

  /**
   * Runs the server side of a TLS handshake on an accepted TCP connection (whatever it already
   * sent, and was put back with unshift, is read first); `secured` gets the encrypted socket.
   * A handshake that fails or takes over HANDSHAKE_TIMEOUT_MS ends in the socket's close.
   */
  handshake(socket: Socket, secured: (secure: TLSSocket) => void): void {
    const key = peerKey(socket);
    this.handshaking.set(key, secured);
    socket.once('close', () => this.handshaking.delete(key));
    this.server.emit('connection', socket);
  }

  private get files(): string[] {
    return [this.settings.certFile, this.settings.keyFile];
  }

  /** SHA-256 fingerprint of the certificate new handshakes get. */
  get fingerprint(): string {
    return this.current.fingerprint;
  }

  close(): void {
    for (const file of this.files) unwatchFile(file, this.changed);
    clearInterval(this.poll);
    clearTimeout(this.settle);
    for (const watcher of this.watchers) watcher.close();
  }

  private readonly changed = (): void => {
    clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.reload(), SETTLE_MS);
    this.settle.unref();
  };

  private async reload(): Promise<void> {
    if (this.reading) return this.changed();
    this.reading = true;
    try {
      const [cert, key] = await Promise.all([readFile(this.settings.certFile), readFile(this.settings.keyFile)]);
      if (cert.equals(this.current.cert) && key.equals(this.current.key)) return;
      const pair = checkPair(cert, key);
      this.server.setSecureContext({ cert, key });
      this.current = pair;
      this.log.info({ fingerprint: pair.fingerprint, validTo: pair.validTo }, 'TLS certificate reloaded; new connections get it');
    } catch (error) {
      this.log.warn({ err: (error as Error).message, fingerprint: this.current.fingerprint },
        'TLS_CERT_FILE or TLS_KEY_FILE changed but cannot be used (yet); keeping the current certificate');
    } finally {
      this.reading = false;
    }
  }
}

// tls.Server hands back a new TLSSocket, not the TCP socket it was given; both report the
// same peer, which no other open connection to this port has.
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function loadAtStart(settings: TlsSettings): CertificatePair {
  const cert = readConfiguredFile('TLS_CERT_FILE', settings.certFile);
  const key = readConfiguredFile('TLS_KEY_FILE', settings.keyFile);
  try {
    return checkPair(cert, key);
  } catch (error) {
    throw new ConfigError(`TLS_CERT_FILE=${JSON.stringify(settings.certFile)} and TLS_KEY_FILE=${JSON.stringify(settings.keyFile)} `
      + `are not a usable certificate and key: ${(error as Error).message}`);
  }
}

/** Throws unless the certificate parses and the key is its key. */
function checkPair(cert: Buffer, key: Buffer): CertificatePair {
  createSecureContext({ cert, key });
  const parsed = new X509Certificate(cert);
  return { cert, key, fingerprint: parsed.fingerprint256, validTo: parsed.validTo };
}
