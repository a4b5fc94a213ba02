import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/** What a query asks the detector for; the backend's query types. */
export type QueryType = 'incidents' | 'suspects' | 'graph' | 'baseline' | 'annotations';

export const queryTypes: Array<{ value: QueryType; label: string; description: string }> = [
  { value: 'graph', label: 'Service graph', description: 'Node Graph of the services, the culprit highlighted' },
  { value: 'suspects', label: 'Suspects', description: "An incident's ranked suspects with their evidence" },
  { value: 'incidents', label: 'Incidents', description: 'Incidents in the time range, newest first' },
  { value: 'baseline', label: 'Baseline', description: "An edge's latency against its learned band" },
  { value: 'annotations', label: 'Annotations', description: 'Incidents as annotations' },
];

/** The features a baseline query can draw, as the detector names them. */
export const baselineFeatures = ['p50', 'p90', 'p99', 'error ratio', 'rate', 'client-server gap'];

/** One query; which fields count depends on queryType. */
export interface CausewayQuery extends DataQuery {
  queryType?: QueryType;
  /** An incident id; empty means the latest open incident. */
  incidentId?: string;
  /** Narrows incidents, annotations and the graph to one service. */
  service?: string;
  /** Narrows incidents and annotations: open or resolved. */
  state?: '' | 'open' | 'resolved';
  /** SOURCE->TARGET for a baseline; empty means the edges into the suspects. */
  edge?: string;
  operation?: string;
  feature?: string;
}

export const defaultQuery: Partial<CausewayQuery> = { queryType: 'graph' };

/** The data source's non-secret settings (the detector URL is the data source URL). */
export interface CausewayOptions extends DataSourceJsonData {
  timeoutSeconds?: number;
}

/** Secret settings, only ever sent to the backend. */
export interface CausewaySecureOptions {
  apiToken?: string;
}

/** One choice served by the backend's resources (incidents, services, edges). */
export interface Option {
  value: string;
  label: string;
  description?: string;
}
