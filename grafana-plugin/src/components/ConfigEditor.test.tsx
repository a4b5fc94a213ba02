import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import { DataSourceSettings } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import { CausewayOptions, CausewaySecureOptions } from '../types';

function settings(over: Partial<DataSourceSettings<CausewayOptions, CausewaySecureOptions>> = {}) {
  return {
    id: 1,
    uid: 'causeway',
    orgId: 1,
    name: 'Causeway',
    type: 'causeway-rootcause-datasource',
    typeName: 'Causeway',
    typeLogoUrl: '',
    access: 'proxy',
    url: 'http://causeway:8080',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    jsonData: {},
    secureJsonFields: {},
    secureJsonData: {},
    ...over,
  } as DataSourceSettings<CausewayOptions, CausewaySecureOptions>;
}

describe('ConfigEditor', () => {
  it('shows the URL and edits it at the data source level', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    const url = screen.getByLabelText('Detector URL') as HTMLInputElement;
    expect(url.value).toBe('http://causeway:8080');
    fireEvent.change(url, { target: { value: 'http://10.0.0.7:8080' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(expect.objectContaining({ url: 'http://10.0.0.7:8080' }));
  });

  it('keeps the token in secureJsonData, never in jsonData', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    fireEvent.change(screen.getByLabelText('API token'), { target: { value: 'tok-123' } });
    const next = onOptionsChange.mock.calls.at(-1)[0];
    expect(next.secureJsonData).toEqual({ apiToken: 'tok-123' });
    expect(JSON.stringify(next.jsonData)).not.toContain('tok-123');
  });

  it('shows a configured token as set and resets it', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings({ secureJsonFields: { apiToken: true } })} onOptionsChange={onOptionsChange} />);
    expect((screen.getByLabelText('API token') as HTMLInputElement).value).toBe('configured');
    fireEvent.click(screen.getByRole('button', { name: /reset/i }));
    const next = onOptionsChange.mock.calls.at(-1)[0];
    expect(next.secureJsonFields.apiToken).toBe(false);
    expect(next.secureJsonData.apiToken).toBe('');
  });

  it('stores a positive timeout and clears a bad one', () => {
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    const timeout = screen.getByLabelText('Timeout in seconds');
    fireEvent.change(timeout, { target: { value: '2.5' } });
    expect(onOptionsChange.mock.calls.at(-1)[0].jsonData.timeoutSeconds).toBe(2.5);
    fireEvent.change(timeout, { target: { value: '-1' } });
    expect(onOptionsChange.mock.calls.at(-1)[0].jsonData.timeoutSeconds).toBeUndefined();
  });
});
