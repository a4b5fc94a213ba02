import React, { ChangeEvent } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { InlineField, Input, SecretInput, Stack } from '@grafana/ui';

import { CausewayOptions, CausewaySecureOptions } from '../types';

type Props = DataSourcePluginOptionsEditorProps<CausewayOptions, CausewaySecureOptions>;

/** Settings of a Causeway data source: the detector's URL, a request timeout and the API token. */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields, secureJsonData } = options;

  const onURL = (e: ChangeEvent<HTMLInputElement>) => onOptionsChange({ ...options, url: e.target.value });
  const onTimeout = (e: ChangeEvent<HTMLInputElement>) => {
    const v = parseFloat(e.target.value);
    onOptionsChange({ ...options, jsonData: { ...jsonData, timeoutSeconds: Number.isFinite(v) && v > 0 ? v : undefined } });
  };
  const onToken = (e: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, apiToken: e.target.value } });
  const onResetToken = () =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureJsonFields, apiToken: false },
      secureJsonData: { ...secureJsonData, apiToken: '' },
    });

  return (
    <Stack direction="column" gap={1}>
      <InlineField label="Detector URL" labelWidth={18} tooltip="Base URL of the Causeway detector's API, as the Grafana server reaches it">
        <Input
          id="causeway-url"
          aria-label="Detector URL"
          width={40}
          value={options.url ?? ''}
          placeholder="http://causeway:8080"
          onChange={onURL}
        />
      </InlineField>
      <InlineField label="Timeout (s)" labelWidth={18} tooltip="Bound on each request to the detector; 10 s when empty">
        <Input
          id="causeway-timeout"
          aria-label="Timeout in seconds"
          type="number"
          width={12}
          value={jsonData.timeoutSeconds ?? ''}
          placeholder="10"
          onChange={onTimeout}
        />
      </InlineField>
      <InlineField label="API token" labelWidth={18} tooltip="Sent to the detector as a Bearer token; stored encrypted, never sent back to the browser">
        <SecretInput
          id="causeway-token"
          aria-label="API token"
          width={40}
          isConfigured={Boolean(secureJsonFields?.apiToken)}
          value={secureJsonData?.apiToken ?? ''}
          placeholder="optional"
          onChange={onToken}
          onReset={onResetToken}
        />
      </InlineField>
    </Stack>
  );
}
