import React from 'react';
import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';

import { QueryEditor } from './QueryEditor';
import { DataSource } from '../datasource';
import { CausewayQuery, Option } from '../types';

const served: Record<string, Option[]> = {
  incidents: [
    { value: 'inc-20261125T084930Z-74b6', label: 'inc-20261125T084930Z-74b6 · paymentservice (open)' },
    { value: 'inc-20261124T101500Z-0001', label: 'inc-20261124T101500Z-0001 · catalog-db (resolved)' },
  ],
  services: [
    { value: 'checkoutservice', label: 'checkoutservice' },
    { value: 'paymentservice', label: 'paymentservice' },
  ],
  edges: [{ value: 'checkoutservice->paymentservice', label: 'checkoutservice->paymentservice' }],
};

function fakeDatasource(fail = false) {
  const options = jest.fn((what: string) => (fail ? Promise.reject({ data: { error: 'detector down' } }) : Promise.resolve(served[what])));
  return { ds: { options } as unknown as DataSource, options };
}

async function renderEditor(query: Partial<CausewayQuery>, fail = false) {
  const { ds, options } = fakeDatasource(fail);
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  render(<QueryEditor datasource={ds} query={{ refId: 'A', ...query }} onChange={onChange} onRunQuery={onRunQuery} />);
  await waitFor(() => expect(options).toHaveBeenCalledTimes(3));
  await act(async () => {}); // let the loaded choices render
  return { onChange, onRunQuery, options };
}

async function pick(label: string, option: string) {
  const input = screen.getByLabelText(label);
  fireEvent.keyDown(input, { key: 'ArrowDown' });
  fireEvent.click(await screen.findByText(option));
}

describe('QueryEditor', () => {
  it('switches the query type and runs the query', async () => {
    const { onChange, onRunQuery } = await renderEditor({ queryType: 'graph' });
    fireEvent.click(screen.getByLabelText('Suspects'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ refId: 'A', queryType: 'suspects' }));
    expect(onRunQuery).toHaveBeenCalled();
  });

  it('loads incidents from the backend into the incident picker', async () => {
    const { onChange, options } = await renderEditor({ queryType: 'suspects' });
    expect(options).toHaveBeenCalledWith('incidents');
    await pick('Incident', served.incidents[0].label);
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ incidentId: 'inc-20261125T084930Z-74b6' }));
  });

  it('defaults the incident to the latest open one', async () => {
    await renderEditor({ queryType: 'graph' });
    expect(screen.getByText('Latest open incident')).toBeTruthy();
  });

  it('filters the graph by service; suspects have no service filter', async () => {
    const { onChange } = await renderEditor({ queryType: 'graph' });
    await pick('Service', 'checkoutservice');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ queryType: 'graph', service: 'checkoutservice' }));

    await renderEditor({ queryType: 'suspects' });
    expect(screen.getAllByLabelText('Service')).toHaveLength(1); // only the graph editor's
  });

  it('offers edges and features for a baseline', async () => {
    const { onChange } = await renderEditor({ queryType: 'baseline' });
    await pick('Edge', 'checkoutservice->paymentservice');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ edge: 'checkoutservice->paymentservice' }));
    await pick('Feature', 'p99');
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ feature: 'p99' }));
  });

  it('filters incidents by state', async () => {
    const { onChange } = await renderEditor({ queryType: 'incidents' });
    fireEvent.click(screen.getByLabelText('Resolved'));
    expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ state: 'resolved' }));
  });

  it('says when the choices cannot be loaded', async () => {
    await renderEditor({ queryType: 'suspects' }, true);
    expect(await screen.findByText('cannot load choices: detector down')).toBeTruthy();
  });
});
