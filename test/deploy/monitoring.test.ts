import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parser } from '@prometheus-io/lezer-promql';
import { parse } from 'yaml';
import { registry } from '../../src/metrics.js';

// The alert rules and the Grafana dashboard, read as PromQL by the Prometheus project's own
// grammar: every expression parses, and names only metrics src/metrics.ts defines. (promtool
// checks and unit-tests the rules too: tools.test.ts.)

const ROOT = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8');

/** Series names Prometheus itself makes, which the rules may use beside chatline's own. */
const PROMETHEUS_SERIES = ['up'];

/** Every series name src/metrics.ts exports, a histogram's _bucket, _sum and _count included. */
async function exportedSeries(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const metric of await registry.getMetricsAsJSON()) {
    const type = String(metric.type);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    else names.add(metric.name);
  }
  assert.ok(names.size > 20, 'src/metrics.ts registers its metrics');
  return names;
}

/** Grafana's variables, replaced by something PromQL accepts, before parsing. */
function withoutGrafanaVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?(\w+)\}?/g, 'x');
}

/** The metric names an expression selects, or the reason it does not parse. */
function metricNames(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(node.from);
      if (node.name === 'VectorSelector') {
        const identifier = node.node.getChild('Identifier');
        if (identifier) names.push(expr.slice(identifier.from, identifier.to));
        else assert.fail(`a selector without a metric name in ${expr}`);
      }
    },
  });
  assert.deepEqual(errors, [], `PromQL does not parse at ${errors.map((at) => JSON.stringify(expr.slice(at, at + 20))).join(', ')}: ${expr}`);
  return names;
}

type Rule = { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> };

describe('alert rules (deploy/prometheus/alerts.yml)', () => {
  const rules: Rule[] = parse(read('deploy/prometheus/alerts.yml')).groups.flatMap((g: { rules: Rule[] }) => g.rules);
  const operations = read('docs/operations.md');

  it('use only metrics src/metrics.ts defines', async () => {
    const known = await exportedSeries();
    for (const rule of rules) {
      const names = metricNames(rule.expr);
      assert.ok(names.length > 0, `${rule.alert} selects something`);
      for (const name of names) {
        assert.ok(known.has(name) || PROMETHEUS_SERIES.includes(name), `${rule.alert}: ${name} is not a metric chatline exports`);
      }
    }
  });

  it('fail that check on a misspelt metric (the check really checks)', async () => {
    const known = await exportedSeries();
    const names = metricNames('sum(rate(chatline_login_total[5m]))');
    assert.deepEqual(names, ['chatline_login_total']);
    assert.ok(!known.has(names[0]!));
    assert.throws(() => metricNames('sum(rate(chatline_logins_total[5m])'), /does not parse/);
  });

  it('cover what the service needs watched', () => {
    const alerts = rules.map((r) => r.alert);
    for (const needed of [
      'ChatlineBackplaneDown', 'ChatlineDeliveriesDropped', 'ChatlineWorkerRestarts', 'ChatlineSubscriberResubscribes',
      'ChatlineCommandLatencyHigh', 'ChatlineReadinessFlapping', 'ChatlineInstanceNotReady', 'ChatlineWatchdogKills',
      'ChatlineInternalErrors', 'ChatlineLateEffects',
    ]) assert.ok(alerts.includes(needed), needed);
    assert.equal(new Set(alerts).size, alerts.length, 'alert names are unique');
  });

  it('each say what happened, how bad, and where the runbook is (a heading in docs/operations.md)', () => {
    const anchors = new Set([...operations.matchAll(/^#{2,4} (.+)$/gm)].map((m) => githubAnchor(m[1]!)));
    for (const rule of rules) {
      assert.ok(rule.alert, 'alerting rules only');
      assert.ok(['critical', 'warning'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity`);
      assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.alert}: summary and description`);
      const runbook = rule.annotations.runbook_url ?? '';
      assert.match(runbook, /^docs\/operations\.md#/, `${rule.alert}: runbook_url`);
      assert.equal(runbook.split('#')[1], githubAnchor(rule.alert), `${rule.alert}: its runbook anchor is its name`);
      assert.ok(anchors.has(runbook.split('#')[1]!), `${rule.alert}: docs/operations.md has a heading for it`);
    }
  });
});

describe('Grafana dashboard (deploy/grafana/chatline.json)', () => {
  const dashboard = JSON.parse(read('deploy/grafana/chatline.json'));
  const panels: any[] = dashboard.panels;
  const queryPanels = panels.filter((p) => p.type !== 'row');

  it('parses, with unique panel ids, each placed on the grid, and a data source variable', () => {
    assert.equal(dashboard.uid, 'chatline');
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const panel of panels) {
      const { h, w, x, y } = panel.gridPos;
      assert.ok([h, w, x, y].every(Number.isInteger) && x + w <= 24, `${panel.title}: gridPos`);
    }
    assert.ok(dashboard.templating.list.some((v: { type: string; query: string }) => v.type === 'datasource' && v.query === 'prometheus'));
    for (const panel of queryPanels) assert.equal(panel.datasource.uid, '${datasource}', `${panel.title}: uses the data source variable`);
  });

  it('queries only metrics src/metrics.ts defines, in PromQL that parses', async () => {
    const known = await exportedSeries();
    const used = new Set<string>();
    for (const panel of queryPanels) {
      assert.ok(panel.targets.length > 0, `${panel.title} has a query`);
      for (const target of panel.targets) {
        for (const name of metricNames(withoutGrafanaVariables(target.expr))) {
          assert.ok(known.has(name), `${panel.title}: ${name} is not a metric chatline exports`);
          used.add(name);
        }
      }
    }
    for (const variable of dashboard.templating.list.filter((v: { type: string }) => v.type === 'query')) {
      const match = /label_values\((\w+)/.exec(variable.definition);
      assert.ok(match && known.has(match[1]!), `variable ${variable.name} reads a chatline metric`);
    }
    // What an operator looks for first.
    for (const name of [
      'chatline_connections_open', 'chatline_logins_total', 'chatline_commands_total', 'chatline_command_duration_seconds_bucket',
      'chatline_deliveries_written_total', 'chatline_deliveries_dropped_total', 'chatline_redis_roundtrip_seconds_bucket',
      'chatline_backplane_up', 'chatline_pubsub_probe_lag_seconds', 'chatline_subscriber_resubscribes_total',
      'chatline_worker_restarts_total', 'chatline_pending_output_bytes',
    ]) assert.ok(used.has(name), `the dashboard shows ${name}`);
  });
});

/** The anchor GitHub gives a Markdown heading. */
function githubAnchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}
