// The screenshot page: loads the production build (dist/module.js) through
// a small AMD define, renders the plugin's own config and query editors,
// and draws the backend's real frames (the Go golden responses) in
// @grafana/ui components. scripts/screenshot.mjs bundles it, opens it in
// headless Chromium and checks what it shows.
import React from 'react';
import * as ReactAll from 'react';
import { createRoot } from 'react-dom/client';
import * as grafanaData from '@grafana/data';
import { createTheme, DataFrame, dataFrameFromJSON, DataFrameJSON, DataSourcePlugin, Field } from '@grafana/data';
import * as grafanaRuntime from '@grafana/runtime';
import { setBackendSrv } from '@grafana/runtime';
import * as grafanaUI from '@grafana/ui';
import { Badge, Card, InteractiveTable, Stack, ThemeContext } from '@grafana/ui';

type Frames = Record<string, DataFrame[]>;
const theme = createTheme({ colors: { mode: 'light' } });
const errors: string[] = [];
window.addEventListener('error', (e) => errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => errors.push(String(e.reason)));

/** Loads dist/module.js the way Grafana's loader does: an AMD define with Grafana's shared modules. */
function loadPlugin(): Promise<DataSourcePlugin<any, any, any>> {
  const shared: Record<string, unknown> = {
    react: ReactAll,
    '@grafana/data': grafanaData,
    '@grafana/ui': grafanaUI,
    '@grafana/runtime': grafanaRuntime,
  };
  return new Promise((resolve, reject) => {
    (window as any).define = (deps: string[], factory: (...m: unknown[]) => { plugin: DataSourcePlugin<any, any, any> }) => {
      const missing = deps.filter((d) => !(d in shared));
      if (missing.length) {
        reject(new Error('module.js needs modules Grafana does not share: ' + missing.join(', ')));
        return;
      }
      resolve(factory(...deps.map((d) => shared[d])).plugin);
    };
    const s = document.createElement('script');
    s.src = '/dist/module.js';
    s.onerror = () => reject(new Error('cannot load /dist/module.js'));
    document.head.appendChild(s);
  });
}

async function loadFrames(names: string[]): Promise<Frames> {
  const out: Frames = {};
  for (const n of names) {
    const res = await fetch('/golden/' + n + '.json');
    const body = (await res.json()) as { frames?: DataFrameJSON[] };
    out[n] = (body.frames ?? []).map((f) => dataFrameFromJSON(f));
  }
  return out;
}

function field(f: DataFrame, name: string): Field | undefined {
  return f.fields.find((x) => x.name === name);
}

function rows(f: DataFrame): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  for (let i = 0; i < f.length; i++) {
    const r: Record<string, string> = { _row: String(i) };
    for (const fl of f.fields) {
      const v = fl.values[i];
      r[fl.name] = v === null || v === undefined ? '' : fl.type === 'time' ? new Date(v).toISOString().slice(0, 19) + 'Z' : String(v);
    }
    out.push(r);
  }
  return out;
}

function Table({ frame, columns }: { frame: DataFrame; columns: string[] }) {
  return (
    <InteractiveTable
      columns={columns.map((c) => ({ id: c, header: c }))}
      data={rows(frame)}
      getRowId={(r: Record<string, string>) => r._row}
    />
  );
}

/** The Node Graph frames drawn as an SVG: nodes on a circle in their colour, the culprit ringed. */
function Graph({ nodes, edges }: { nodes: DataFrame; edges: DataFrame }) {
  const ids = field(nodes, 'id')!.values as string[];
  const colors = field(nodes, 'color')!.values as string[];
  const culprit = field(nodes, 'arc__culprit')!.values as number[];
  const w = 760, h = 420, cx = w / 2, cy = h / 2, r = 170;
  const pos: Record<string, [number, number]> = {};
  ids.forEach((id, i) => {
    const a = (2 * Math.PI * i) / ids.length - Math.PI / 2;
    pos[id] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  });
  const src = field(edges, 'source')!.values as string[];
  const dst = field(edges, 'target')!.values as string[];
  const ecol = field(edges, 'color')!.values as string[];
  return (
    <svg width={w} height={h} data-testid="graph">
      {src.map((s, i) => (
        <line key={i} x1={pos[s][0]} y1={pos[s][1]} x2={pos[dst[i]][0]} y2={pos[dst[i]][1]} stroke={ecol[i]} strokeWidth={ecol[i] === '#73BF69' ? 1 : 3} />
      ))}
      {ids.map((id, i) => (
        <g key={id}>
          <circle cx={pos[id][0]} cy={pos[id][1]} r={culprit[i] === 1 ? 16 : 10} fill={colors[i]} stroke={culprit[i] === 1 ? '#000' : 'none'} strokeWidth={3} />
          <text x={pos[id][0]} y={pos[id][1] - 20} textAnchor="middle" fontSize={12}>
            {culprit[i] === 1 ? id + ' (culprit)' : id}
          </text>
        </g>
      ))}
    </svg>
  );
}

/** A baseline frame as an SVG: the band of the nearest regime and the value. */
function Baseline({ frame }: { frame: DataFrame }) {
  const t = field(frame, 'time')!.values as number[];
  const v = frame.fields[1].values as Array<number | null>;
  const lo = field(frame, 'band_low')!.values as Array<number | null>;
  const hi = field(frame, 'band_high')!.values as Array<number | null>;
  const w = 760, h = 200;
  const ymax = Math.max(...[...v, ...hi].filter((x): x is number => x !== null)) * 1.1;
  const x = (i: number) => ((t[i] - t[0]) / Math.max(1, t[t.length - 1] - t[0])) * (w - 20) + 10;
  const y = (val: number) => h - 10 - (Math.max(0, val) / ymax) * (h - 20);
  const band = [...t.map((_, i) => `${x(i)},${y(hi[i] ?? 0)}`), ...t.map((_, i) => `${x(t.length - 1 - i)},${y(lo[t.length - 1 - i] ?? 0)}`)].join(' ');
  const line = t.map((_, i) => `${x(i)},${y(v[i] ?? 0)}`).join(' ');
  return (
    <svg width={w} height={h} data-testid="baseline">
      <polygon points={band} fill="#73BF6955" />
      <polyline points={line} fill="none" stroke="#F2495C" strokeWidth={2} />
    </svg>
  );
}

async function main() {
  const frames = await loadFrames(['suspects-latest', 'graph', 'incidents', 'baseline-edge']);
  const incidents = frames.incidents[0];
  const nodes = frames.graph[0];
  const edges = frames.graph[1];
  // The backend's resources, as the plugin's CallResource would answer them for these frames.
  const resources: Record<string, unknown> = {
    incidents: rows(incidents).map((r) => ({ value: r.id, label: `${r.id} · ${r['top suspect']} (${r.state})` })),
    services: (field(nodes, 'id')!.values as string[]).map((id) => ({ value: id, label: id })),
    edges: (field(edges, 'id')!.values as string[]).map((id) => ({ value: id, label: id })),
  };
  setBackendSrv({
    fetch: (req: { url: string }) => ({
      subscribe(o: { next: (v: unknown) => void; complete: () => void }) {
        const what = req.url.split('/resources/')[1];
        o.next({ data: resources[what] ?? [], status: 200, ok: true });
        o.complete();
        return { unsubscribe() {} };
      },
    }),
  } as any);

  const plugin = await loadPlugin();
  const DS = plugin.DataSourceClass as any;
  const ds = new DS({ id: 1, uid: 'causeway', type: 'causeway-rootcause-datasource', name: 'Causeway', jsonData: {}, meta: plugin.meta ?? {}, access: 'proxy', readOnly: false });
  const QueryEditor = plugin.components.QueryEditor as React.ComponentType<any>;
  const ConfigEditor = plugin.components.ConfigEditor as React.ComponentType<any>;
  const settings = { id: 1, uid: 'causeway', name: 'Causeway', type: 'causeway-rootcause-datasource', url: 'http://causeway:8080', access: 'proxy', jsonData: { timeoutSeconds: 10 }, secureJsonFields: { apiToken: true }, secureJsonData: {} };
  const suspects = frames['suspects-latest'][0];
  const incidentId = (suspects.meta?.custom as { incident?: string } | undefined)?.incident ?? '';

  const root = createRoot(document.getElementById('root')!);
  root.render(
    <ThemeContext.Provider value={theme}>
      <div style={{ padding: 16, background: theme.colors.background.primary, color: theme.colors.text.primary, width: 1200 }}>
        <Stack direction="column" gap={2}>
          <Card>
            <Card.Heading>Causeway data source settings (ConfigEditor from dist/module.js)</Card.Heading>
            <Card.Description>
              <ConfigEditor options={settings} onOptionsChange={() => {}} />
            </Card.Description>
          </Card>
          <Card>
            <Card.Heading>Query (QueryEditor from dist/module.js)</Card.Heading>
            <Card.Description>
              <QueryEditor datasource={ds} query={{ refId: 'A', queryType: 'suspects', incidentId }} onChange={() => {}} onRunQuery={() => {}} />
            </Card.Description>
          </Card>
          <section id="suspects">
            <h3>
              Suspects of {incidentId} <Badge text={incidents.length + ' incidents'} color="orange" />
            </h3>
            <Table frame={suspects} columns={['rank', 'service', 'kind', 'score', 'evidence']} />
          </section>
          <section id="graph">
            <h3>Service graph (nodes / edges frames)</h3>
            <Graph nodes={nodes} edges={edges} />
          </section>
          <section id="incidents">
            <h3>Incidents</h3>
            <Table frame={incidents} columns={['id', 'state', 'opened', 'top suspect', 'score']} />
          </section>
          <section id="baseline">
            <h3>{frames['baseline-edge'][0].name} against its band</h3>
            <Baseline frame={frames['baseline-edge'][0]} />
          </section>
        </Stack>
      </div>
    </ThemeContext.Provider>
  );
  // Ready once the query editor shows the incident it loaded through the resource call.
  const deadline = Date.now() + 20000;
  const poll = () => {
    if (document.body.innerText.includes(incidentId + ' · ') || Date.now() > deadline) {
      document.body.dataset.errors = JSON.stringify(errors);
      document.body.dataset.ready = '1';
    } else {
      setTimeout(poll, 100);
    }
  };
  poll();
}

main().catch((e) => {
  errors.push(String(e && e.stack ? e.stack : e));
  document.body.dataset.errors = JSON.stringify(errors);
  document.body.dataset.ready = '1';
});
