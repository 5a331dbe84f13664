import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as models from 'kubernetes-models';
import ts from 'typescript';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';
import { HEALTH_PATHS } from '../../src/health.js';
import { K8S_DIR, KustomizeTree, type Manifest, PASSWORD_FILES, requireKubectl, VARIANTS } from '../helpers/kustomize.js';

// No cluster runs here, so deploy/k8s is checked offline: every variant rendered by a real
// kustomize (kubectl's), each resource against the Kubernetes schema (kubernetes-models) and
// for fields the API does not know, then the resources against each other and against the
// code they deploy.

const ROOT = new URL('../../', import.meta.url);

/**
 * Variables src/config.ts reads that must not be in the ConfigMap because their value is
 * itself a secret. None today: secrets reach the server as files, named by REDIS_PASSWORD_FILE,
 * REDIS_TLS_CA_FILE, TLS_CERT_FILE and TLS_KEY_FILE (which are paths, and so in the ConfigMap).
 * A variable added here must come from a Secret instead.
 */
const SECRET_VARIABLES: readonly string[] = [];

/** /metrics lives beside the probes; HEALTH_PATHS gains it when the server serves it. */
const METRICS_PATH = (HEALTH_PATHS as Record<string, string>).metrics ?? '/metrics';

const NAMESPACE = 'chatline';

const matches = (selector: Record<string, string> = {}, labels: Record<string, string> = {}) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels[key] === value);

/** Where kubernetes-models keeps an apiVersion's kinds ("apps/v1" → ['apps', 'v1'], "v1" → ['v1']). */
function modelPath(apiVersion: string): string[] {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const groupName = group === '' ? '' : group!.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase()).replace(/\./g, '');
  return groupName === '' ? [version!] : [groupName, version!];
}

/** kubernetes-models' class for an apiVersion and kind ("apps/v1" → models.apps.v1). */
function modelFor(apiVersion: string, kind: string): new (data: object) => { validate(): void } {
  const namespace = modelPath(apiVersion).reduce((at: any, key) => at?.[key], models);
  const model = namespace?.[kind];
  assert.ok(model, `no schema for ${apiVersion} ${kind}`);
  return model;
}

/**
 * Fields the Kubernetes API does not know (a typo, a field at the wrong level) pass the JSON
 * schema, which allows extra properties, and fail only at `kubectl apply`. TypeScript's
 * excess-property check against kubernetes-models' interfaces finds them: the manifests are
 * compiled, in memory, as object literals of their kinds' types. Returns the compiler's errors.
 */
function unknownFields(manifests: Manifest[]): string[] {
  const file = fileURLToPath(new URL('__k8s_manifests__.ts', ROOT));
  const source = ["import type * as k from 'kubernetes-models';", ...manifests.map((manifest, i) =>
    `export const m${i}: k.${[...modelPath(manifest.apiVersion), `I${manifest.kind}`].join('.')} = ${JSON.stringify(manifest)};`)].join('\n');
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists } = host;
  host.getSourceFile = (name, language, ...rest) =>
    name === file ? ts.createSourceFile(name, source, language) : getSourceFile.call(host, name, language, ...rest);
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const line = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line : -1;
    const manifest = manifests[line - 1];
    return `${manifest ? `${manifest.kind} ${manifest.metadata.name}: ` : ''}${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`;
  });
}

/** One rendered variant, with finders. */
class Rendered {
  constructor(readonly name: string, readonly manifests: Manifest[]) {}

  all(kind: string): Manifest[] {
    return this.manifests.filter((m) => m.kind === kind);
  }

  one(kind: string, name: string): Manifest {
    const found = this.manifests.find((m) => m.kind === kind && m.metadata.name === name);
    assert.ok(found, `${this.name}: no ${kind} ${name}`);
    return found;
  }

  /** A generated ConfigMap or Secret, by the name before kustomize's hash suffix. */
  generated(kind: 'ConfigMap' | 'Secret', name: string): Manifest {
    const found = this.all(kind).filter((m) => m.metadata.name.replace(/-[a-z0-9]{10}$/, '') === name);
    assert.equal(found.length, 1, `${this.name}: one generated ${kind} ${name}, with a hash suffix`);
    return found[0]!;
  }

  get chat(): Manifest {
    return this.one('Deployment', 'chatline');
  }

  get chatContainer(): any {
    return this.chat.spec.template.spec.containers.find((c: { name: string }) => c.name === 'chatline');
  }

  get config(): Record<string, string> {
    return this.generated('ConfigMap', 'chatline-config').data;
  }

  hasRedis(): boolean {
    return this.manifests.some((m) => m.kind === 'Deployment' && m.metadata.name === 'redis');
  }

  portNamed(name: string | number): number | undefined {
    if (typeof name === 'number') return name;
    return this.chatContainer.ports.find((p: { name: string }) => p.name === name)?.containerPort;
  }

  /** The Secret volume a container has mounted over a file path, and the key inside it. */
  secretFileAt(deployment: Manifest, container: any, path: string): { secret: string; key: string } | undefined {
    for (const mount of container.volumeMounts ?? []) {
      if (!path.startsWith(`${mount.mountPath}/`)) continue;
      const volume = deployment.spec.template.spec.volumes.find((v: { name: string }) => v.name === mount.name);
      if (volume?.secret) return { secret: volume.secret.secretName, key: path.slice(mount.mountPath.length + 1) };
    }
    return undefined;
  }

  /** The ConfigMap's settings as the server would load them, mounted files standing in as temp files. */
  loadConfig(dir: string): ReturnType<typeof loadConfig> {
    const env = { ...this.config };
    for (const [name, value] of Object.entries(env)) {
      if (!name.endsWith('_FILE') || value === '') continue;
      const mounted = this.secretFileAt(this.chat, this.chatContainer, value);
      assert.ok(mounted, `${this.name}: ${name}=${value} is not in a mounted Secret`);
      const standIn = join(dir, name);
      writeFileSync(standIn, 'stand-in\n');
      env[name] = standIn;
    }
    return loadConfig(env);
  }
}

/** Every file in a directory tree, relative to it, with forward slashes. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => statSync(join(dir, file)).isFile())
    .map((file) => file.split('\\').join('/'));
}

/** The files a kustomization (and the kustomizations and components it includes) reads. */
function filesReadBy(dir: string, seen = new Set<string>()): Set<string> {
  const kustomization = parse(readFileSync(join(K8S_DIR, dir, 'kustomization.yaml'), 'utf8'));
  seen.add(posix.join(dir, 'kustomization.yaml'));
  const local = (path: string) => posix.normalize(posix.join(dir, path));
  const generatorFiles = (generators: any[] = []) => generators.flatMap((g) => [
    ...(g.envs ?? []),
    ...(g.files ?? []).map((f: string) => f.split('=').at(-1)!),
  ]);
  for (const path of [...(kustomization.resources ?? []), ...(kustomization.components ?? [])]) {
    const target = local(path);
    let isDir = false;
    try {
      isDir = statSync(join(K8S_DIR, target)).isDirectory();
    } catch {
      assert.fail(`${dir}/kustomization.yaml names ${path}, which does not exist`);
    }
    if (isDir) filesReadBy(target, seen);
    else seen.add(target);
  }
  for (const path of [
    ...(kustomization.patches ?? []).map((p: { path?: string }) => p.path).filter(Boolean),
    ...generatorFiles(kustomization.configMapGenerator),
    ...generatorFiles(kustomization.secretGenerator),
  ]) seen.add(local(path));
  return seen;
}

describe('Kubernetes manifests (deploy/k8s), rendered by kubectl kustomize', () => {
  let tree: KustomizeTree;
  let scratch: string;
  const variants: Rendered[] = [];
  const defaultVariant = () => variants.find((v) => v.name === 'default')!;

  before(() => {
    requireKubectl();
    tree = new KustomizeTree();
    scratch = mkdtempSync(join(tmpdir(), 'chatline-k8s-files-'));
    for (const [name, { dir }] of Object.entries(VARIANTS)) variants.push(new Rendered(name, tree.render(dir)));
  });

  after(() => {
    tree?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('uses every file under deploy/k8s in some shipped kustomization, and commits no password', () => {
    const read = new Set<string>();
    for (const { dir, kustomization } of Object.values(VARIANTS)) if (kustomization === undefined) filesReadBy(dir, read);
    // The components not in a shipped kustomization are used by the test-made variant.
    for (const component of readdirSync(join(K8S_DIR, 'components'))) filesReadBy(`components/${component}`, read);
    const unused = filesUnder(K8S_DIR).filter((file) => !read.has(file) && !file.endsWith('/.gitignore'));
    assert.deepEqual(unused, [], 'files no kustomization reads');
    for (const file of PASSWORD_FILES) {
      assert.ok(read.has(file), `${file} is read by a secretGenerator`);
      const ignore = readFileSync(join(K8S_DIR, posix.dirname(file), '.gitignore'), 'utf8');
      assert.match(ignore, /^\*$/m, `${file} is git-ignored`);
    }
  });

  it('refuses to render without the operator\'s password file (no default password ships)', () => {
    const broken = new KustomizeTree();
    try {
      rmSync(join(broken.root, 'secrets/redis-password'));
      assert.match(broken.renderFails('.') ?? 'rendered', /redis-password/);
    } finally {
      broken.remove();
    }
  });

  it('passes the Kubernetes schema, every resource of every variant', () => {
    for (const variant of variants) {
      assert.ok(variant.manifests.length > 5, variant.name);
      for (const manifest of variant.manifests) {
        const Model = modelFor(manifest.apiVersion, manifest.kind);
        assert.doesNotThrow(() => new Model(manifest).validate(), `${variant.name}: ${manifest.kind} ${manifest.metadata.name}`);
      }
    }
  });

  it('rejects a broken manifest (the validator really validates)', () => {
    const Model = modelFor('apps/v1', 'Deployment');
    const broken = structuredClone(defaultVariant().chat);
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    assert.throws(() => new Model(broken).validate());
  });

  it('has no field the Kubernetes API does not know, in any variant', () => {
    const everything = variants.flatMap((variant) => variant.manifests);
    assert.deepEqual(unknownFields(everything), []);
  });

  it('finds a field the API does not know (the check really checks)', () => {
    const typo = structuredClone(defaultVariant().chat);
    typo.spec.template.spec.containers[0].readinesProbe = typo.spec.template.spec.containers[0].readinessProbe;
    const errors = unknownFields([typo]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /Deployment chatline: .*readinesProbe/);
  });

  it('puts everything in the chatline namespace, held to Pod Security "restricted"', () => {
    for (const variant of variants) {
      const namespace = variant.one('Namespace', NAMESPACE);
      assert.equal(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
      assert.equal(namespace.metadata.labels?.['pod-security.kubernetes.io/warn'], 'restricted');
      for (const manifest of variant.manifests.filter((m) => m.kind !== 'Namespace')) {
        assert.equal(manifest.metadata.namespace, NAMESPACE, `${variant.name}: ${manifest.kind} ${manifest.metadata.name}`);
      }
    }
  });

  it('runs every pod as the "restricted" profile demands, under its own ServiceAccount without a token', () => {
    const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
    for (const variant of variants) {
      for (const deployment of variant.all('Deployment')) {
        const where = `${variant.name}: ${deployment.metadata.name}`;
        const spec = deployment.spec.template.spec;
        assert.ok(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, `${where}: no host namespaces`);
        for (const volume of spec.volumes ?? []) {
          const type = Object.keys(volume).find((key) => key !== 'name')!;
          assert.ok(allowedVolumes.includes(type), `${where}: volume type ${type}`);
        }
        for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
          const context = { ...spec.securityContext, ...container.securityContext };
          assert.equal(context.runAsNonRoot, true, `${where}: runAsNonRoot`);
          assert.notEqual(context.runAsUser, 0, `${where}: not uid 0`);
          assert.equal(container.securityContext?.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
          assert.ok(!container.securityContext?.privileged, `${where}: not privileged`);
          assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL'], `${where}: drops every capability`);
          assert.deepEqual(container.securityContext?.capabilities?.add ?? [], [], `${where}: adds none`);
          assert.equal(context.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp`);
          assert.equal(container.securityContext?.readOnlyRootFilesystem, true, `${where}: read-only root`);
          assert.ok((container.ports ?? []).every((p: { hostPort?: number }) => p.hostPort === undefined), `${where}: no hostPort`);
          for (const kind of ['requests', 'limits']) {
            assert.ok(container.resources?.[kind]?.cpu && container.resources?.[kind]?.memory, `${where}: ${kind}`);
          }
        }
        assert.ok(spec.serviceAccountName && spec.serviceAccountName !== 'default', `${where}: own ServiceAccount`);
        assert.equal(spec.automountServiceAccountToken, false, `${where}: no token in the pod`);
        assert.equal(variant.one('ServiceAccount', spec.serviceAccountName).automountServiceAccountToken, false);
      }
    }
  });

  it('selects with labels that exist: Deployments, Services, PDBs, HPA, NetworkPolicies', () => {
    for (const variant of variants) {
      const deployments = variant.all('Deployment');
      const podsOf = (selector: Record<string, string>) =>
        deployments.filter((d) => matches(selector, d.spec.template.metadata.labels));
      for (const deployment of deployments) {
        assert.ok(matches(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels), deployment.metadata.name);
        const budgets = variant.all('PodDisruptionBudget').filter((pdb) => matches(pdb.spec.selector.matchLabels, deployment.spec.template.metadata.labels));
        assert.equal(budgets.length, 1, `${variant.name}: one PodDisruptionBudget for ${deployment.metadata.name}`);
      }
      for (const service of variant.all('Service')) {
        assert.equal(podsOf(service.spec.selector).length, 1, `${variant.name}: Service ${service.metadata.name} selects one Deployment's pods`);
      }
      for (const policy of variant.all('NetworkPolicy')) {
        assert.ok(podsOf(policy.spec.podSelector.matchLabels).length > 0, `${variant.name}: NetworkPolicy ${policy.metadata.name} selects pods`);
        const peers = [...(policy.spec.ingress ?? []).flatMap((r: any) => r.from ?? []), ...(policy.spec.egress ?? []).flatMap((r: any) => r.to ?? [])];
        for (const peer of peers.filter((p: any) => p.podSelector && !p.namespaceSelector)) {
          assert.ok(podsOf(peer.podSelector.matchLabels).length > 0, `${variant.name}: NetworkPolicy ${policy.metadata.name} names pods that exist`);
        }
      }
      const hpa = variant.one('HorizontalPodAutoscaler', 'chatline');
      assert.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
      assert.equal(hpa.spec.scaleTargetRef.name, variant.chat.metadata.name);
      assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    }
  });

  it('leaves the chat pod count to the HPA: no replicas on its Deployment', () => {
    for (const variant of variants) assert.equal(variant.chat.spec.replicas, undefined, variant.name);
  });

  it('spreads chat pods across nodes (required) and zones (preferred)', () => {
    const constraints = defaultVariant().chat.spec.template.spec.topologySpreadConstraints;
    const byKey = Object.fromEntries(constraints.map((c: any) => [c.topologyKey, c]));
    assert.equal(byKey['kubernetes.io/hostname']?.whenUnsatisfiable, 'DoNotSchedule');
    assert.equal(byKey['topology.kubernetes.io/zone']?.whenUnsatisfiable, 'ScheduleAnyway');
    for (const constraint of constraints) {
      assert.ok(matches(constraint.labelSelector.matchLabels, defaultVariant().chat.spec.template.metadata.labels));
    }
  });

  it('probes the real health port and paths, and tells Prometheus where /metrics is', () => {
    for (const variant of variants) {
      const container = variant.chatContainer;
      const config = variant.loadConfig(scratch);
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        assert.equal(variant.portNamed(container[probe].httpGet.port), config.healthPort, `${variant.name}: ${probe} port`);
      }
      assert.equal(container.startupProbe.httpGet.path, HEALTH_PATHS.alive);
      assert.equal(container.livenessProbe.httpGet.path, HEALTH_PATHS.alive);
      assert.equal(container.readinessProbe.httpGet.path, HEALTH_PATHS.ready);
      // Liveness must not be stricter than the watchdog: a worker is only "stuck" past WATCHDOG_MS.
      const live = container.livenessProbe;
      assert.ok(live.periodSeconds * live.failureThreshold * 1000 >= config.watchdogMs, `${variant.name}: liveness outlasts WATCHDOG_MS`);
      const annotations = variant.chat.spec.template.metadata.annotations;
      assert.equal(annotations['prometheus.io/scrape'], 'true');
      assert.equal(Number(annotations['prometheus.io/port']), config.healthPort);
      assert.equal(annotations['prometheus.io/path'], METRICS_PATH);
      assert.equal(variant.portNamed('chat'), config.port);
    }
  });

  it('configures every variable src/config.ts reads (secrets excepted), with values it accepts', () => {
    for (const variant of variants) {
      const data = variant.config;
      for (const name of Object.keys(data)) assert.ok(CONFIG_VARIABLES.includes(name), `${variant.name}: ${name} is not read by src/config.ts`);
      const missing = CONFIG_VARIABLES.filter((name) => !(name in data) && !SECRET_VARIABLES.includes(name));
      assert.deepEqual(missing, [], `${variant.name}: variables missing from chatline-config`);
      for (const name of SECRET_VARIABLES) assert.ok(!(name in data), `${variant.name}: ${name} is a secret`);
      if (data.REDIS_URL) assert.equal(new URL(data.REDIS_URL).password, '', `${variant.name}: no password in REDIS_URL`);
      const config = variant.loadConfig(scratch);
      assert.ok(config.redis, `${variant.name}: Redis mode`);
      assert.ok(config.redis.password, `${variant.name}: a Redis password`);
      const refs = variant.chatContainer.envFrom.map((e: any) => e.configMapRef?.name);
      assert.deepEqual(refs, [variant.generated('ConfigMap', 'chatline-config').metadata.name]);
    }
  });

  it('fails that check when a variable is missing (the check really checks)', () => {
    const data = { ...defaultVariant().config };
    delete data.KEEPALIVE_MS;
    assert.deepEqual(CONFIG_VARIABLES.filter((name) => !(name in data) && !SECRET_VARIABLES.includes(name)), ['KEEPALIVE_MS']);
  });

  it('gives the chat pods the Redis password as the file REDIS_PASSWORD_FILE names, from a generated Secret', () => {
    for (const variant of variants) {
      const path = variant.config.REDIS_PASSWORD_FILE!;
      const mounted = variant.secretFileAt(variant.chat, variant.chatContainer, path);
      assert.ok(mounted, `${variant.name}: REDIS_PASSWORD_FILE is mounted`);
      const secret = variant.generated('Secret', 'chatline-redis');
      assert.equal(mounted.secret, secret.metadata.name, `${variant.name}: the generated Secret, hash and all`);
      assert.equal(Buffer.from(secret.data[mounted.key], 'base64').toString().trim(), tree.password);
    }
  });

  it('gives the external-redis variant the Sentinels\' password: Bitnami\'s (the Redis one), or its own optional Secret', () => {
    const variant = variants.find((v) => v.name === 'external-redis')!;
    const config = variant.loadConfig(scratch);
    assert.equal(config.redis?.topology.kind, 'sentinel');
    assert.ok(config.redis?.sentinelPassword, 'a Sentinel password');
    // Bitnami's Sentinels (auth.sentinel, on by default) take the data nodes' password.
    const passwordAt = (variable: string) => variant.secretFileAt(variant.chat, variant.chatContainer, variant.config[variable]!);
    assert.deepEqual(passwordAt('REDIS_SENTINEL_PASSWORD_FILE'), passwordAt('REDIS_PASSWORD_FILE'));
    // Sentinels with a password of their own: the path redis.env gives, from a Secret the pod starts without.
    const own = variant.secretFileAt(variant.chat, variant.chatContainer, '/var/run/secrets/chatline/redis-sentinel/password');
    assert.deepEqual(own, { secret: 'chatline-redis-sentinel', key: 'password' });
    const volume = variant.chat.spec.template.spec.volumes.find((v: any) => v.secret?.secretName === 'chatline-redis-sentinel');
    assert.equal(volume.secret.optional, true);
  });

  it('points the default variant at its own Redis: password from the same Secret, no eviction, sized pub/sub buffers', () => {
    const variant = defaultVariant();
    const redisUrl = new URL(variant.config.REDIS_URL!);
    const redisService = variant.one('Service', redisUrl.hostname);
    assert.equal(redisService.spec.ports[0].port, Number(redisUrl.port));
    const redis = variant.one('Deployment', 'redis');
    const [container] = redis.spec.template.spec.containers;
    const script = [...container.command, ...container.args].join(' ');
    // The password file it reads is the chat pods' one, from the same Secret.
    const passwordFile = /read -r \w+ < (\S+);/.exec(script)?.[1];
    assert.ok(passwordFile, 'Redis reads its password from a file');
    assert.deepEqual(variant.secretFileAt(redis, container, passwordFile), variant.secretFileAt(variant.chat, variant.chatContainer, variant.config.REDIS_PASSWORD_FILE!));
    assert.match(script, /--requirepass "\$password"/);
    assert.match(script, /--maxmemory-policy noeviction/);
    assert.match(script, /--maxmemory \d+mb/);
    assert.match(script, /--protected-mode yes/);
    const limit = /--client-output-buffer-limit 'pubsub (\d+)mb (\d+)mb (\d+)'/.exec(script);
    assert.ok(limit, 'a pub/sub output-buffer limit');
    const [hard, soft, seconds] = limit.slice(1).map(Number) as [number, number, number];
    assert.ok(hard >= 64 && soft >= 16 && seconds >= 60, `pubsub ${hard}mb ${soft}mb ${seconds} is at least 64mb 16mb 60`);
    const maxmemoryMb = Number(/--maxmemory (\d+)mb/.exec(script)![1]);
    assert.ok(maxmemoryMb * 1024 * 1024 < parseQuantity(container.resources.limits.memory), 'maxmemory under the memory limit');
    assert.match(container.image, /^redis:\d+\.\d+\.\d+$/, 'Redis pinned to a patch release');
  });

  it('lets the chat pods reach DNS and Redis and nothing else; Redis takes only chat pods', () => {
    for (const variant of variants) {
      const chatLabels = variant.chat.spec.template.metadata.labels;
      const policies = variant.all('NetworkPolicy').filter((p) => matches(p.spec.podSelector.matchLabels, chatLabels));
      const egressPolicies = policies.filter((p) => p.spec.policyTypes.includes('Egress'));
      assert.ok(egressPolicies.length > 0, `${variant.name}: chat egress is limited`);
      const ports = new Set(egressPolicies.flatMap((p) => p.spec.egress.flatMap((rule: any) => rule.ports.map((port: any) => port.port))));
      const redisPorts = variant.hasRedis() ? [6379] : [6379, 6380, 26379];
      assert.deepEqual([...ports].sort(), [53, ...redisPorts].sort(), `${variant.name}: chat egress ports`);
      if (variant.hasRedis()) {
        const redisLabels = variant.one('Deployment', 'redis').spec.template.metadata.labels;
        const [redisPolicy, ...others] = variant.all('NetworkPolicy').filter((p) => matches(p.spec.podSelector.matchLabels, redisLabels));
        assert.equal(others.length, 0);
        assert.deepEqual(redisPolicy!.spec.policyTypes, ['Ingress', 'Egress']);
        assert.deepEqual(redisPolicy!.spec.egress, []);
        assert.equal(redisPolicy!.spec.ingress.length, 1);
        assert.ok(matches(redisPolicy!.spec.ingress[0].from[0].podSelector.matchLabels, chatLabels));
        assert.equal(redisPolicy!.spec.ingress[0].ports[0].port, 6379);
      }
    }
  });

  it('exposes the chat port (and TLS port, when on) through a TCP LoadBalancer that keeps client addresses', () => {
    for (const variant of variants) {
      const service = variant.one('Service', 'chatline');
      const config = variant.loadConfig(scratch);
      assert.equal(service.spec.type, 'LoadBalancer');
      assert.equal(service.spec.externalTrafficPolicy, 'Local');
      const byName = Object.fromEntries(service.spec.ports.map((p: any) => [p.name, p]));
      assert.equal(byName.chat.port, 8888);
      assert.equal(byName.chat.protocol, 'TCP');
      assert.equal(variant.portNamed(byName.chat.targetPort), config.port);
      if (config.tls) {
        assert.equal(variant.portNamed(byName['chat-tls'].targetPort), config.tls.port, `${variant.name}: TLS port`);
        for (const name of ['TLS_CERT_FILE', 'TLS_KEY_FILE']) {
          const mounted = variant.secretFileAt(variant.chat, variant.chatContainer, variant.config[name]!);
          assert.equal(mounted?.secret, 'chatline-tls', `${variant.name}: ${name} from the Secret chatline-tls`);
        }
        const tlsIngress = variant.all('NetworkPolicy').flatMap((p) => p.spec.ingress ?? []).flatMap((r: any) => r.ports ?? []);
        assert.ok(tlsIngress.some((p: any) => p.port === config.tls!.port), `${variant.name}: TLS port open in a NetworkPolicy`);
      } else {
        assert.equal(byName['chat-tls'], undefined);
      }
      if (config.proxyProtocol) {
        assert.equal(service.metadata.annotations?.['service.beta.kubernetes.io/aws-load-balancer-proxy-protocol'], '*');
      }
    }
    assert.ok(variants.some((v) => v.config.TLS_PORT && v.config.PROXY_PROTOCOL === 'true'), 'a variant with TLS and PROXY protocol on');
  });

  it('runs the image built from the Dockerfile, named so an `images:` entry can point it at a registry', () => {
    const compose = parse(readFileSync(new URL('docker-compose.yml', ROOT), 'utf8'));
    assert.equal(compose.services.chat.build, '.');
    assert.equal(defaultVariant().chatContainer.image, 'chatline:local');
    const base = parse(readFileSync(join(K8S_DIR, 'base/kustomization.yaml'), 'utf8'));
    assert.deepEqual(base.images, [{ name: 'chatline', newTag: 'local' }]);
    const source = parse(readFileSync(join(K8S_DIR, 'base/chat-deployment.yaml'), 'utf8'));
    assert.equal(source.spec.template.spec.containers[0].image, 'chatline');
  });

  it('drains before it is killed: preStop, then SHUTDOWN_GRACE_MS, inside the grace period; rolls with none unavailable', () => {
    for (const variant of variants) {
      const pod = variant.chat.spec.template.spec;
      const preStopSeconds = Number(variant.chatContainer.lifecycle.preStop.exec.command.at(-1));
      const config = variant.loadConfig(scratch);
      assert.ok(pod.terminationGracePeriodSeconds >= preStopSeconds + config.shutdownGraceMs / 1000 + 5,
        `${variant.name}: grace period leaves time to drain after preStop`);
      assert.equal(variant.chat.spec.strategy.rollingUpdate.maxUnavailable, 0);
      assert.ok(config.workers <= parseQuantity(variant.chatContainer.resources.limits.cpu), 'no more workers than CPUs in the limit');
    }
  });

  it('is what the README tells operators: the paths it names exist', () => {
    const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
    const section = readme.slice(readme.indexOf('### Kubernetes'), readme.indexOf('\n## ', readme.indexOf('### Kubernetes')));
    const paths = [...section.matchAll(/`(deploy\/k8s[^`\s]*)`/g)].map((m) => m[1]!.replace(/\/$/, ''));
    assert.ok(paths.length > 3, 'the README names the manifests');
    for (const path of paths) {
      assert.doesNotThrow(() => statSync(new URL(path, ROOT)), `README names ${path}`);
    }
  });
});

/** A Kubernetes quantity ("2", "500m", "1Gi", "512Mi") as a number (cores or bytes). */
function parseQuantity(quantity: string | number): number {
  const text = String(quantity);
  const units: Record<string, number> = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 };
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|K|M|G)?$/.exec(text);
  assert.ok(match, `quantity ${text}`);
  return Number(match[1]) * (match[2] ? units[match[2]]! : 1);
}
