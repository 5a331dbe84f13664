import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as models from 'kubernetes-models';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';
import { HEALTH_PATHS } from '../../src/health.js';

// No cluster runs here, so the manifests are checked offline: each against the Kubernetes
// schema (kubernetes-models), then against each other and against the code they deploy.

const K8S = fileURLToPath(new URL('../../deploy/k8s/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: any };

const kustomization = parse(readFileSync(`${K8S}kustomization.yaml`, 'utf8'));
const manifests: Manifest[] = (kustomization.resources as string[]).flatMap((file) =>
  parseAllDocuments(readFileSync(`${K8S}${file}`, 'utf8')).map((doc) => doc.toJS() as Manifest));

const one = (kind: string, name: string): Manifest => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  assert.ok(found, `no ${kind} ${name}`);
  return found;
};
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/** kubernetes-models' class for an apiVersion and kind ("apps/v1" → models.apps.v1). */
function modelFor(apiVersion: string, kind: string): new (data: object) => { validate(): void } {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const groupName = group === '' ? '' : group!.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase()).replace(/\./g, '');
  const namespace = (groupName === '' ? (models as any)[version!] : (models as any)[groupName]?.[version!]);
  const model = namespace?.[kind];
  assert.ok(model, `no schema for ${apiVersion} ${kind}`);
  return model;
}

describe('Kubernetes manifests (deploy/k8s)', () => {
  const chat = one('Deployment', 'chatline');
  const pod = chat.spec.template;
  const container = pod.spec.containers[0];
  const portNamed = (name: string) => container.ports.find((p: { name: string }) => p.name === name)?.containerPort;

  it('lists every manifest file in kustomization.yaml', () => {
    const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
    assert.deepEqual([...kustomization.resources].sort(), files);
  });

  it('passes the Kubernetes schema, every resource', () => {
    for (const manifest of manifests) {
      const Model = modelFor(manifest.apiVersion, manifest.kind);
      assert.doesNotThrow(() => new Model(manifest).validate(), `${manifest.kind} ${manifest.metadata.name}`);
    }
  });

  it('rejects a broken manifest (the validator really validates)', () => {
    const Model = modelFor('apps/v1', 'Deployment');
    const broken = structuredClone(chat);
    broken.spec.replicas = 'three';
    assert.throws(() => new Model(broken).validate());
  });

  it('selects with labels that exist: Deployments, Services, PDB, HPA, NetworkPolicy', () => {
    for (const deployment of manifests.filter((m) => m.kind === 'Deployment')) {
      assert.ok(matches(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels), deployment.metadata.name);
    }
    for (const service of manifests.filter((m) => m.kind === 'Service')) {
      const target = manifests.find((m) => m.kind === 'Deployment' && matches(service.spec.selector, m.spec.template.metadata.labels));
      assert.ok(target, `Service ${service.metadata.name} selects no pods`);
    }
    assert.ok(matches(one('PodDisruptionBudget', 'chatline').spec.selector.matchLabels, pod.metadata.labels));
    const hpa = one('HorizontalPodAutoscaler', 'chatline');
    assert.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
    assert.equal(hpa.spec.scaleTargetRef.name, chat.metadata.name);
    assert.ok(hpa.spec.minReplicas >= 2);
    const policy = one('NetworkPolicy', 'redis-from-chat-only');
    assert.ok(matches(policy.spec.podSelector.matchLabels, one('Deployment', 'redis').spec.template.metadata.labels));
    assert.ok(matches(policy.spec.ingress[0].from[0].podSelector.matchLabels, pod.metadata.labels));
    assert.equal(policy.spec.ingress[0].ports[0].port, 6379);
  });

  it('probes the real health port and paths', () => {
    const config = loadConfig(one('ConfigMap', 'chatline-config').data);
    assert.equal(portNamed(container.readinessProbe.httpGet.port), config.healthPort);
    assert.equal(portNamed(container.livenessProbe.httpGet.port), config.healthPort);
    assert.equal(container.readinessProbe.httpGet.path, HEALTH_PATHS.ready);
    assert.equal(container.livenessProbe.httpGet.path, HEALTH_PATHS.alive);
    assert.equal(portNamed('chat'), config.port);
  });

  it('exposes the chat port through a TCP LoadBalancer on 8888', () => {
    const service = one('Service', 'chatline');
    assert.equal(service.spec.type, 'LoadBalancer');
    const [port] = service.spec.ports;
    assert.equal(port.port, 8888);
    assert.equal(port.protocol, 'TCP');
    assert.equal(portNamed(port.targetPort), 8888);
  });

  it('configures only variables the server reads, with values it accepts, pointing at the Redis Service', () => {
    const data = one('ConfigMap', 'chatline-config').data as Record<string, string>;
    for (const name of Object.keys(data)) assert.ok(CONFIG_VARIABLES.includes(name), `${name} is not read by src/config.ts`);
    const config = loadConfig(data);
    assert.equal(config.redis?.topology.kind, 'single');
    const redisUrl = new URL(config.redis.topology.url);
    const redisService = one('Service', redisUrl.hostname);
    assert.equal(redisService.spec.ports[0].port, Number(redisUrl.port));
    assert.equal(container.envFrom[0].configMapRef.name, 'chatline-config');
  });

  it('runs the image docker compose builds from the Dockerfile', () => {
    const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8'));
    assert.equal(compose.services.chat.build, '.');
    assert.equal(container.image, compose.services.chat.image);
  });

  it('runs non-root on a read-only root filesystem, with requests, limits and a draining stop', () => {
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    for (const kind of ['requests', 'limits']) {
      assert.ok(container.resources[kind].cpu && container.resources[kind].memory, kind);
    }
    const preStopSeconds = Number(container.lifecycle.preStop.exec.command.at(-1));
    assert.ok(pod.spec.terminationGracePeriodSeconds > preStopSeconds + 10, 'grace period leaves time to drain after preStop');
    assert.equal(chat.spec.replicas, 3);
    assert.equal(chat.spec.strategy.rollingUpdate.maxUnavailable, 0);
  });
});
