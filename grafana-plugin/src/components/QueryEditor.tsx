import React, { useEffect, useMemo, useState } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, InlineFieldRow, RadioButtonGroup, Select } from '@grafana/ui';

import { DataSource } from '../datasource';
import { baselineFeatures, CausewayOptions, CausewayQuery, Option, QueryType, queryTypes } from '../types';

type Props = QueryEditorProps<DataSource, CausewayQuery, CausewayOptions>;

// Which query types each field applies to.
const usesIncident: QueryType[] = ['graph', 'suspects', 'baseline'];
const usesService: QueryType[] = ['graph', 'incidents', 'annotations'];
const usesState: QueryType[] = ['incidents', 'annotations'];

const latestOpen: SelectableValue<string> = { value: '', label: 'Latest open incident' };

const states: Array<SelectableValue<string>> = [
  { value: '', label: 'All' },
  { value: 'open', label: 'Open' },
  { value: 'resolved', label: 'Resolved' },
];

/** The choices the backend serves for the pickers; empty until loaded. */
interface Choices {
  incidents: Option[];
  services: Option[];
  edges: Option[];
}

/** Query editor: query type, incident picker, service filter, and for baselines the edge and feature. */
export function QueryEditor({ query, onChange, onRunQuery, datasource }: Props) {
  const queryType: QueryType = query.queryType ?? 'graph';
  const [choices, setChoices] = useState<Choices>({ incidents: [], services: [], edges: [] });
  const [loadError, setLoadError] = useState('');

  useEffect(() => {
    let live = true;
    Promise.all([datasource.options('incidents'), datasource.options('services'), datasource.options('edges')])
      .then(([incidents, services, edges]) => live && setChoices({ incidents, services, edges }))
      .catch((e: unknown) => live && setLoadError(errorText(e)));
    return () => {
      live = false;
    };
  }, [datasource]);

  const change = (patch: Partial<CausewayQuery>) => {
    onChange({ ...query, ...patch });
    onRunQuery();
  };

  const incidentOptions = useMemo(() => [latestOpen, ...choices.incidents], [choices.incidents]);

  return (
    <>
      <InlineFieldRow>
        <InlineField label="Query type" labelWidth={14}>
          <RadioButtonGroup<QueryType>
            options={queryTypes}
            value={queryType}
            onChange={(v) => change({ queryType: v })}
          />
        </InlineField>
      </InlineFieldRow>
      <InlineFieldRow>
        {usesIncident.includes(queryType) && (
          <InlineField label="Incident" labelWidth={14} tooltip="Empty: the latest open incident" error={loadError} invalid={loadError !== ''}>
            <Select
              inputId="causeway-incident"
              aria-label="Incident"
              width={48}
              options={incidentOptions}
              value={withCurrent(incidentOptions, query.incidentId ?? '')}
              allowCustomValue
              onChange={(v) => change({ incidentId: v?.value ?? '' })}
            />
          </InlineField>
        )}
        {usesService.includes(queryType) && (
          <InlineField label="Service" labelWidth={14} tooltip="Only this service (and, in the graph, its neighbours)">
            <Select
              inputId="causeway-service"
              aria-label="Service"
              width={32}
              isClearable
              allowCustomValue
              placeholder="all services"
              options={choices.services}
              value={query.service ? withCurrent(choices.services, query.service) : null}
              onChange={(v) => change({ service: v?.value ?? '' })}
            />
          </InlineField>
        )}
        {usesState.includes(queryType) && (
          <InlineField label="State" labelWidth={10}>
            <RadioButtonGroup options={states} value={query.state ?? ''} onChange={(v) => change({ state: v as CausewayQuery['state'] })} />
          </InlineField>
        )}
      </InlineFieldRow>
      {queryType === 'baseline' && (
        <InlineFieldRow>
          <InlineField label="Edge" labelWidth={14} tooltip="SOURCE->TARGET; empty: the edges into the incident's suspects">
            <Select
              inputId="causeway-edge"
              aria-label="Edge"
              width={48}
              isClearable
              allowCustomValue
              placeholder="edges into the suspects"
              options={choices.edges}
              value={query.edge ? withCurrent(choices.edges, query.edge) : null}
              onChange={(v) => change({ edge: v?.value ?? '' })}
            />
          </InlineField>
          <InlineField label="Feature" labelWidth={10}>
            <Select
              inputId="causeway-feature"
              aria-label="Feature"
              width={24}
              options={baselineFeatures.map((f) => ({ value: f, label: f }))}
              value={query.feature || 'p50'}
              onChange={(v) => change({ feature: v?.value ?? 'p50' })}
            />
          </InlineField>
        </InlineFieldRow>
      )}
    </>
  );
}

/** The option for value, or a custom one when the list does not hold it (yet). */
function withCurrent(options: Array<SelectableValue<string>>, value: string): SelectableValue<string> {
  return options.find((o) => o.value === value) ?? { value, label: value };
}

function errorText(e: unknown): string {
  if (e && typeof e === 'object') {
    const data = (e as { data?: { error?: string }; message?: string }).data;
    if (data?.error) {
      return 'cannot load choices: ' + data.error;
    }
    if ((e as { message?: string }).message) {
      return 'cannot load choices: ' + (e as { message: string }).message;
    }
  }
  return 'cannot load choices';
}
