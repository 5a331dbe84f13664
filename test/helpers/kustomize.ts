import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

// Renders deploy/k8s with a real kustomize: the one built into kubectl (`kubectl kustomize`,
// kustomize v5), which is on every machine of this project's kind. The tree is copied to a
// temporary directory first, with placeholder password files where the kustomizations expect
// the operator's (they are never committed), so what is checked is what `kubectl apply -k`
// would send.

export const K8S_DIR = fileURLToPath(new URL('../../deploy/k8s/', import.meta.url));

export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
};

/** The password files the shipped kustomizations read, relative to deploy/k8s. */
export const PASSWORD_FILES = ['secrets/redis-password', 'overlays/external-redis/secrets/redis-password'];

/**
 * Variants shipped, as kustomization directories relative to deploy/k8s, plus one made here
 * from components (every optional component in use at least once).
 */
export const VARIANTS: Record<string, { dir: string; kustomization?: string }> = {
  default: { dir: '.' },
  'external-redis': { dir: 'overlays/external-redis' },
  'proxy-protocol+tls': {
    // Outside the copied tree: kustomize refuses a kustomization inside the one it includes.
    dir: '../variants/edge',
    kustomization: [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'resources: [../../k8s]',
      'components: [../../k8s/components/proxy-protocol, ../../k8s/components/tls]',
    ].join('\n'),
  },
};

export function requireKubectl(): void {
  const version = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (version.status !== 0) {
    throw new Error('kubectl is not installed: the manifest tests render deploy/k8s with `kubectl kustomize`. '
      + `Install kubectl (its built-in kustomize is enough).\n${version.stderr ?? version.error ?? ''}`);
  }
}

/** A throwaway copy of deploy/k8s (in `root`) with placeholder secrets, and the test-made variants beside it. */
export class KustomizeTree {
  private readonly parent = mkdtempSync(join(tmpdir(), 'chatline-k8s-'));
  readonly root = join(this.parent, 'k8s');

  constructor(readonly password = 'placeholder-password-for-tests') {
    cpSync(K8S_DIR, this.root, { recursive: true });
    for (const file of PASSWORD_FILES) writeFileSync(join(this.root, file), `${password}\n`);
    for (const { dir, kustomization } of Object.values(VARIANTS)) {
      if (kustomization === undefined) continue;
      mkdirSync(join(this.root, dir), { recursive: true });
      writeFileSync(join(this.root, dir, 'kustomization.yaml'), kustomization);
    }
  }

  render(dir: string): Manifest[] {
    const output = execFileSync('kubectl', ['kustomize', join(this.root, dir)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    return parseAllDocuments(output).map((doc) => doc.toJS() as Manifest);
  }

  /** kubectl kustomize's exit status and stderr, for a tree the test broke on purpose. */
  renderFails(dir: string): string | undefined {
    const result = spawnSync('kubectl', ['kustomize', join(this.root, dir)], { encoding: 'utf8' });
    return result.status === 0 ? undefined : result.stderr;
  }

  remove(): void {
    rmSync(this.parent, { recursive: true, force: true });
  }
}
