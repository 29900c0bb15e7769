// Tests of Sidebar.html and Settings.html in headless Chromium. The pages are
// served by support/sidebar-server.js; their google.script.run calls run the
// real Code.gs functions, which call the real backend that tests/test_addon.py
// starts on loopback.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { api, backend, backendSkip, errorMessageOf, listFlows, runToCompletion, waitForIdle } from './support/backend.js';
import { CHROMIUM_PATH, launchBrowser, startPageServer } from './support/sidebar-server.js';

const STAND_IN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support', 'google-script-run.js');
const RUN_TIMEOUT_MS = 90 * 1000;
const skip = backendSkip || (existsSync(CHROMIUM_PATH) ? false : `no Chromium at ${CHROMIUM_PATH}; run .ci/setup-browser`);

describe('add-on pages in Chromium', { skip }, () => {
  let pages;
  let browser;

  before(async () => {
    pages = await startPageServer({ identityToken: backend.leadToken, backendUrl: backend.url });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) {
      await browser.close();
    }
    if (pages) {
      await pages.close();
    }
  });

  // Open one page with the google.script.run stand-in; ``problems`` collects page
  // errors, console errors and any request that leaves the page server.
  async function openPage(name) {
    const page = await browser.context.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') {
        problems.push(`console error: ${message.text()}`);
      }
    });
    page.on('request', (request) => {
      if (!request.url().startsWith(pages.url)) {
        problems.push(`request outside the page server: ${request.url()}`);
      }
    });
    await page.addInitScript({ path: STAND_IN });
    await page.goto(`${pages.url}/${name}`);
    return { page, problems };
  }

  async function renderedRows(page) {
    await page.locator('[data-flow]').first().waitFor();
    return page.locator('[data-flow]').evaluateAll((nodes) => nodes.map((node) => ({
      id: node.dataset.flow,
      status: node.querySelector('.status').dataset.status,
      label: node.querySelector('.status').textContent,
      counts: node.querySelector('.counts').hidden ? null : node.querySelector('.counts').textContent,
      description: node.querySelector('.description') ? node.querySelector('.description').textContent : null,
      runDisabled: node.querySelector('button.run').disabled,
    })));
  }

  // Record every data-status the row of ``flow`` shows, from now on.
  async function recordStatuses(page, flow) {
    await page.evaluate((flowId) => {
      const status = document.querySelector(`[data-flow="${flowId}"] .status`);
      window.__statuses = [];
      new MutationObserver(() => window.__statuses.push(status.dataset.status))
        .observe(status, { attributes: true, attributeFilter: ['data-status'] });
    }, flow);
  }

  async function waitForStatus(page, flow, statuses) {
    await page.waitForFunction(([flowId, wanted]) => {
      const status = document.querySelector(`[data-flow="${flowId}"] .status`);
      return wanted.includes(status.dataset.status);
    }, [flow, statuses], { timeout: RUN_TIMEOUT_MS });
  }

  test('sidebar lists the flows with their last status', async () => {
    await runToCompletion('clients');
    const flows = await waitForIdle();
    const { page, problems } = await openPage('Sidebar.html');
    const rows = await renderedRows(page);

    assert.deepEqual(rows.map((row) => row.id), flows.map((flow) => flow.id));
    for (const [index, flow] of flows.entries()) {
      const row = rows[index];
      assert.equal(row.description, flow.description);
      assert.equal(row.runDisabled, false, flow.id);
      if (flow.last_run) {
        assert.equal(row.status, flow.last_run.status, flow.id);
        assert.equal(row.label, flow.last_run.status, flow.id);
        assert.ok(row.counts.startsWith(`read ${flow.last_run.counts.read} \u00b7 created ${flow.last_run.counts.created}`),
          `${flow.id}: ${row.counts}`);
      } else {
        assert.equal(row.status, 'never', flow.id);
        assert.equal(row.label, 'never run', flow.id);
        assert.equal(row.counts, null, flow.id);
      }
    }
    const clients = rows.find((row) => row.id === 'clients');
    assert.equal(clients.status, 'succeeded');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('sidebar Run shows running, then the final status and counts', async () => {
    await waitForIdle();
    const { page, problems } = await openPage('Sidebar.html');
    await renderedRows(page);
    await recordStatuses(page, backend.bulkFlow);
    const row = page.locator(`[data-flow="${backend.bulkFlow}"]`);
    await row.locator('button.run').click();

    await waitForStatus(page, backend.bulkFlow, ['queued', 'running']);
    assert.equal(await row.locator('button.run').isDisabled(), true);
    await waitForStatus(page, backend.bulkFlow, ['succeeded', 'failed', 'interrupted']);

    const statuses = await page.evaluate(() => window.__statuses);
    assert.equal(statuses[0], 'starting', JSON.stringify(statuses));
    assert.ok(statuses.slice(1, -1).some((status) => ['queued', 'running'].includes(status)), JSON.stringify(statuses));
    assert.equal(statuses.at(-1), 'succeeded', JSON.stringify(statuses));
    const counts = await row.locator('.counts').textContent();
    assert.ok(counts.startsWith(`read ${backend.bulkRecords} \u00b7 `), counts);
    assert.match(counts, /failed 0/);
    assert.match(await row.locator('.when').textContent(), /^finished /);
    assert.equal(await row.locator('button.run').isDisabled(), false);
    assert.equal(await row.locator('.error').isHidden(), true);

    const started = pages.calls.filter((call) => call.name === 'startRun' && call.args[0] === backend.bulkFlow);
    assert.equal(started.length, 1);
    assert.ok(pages.calls.some((call) => call.name === 'getRun' && call.ok), 'the sidebar never polled getRun');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('sidebar Run joins a run already in progress', async () => {
    await waitForIdle();
    const { page, problems } = await openPage('Sidebar.html');
    await renderedRows(page);
    const other = await api('POST', `/flows/${backend.bulkFlow}/runs`, { body: {} });
    assert.equal(other.status, 202);
    const row = page.locator(`[data-flow="${backend.bulkFlow}"]`);
    await row.locator('button.run').click();

    await row.locator('.note').filter({ hasText: 'joined the run already in progress' }).waitFor();
    await waitForStatus(page, backend.bulkFlow, ['succeeded']);
    const { body } = await api('GET', `/runs/${other.body.run.id}`);
    assert.equal(body.run.status, 'succeeded');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('sidebar shows the backend error inline and keeps the row', async () => {
    const flows = await waitForIdle();
    const flow = flows.find((candidate) => candidate.id === 'clients');
    const expected = await errorMessageOf('POST', '/flows/clients/runs', backend.outsiderToken, {});
    assert.equal(expected.status, 403);
    const { page, problems } = await openPage('Sidebar.html');
    await renderedRows(page);
    pages.appsScript.setIdentityToken(backend.outsiderToken);
    try {
      const row = page.locator('[data-flow="clients"]');
      await row.locator('button.run').click();
      await row.locator('.error').waitFor({ state: 'visible' });

      assert.equal(await row.locator('.error').textContent(), `${expected.message} (HTTP 403, ${expected.code})`);
      assert.equal(await row.locator('.status').getAttribute('data-status'), flow.last_run.status);
      assert.equal(await row.locator('button.run').isDisabled(), false);
      await page.screenshot({ path: backend.screenshot || '/tmp/sidebar.png', fullPage: true });
    } finally {
      pages.appsScript.setIdentityToken(backend.leadToken);
    }
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('sidebar shows a failed flow list as a notice', async () => {
    pages.appsScript.setIdentityToken(backend.rejectedToken);
    const expected = await errorMessageOf('GET', '/flows', backend.rejectedToken);
    let page;
    let problems;
    try {
      ({ page, problems } = await openPage('Sidebar.html'));
      await page.locator('#notice.error').waitFor();
      assert.equal(await page.locator('#notice').textContent(), `${expected.message} (HTTP 401, ${expected.code})`);
      assert.equal(await page.locator('[data-flow]').count(), 0);
      assert.equal(await page.locator('#refresh').isDisabled(), false);
    } finally {
      pages.appsScript.setIdentityToken(backend.leadToken);
    }

    await page.locator('#refresh').click();
    await page.locator('[data-flow]').first().waitFor();
    assert.equal(await page.locator('[data-flow]').count(), (await listFlows()).length);
    assert.equal(await page.locator('#notice').isHidden(), true);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('settings dialog validates and stores the backend URL', async () => {
    const flows = await listFlows();
    const { page, problems } = await openPage('Settings.html');
    const input = page.locator('#backend-url');
    await page.waitForFunction(() => document.getElementById('backend-url').value !== '');
    assert.equal(await input.inputValue(), backend.url);

    await input.fill('http://sync.agency.example');
    await page.locator('#save').click();
    await page.locator('#result.error').waitFor();
    assert.match(await page.locator('#result').textContent(), /"http:\/\/sync\.agency\.example" uses http:\/\//);
    assert.equal(pages.appsScript.documentProperties.getProperty('syncplan.backendUrl'), backend.url);

    await input.fill(`${backend.url}/api/v1/`);
    await page.locator('#save').click();
    await page.locator('#result.ok').waitFor();
    assert.equal(await page.locator('#result').textContent(),
      `Saved. The backend at ${backend.url} lists ${flows.length} flows that you may run.`);
    assert.equal(await input.inputValue(), backend.url);
    assert.equal(pages.appsScript.documentProperties.getProperty('syncplan.backendUrl'), backend.url);

    await page.locator('#close').click();
    assert.equal(await page.evaluate(() => window.__googleScriptHostClosed), true);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
