// Reads an instance's /metrics the way Prometheus does, for tests that assert exact counts.

export type Samples = Map<string, number>;

/** Every sample of a Prometheus text exposition: "name{label="value",…}" → value. */
export function parseMetrics(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(normalise(line.slice(0, space)), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Labels sorted, so a lookup does not depend on the order the exporter wrote them in. */
function normalise(series: string): string {
  const brace = series.indexOf('{');
  if (brace === -1) return series;
  const labels = series.slice(brace + 1, -1).match(/[a-zA-Z_]+="(?:[^"\\]|\\.)*"/g) ?? [];
  return `${series.slice(0, brace)}{${labels.sort().join(',')}}`;
}

export async function scrape(healthPort: number): Promise<Samples> {
  const response = await fetch(`http://127.0.0.1:${healthPort}/metrics`);
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}

/** One sample's value; 0 when absent (a counter never incremented has no sample). */
export function sample(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const entries = Object.entries(labels).map(([key, value]) => `${key}="${value}"`).sort();
  return samples.get(entries.length === 0 ? name : `${name}{${entries.join(',')}}`) ?? 0;
}
