import { CoreApp, DataSourceInstanceSettings, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

import { CausewayOptions, CausewayQuery, defaultQuery, Option } from './types';

/** The Causeway data source: queries run in the Go backend, which reads the detector's API. */
export class DataSource extends DataSourceWithBackend<CausewayQuery, CausewayOptions> {
  constructor(settings: DataSourceInstanceSettings<CausewayOptions>) {
    super(settings);
    // Incidents as annotations: the annotation editor reuses the query editor.
    this.annotations = {};
  }

  getDefaultQuery(_: CoreApp): Partial<CausewayQuery> {
    return defaultQuery;
  }

  applyTemplateVariables(query: CausewayQuery, scopedVars: ScopedVars): CausewayQuery {
    const t = getTemplateSrv();
    return {
      ...query,
      incidentId: t.replace(query.incidentId ?? '', scopedVars),
      service: t.replace(query.service ?? '', scopedVars),
      edge: t.replace(query.edge ?? '', scopedVars),
    };
  }

  /** Choices for the query editor's pickers, served by the backend's CallResource. */
  async options(what: 'incidents' | 'services' | 'edges'): Promise<Option[]> {
    const list = await this.getResource<Option[]>(what);
    return Array.isArray(list) ? list : [];
  }
}
