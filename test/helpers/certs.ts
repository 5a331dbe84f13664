import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Certificates made by the test with openssl, in a temporary directory removed by cleanup().

export interface CertificateFiles {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as node's X509Certificate and getPeerCertificate() print it. */
  fingerprint: string;
}

export class TestCertificates {
  readonly dir = mkdtempSync(join(tmpdir(), 'chatline-certs-'));
  private ca: CertificateFiles | undefined;

  /** A certificate for localhost and 127.0.0.1, signed by itself. */
  selfSigned(name: string, days = 2): CertificateFiles {
    const cert = join(this.dir, `${name}.crt`);
    const key = join(this.dir, `${name}.key`);
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
      '-days', String(days), '-subj', `/CN=localhost`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
    return { cert, key, fingerprint: fingerprintOf(cert) };
  }

  /** A private CA (made on first use), and a certificate for localhost/127.0.0.1 that it signed. */
  signedByCa(name: string): CertificateFiles & { ca: string } {
    this.ca ??= this.selfSigned('ca', 2);
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.crt`);
    const ext = join(this.dir, `${name}.ext`);
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=localhost');
    execFileSync('sh', ['-c', `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > '${ext}'`]);
    openssl('x509', '-req', '-in', csr, '-CA', this.ca.cert, '-CAkey', this.ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext);
    return { cert, key, fingerprint: fingerprintOf(cert), ca: this.ca.cert };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function fingerprintOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}
