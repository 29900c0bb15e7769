// Tests of Code.gs under Node: the Apps Script globals are stood in by
// support/apps-script.js, and UrlFetchApp reaches the real backend that
// tests/test_addon.py starts on loopback.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { createAppsScript, loadAddon } from './support/apps-script.js';
import {
  api,
  backend,
  backendSkip,
  errorMessageOf,
  listFlows,
  runToCompletion,
  waitForIdle,
} from './support/backend.js';

const BACKEND_URL_PROPERTY = 'syncplan.backendUrl';
const ERRORS_HEADER = ['Error ID', 'Flow', 'First run', 'Time', 'Record key', 'Field', 'Code',
  'Message', 'Raw value', 'Retry'];
const RETRY_COLUMN = ERRORS_HEADER.indexOf('Retry') + 1;
const FAST_POLL_MS = 500;
const MISBEHAVING_BACKEND = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support',
  'misbehaving-backend.js');

function newAddon({ token = null, backendUrl = null, ui = true } = {}) {
  const appsScript = createAppsScript({ identityToken: token, ui });
  const addon = loadAddon(appsScript);
  if (backendUrl) {
    appsScript.documentProperties.setProperty(BACKEND_URL_PROPERTY, backendUrl);
  }
  addon.evaluate(`SYNC_LIMITS.pollIntervalMs = ${FAST_POLL_MS}`);
  return { appsScript, addon };
}

function leadAddon(options = {}) {
  return newAddon({ token: backend.leadToken, backendUrl: backend.url, ...options });
}

function requestsTo(appsScript, method, pathPattern) {
  return appsScript.fetches.filter((fetch) => fetch.method === method &&
    pathPattern.test(new URL(fetch.url).pathname));
}

function onlyAlert(appsScript) {
  assert.equal(appsScript.ui.alerts.length, 1, JSON.stringify(appsScript.ui.alerts));
  return appsScript.ui.alerts[0];
}

function errorsRow(error, flow, runId, retry) {
  return [error.id, flow, runId, '2026-12-04 09:00:00', error.record_key || '', error.field || '',
    error.code, error.message, error.raw || '', retry];
}

// --- without a backend -------------------------------------------------------

describe('menu and dialogs', () => {
  test('onOpen builds the syncplan menu', () => {
    const { appsScript, addon } = newAddon();
    addon.onOpen({ authMode: 'LIMITED' });

    assert.equal(appsScript.ui.menus.length, 1);
    const menu = appsScript.ui.menus[0];
    assert.equal(menu.title, 'syncplan');
    const items = menu.items.filter((item) => !item.separator);
    assert.deepEqual(items.map((item) => item.caption),
      ['Sync now', 'Open sidebar', 'Install hourly sync', 'Retry ticked errors', 'Settings']);
    for (const item of items) {
      assert.equal(typeof addon[item.functionName], 'function', `${item.caption} -> ${item.functionName}`);
      assert.ok(!item.functionName.endsWith('_'), `${item.functionName} must be public`);
    }
  });

  test('showSidebar opens Sidebar.html', () => {
    const { appsScript, addon } = newAddon();
    addon.showSidebar();

    assert.equal(appsScript.ui.sidebars.length, 1);
    assert.equal(appsScript.ui.sidebars[0].fileName, 'Sidebar');
    assert.equal(appsScript.ui.sidebars[0].getTitle(), 'syncplan');
    assert.match(appsScript.ui.sidebars[0].getContent(), /google\.script\.run/);
  });

  test('showSettings opens Settings.html as a dialog', () => {
    const { appsScript, addon } = newAddon();
    addon.showSettings();

    assert.equal(appsScript.ui.dialogs.length, 1);
    assert.equal(appsScript.ui.dialogs[0].output.fileName, 'Settings');
    assert.equal(appsScript.ui.dialogs[0].title, 'syncplan settings');
  });
});

describe('settings', () => {
  const valid = [
    ['https://sync.agency.example', 'https://sync.agency.example'],
    ['  HTTPS://Sync.Agency.Example/  ', 'https://sync.agency.example'],
    ['https://sync.agency.example:8443/syncplan/', 'https://sync.agency.example:8443/syncplan'],
    ['https://sync.agency.example/base/api/v1/', 'https://sync.agency.example/base'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['http://localhost:5000/', 'http://localhost:5000'],
  ];
  for (const [input, stored] of valid) {
    test(`saveSettings stores ${JSON.stringify(input)}`, () => {
      const { appsScript, addon } = newAddon();
      const saved = addon.saveSettings({ backendUrl: input });

      assert.equal(saved.backendUrl, stored);
      assert.equal(appsScript.documentProperties.getProperty(BACKEND_URL_PROPERTY), stored);
      assert.equal(addon.getSettings().backendUrl, stored);
    });
  }

  const invalid = [
    ['', /backend URL is empty/],
    ['   ', /backend URL is empty/],
    ['http://sync.agency.example', /"http:\/\/sync\.agency\.example" uses http:\/\//],
    ['http://10.0.0.5:8080', /uses http:\/\//],
    ['ftp://sync.agency.example', /"ftp:\/\/sync\.agency\.example" is not valid/],
    ['sync.agency.example', /is not valid/],
    ['https://user@sync.agency.example', /is not valid/],
    ['https://sync.agency.example/?token=1', /is not valid/],
    ['https://sync.agency.example/#top', /is not valid/],
    ['https://sync.agency.example:70000', /has port 70000/],
    ['https://-bad-.example', /is not valid/],
  ];
  for (const [input, message] of invalid) {
    test(`saveSettings rejects ${JSON.stringify(input)}`, () => {
      const { appsScript, addon } = newAddon();
      appsScript.documentProperties.setProperty(BACKEND_URL_PROPERTY, 'https://kept.example');

      assert.throws(() => addon.saveSettings({ backendUrl: input }), message);
      assert.equal(appsScript.documentProperties.getProperty(BACKEND_URL_PROPERTY), 'https://kept.example');
    });
  }

  test('saveSettings rejects a missing settings object', () => {
    const { addon } = newAddon();
    assert.throws(() => addon.saveSettings(null), /backend URL is empty/);
  });

  test('getSettings returns an empty URL before any save', () => {
    const { addon } = newAddon();
    assert.equal(addon.getSettings().backendUrl, '');
  });

  test('syncNow without a backend URL points to Settings', () => {
    const { appsScript, addon } = newAddon({ token: 'unused-token' });
    addon.syncNow();

    const alert = onlyAlert(appsScript);
    assert.equal(alert.title, 'syncplan: Sync now failed');
    assert.match(alert.prompt, /No syncplan backend URL is set/);
    assert.match(alert.prompt, /syncplan > Settings/);
    assert.equal(appsScript.fetches.length, 0);
  });

  test('logOAuthClientId returns the token audience', () => {
    const claims = { aud: 'syncplan-client.apps.googleusercontent.com', email: 'lead@agency.example', name: 'Léa' };
    const token = ['header', Buffer.from(JSON.stringify(claims)).toString('base64url'), 'signature'].join('.');
    const { appsScript, addon } = newAddon({ token });

    assert.equal(addon.logOAuthClientId(), claims.aud);
    assert.deepEqual(appsScript.logs.map((log) => log.message),
      [`syncplan: the OAuth client id (ID token audience) is ${claims.aud}`]);
  });

  test('syncNow without an identity token names the missing scopes', () => {
    const { appsScript, addon } = newAddon({ token: null, backendUrl: 'http://127.0.0.1:9' });
    addon.syncNow();

    const alert = onlyAlert(appsScript);
    assert.match(alert.prompt, /no ID token/);
    assert.match(alert.prompt, /openid and userinfo\.email/);
    assert.equal(appsScript.fetches.length, 0);
  });
});

describe('hourly trigger', () => {
  test('installHourlySync installs one trigger when called twice', () => {
    const { appsScript, addon } = newAddon({ backendUrl: 'https://sync.agency.example' });
    addon.installHourlySync();
    addon.installHourlySync();

    assert.equal(appsScript.triggers.length, 1);
    assert.equal(appsScript.triggers[0].getHandlerFunction(), 'hourlySync');
    assert.deepEqual(appsScript.triggers[0].schedule, { everyHours: 1 });
    assert.equal(appsScript.ui.alerts.length, 2);
    assert.match(appsScript.ui.alerts[0].prompt, /Hourly sync is installed/);
    assert.match(appsScript.ui.alerts[1].prompt, /already installed; nothing changed/);
    assert.equal(typeof addon.hourlySync, 'function');
  });

  test('installHourlySync removes duplicate triggers', () => {
    const { appsScript, addon } = newAddon({ backendUrl: 'https://sync.agency.example' });
    appsScript.globals.ScriptApp.newTrigger('hourlySync').timeBased().everyHours(1).create();
    appsScript.globals.ScriptApp.newTrigger('hourlySync').timeBased().everyHours(1).create();
    appsScript.globals.ScriptApp.newTrigger('otherHandler').timeBased().everyHours(6).create();
    addon.installHourlySync();

    const handlers = appsScript.triggers.map((trigger) => trigger.getHandlerFunction()).sort();
    assert.deepEqual(handlers, ['hourlySync', 'otherHandler']);
    assert.equal(onlyAlert(appsScript).prompt,
      'Hourly sync was already installed. Removed 1 duplicate trigger, so it runs once an hour.');
  });

  test('installHourlySync needs the backend URL first', () => {
    const { appsScript, addon } = newAddon();
    addon.installHourlySync();

    assert.equal(appsScript.triggers.length, 0);
    assert.match(onlyAlert(appsScript).prompt, /No syncplan backend URL is set/);
  });
});

describe('answers of a misbehaving backend', () => {
  let child;
  let baseUrl;

  before(async () => {
    child = spawn(process.execPath, [MISBEHAVING_BACKEND], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.stdout.once('data', (data) => resolve(Number(String(data).trim())));
    });
    baseUrl = `http://127.0.0.1:${port}`;
  });

  after(() => {
    child.kill();
  });

  test('syncNow does not follow a redirect with the token', async () => {
    const { appsScript, addon } = newAddon({ token: 'lead-token', backendUrl: `${baseUrl}/redirect` });
    addon.syncNow();

    assert.equal(appsScript.fetches.length, 1);
    assert.equal(appsScript.fetches[0].status, 302);
    assert.match(onlyAlert(appsScript).prompt, new RegExp('^The syncplan backend redirected GET /api/v1/flows ' +
      `to ${baseUrl}/elsewhere/api/v1/flows; set the final address`));
    const hits = await (await fetch(`${baseUrl}/hits`)).json();
    assert.equal(hits.elsewhere, 0);
  });

  test('syncNow shows a non-JSON error response', () => {
    const { appsScript, addon } = newAddon({ token: 'lead-token', backendUrl: `${baseUrl}/html` });
    addon.syncNow();

    assert.equal(onlyAlert(appsScript).prompt, 'The syncplan backend responded to GET /api/v1/flows with HTTP 502: ' +
      '<html><body>Bad gateway</body></html>.');
  });

  test('syncNow rejects a non-JSON 200 response', () => {
    const { appsScript, addon } = newAddon({ token: 'lead-token', backendUrl: `${baseUrl}/text` });
    addon.syncNow();

    assert.match(onlyAlert(appsScript).prompt, /responded to GET \/api\/v1\/flows with HTTP 200 but no JSON body; check that the backend URL/);
  });
});

// --- against the backend ---------------------------------------------------------

describe('sync against the backend', { skip: backendSkip }, () => {
  test('syncNow starts every flow, polls and shows the counts', async () => {
    const flows = await waitForIdle();
    const { appsScript, addon } = leadAddon();
    addon.syncNow();

    const starts = requestsTo(appsScript, 'POST', /^\/api\/v1\/flows\/[^/]+\/runs$/);
    assert.deepEqual(starts.map((fetch) => decodeURIComponent(fetch.url.split('/').at(-2))),
      flows.map((flow) => flow.id));
    for (const fetch of appsScript.fetches) {
      assert.equal(fetch.headers.Authorization, `Bearer ${backend.leadToken}`);
    }
    assert.ok(requestsTo(appsScript, 'GET', /^\/api\/v1\/runs\/[^/]+$/).length > 0, 'no status poll');
    assert.ok(appsScript.sleeps.length > 0, 'Sync now returned without waiting');
    assert.ok(appsScript.sleeps.every((ms) => ms <= FAST_POLL_MS), JSON.stringify(appsScript.sleeps));

    assert.equal(appsScript.spreadsheet.toasts.length, 1);
    assert.match(appsScript.spreadsheet.toasts[0].message, new RegExp(`Started ${flows.length} of ${flows.length} flows`));
    const alert = onlyAlert(appsScript);
    assert.equal(alert.title, 'syncplan: sync');
    for (const start of starts) {
      const runId = JSON.parse(start.body).run.id;
      const { body } = await api('GET', `/runs/${runId}`);
      const run = body.run;
      assert.equal(run.status, 'succeeded', `${run.flow}: ${run.message}`);
      assert.ok(alert.prompt.includes(`${run.flow}: succeeded\n`), `${run.flow} missing in:\n${alert.prompt}`);
      const counts = ['read', 'created', 'updated', 'unchanged', 'deleted', 'failed']
        .map((name) => `${name} ${run.counts[name]}`).join(', ');
      assert.ok(alert.prompt.includes(counts), `${counts} missing in:\n${alert.prompt}`);
    }
    assert.match(alert.prompt, /Records that failed are in the Errors tab/);
  });

  test('syncNow joins a run already in progress', async () => {
    await waitForIdle();
    const { appsScript, addon } = leadAddon();
    const first = addon.startRun(backend.bulkFlow);
    assert.equal(first.reused, false);
    assert.ok(['queued', 'running'].includes(first.run.status), first.run.status);

    addon.syncNow();

    const bulkStarts = requestsTo(appsScript, 'POST', new RegExp(`/flows/${backend.bulkFlow}/runs$`));
    assert.equal(bulkStarts.length, 2);
    assert.equal(bulkStarts[1].status, 200);
    const joined = JSON.parse(bulkStarts[1].body);
    assert.equal(joined.reused, true);
    assert.equal(joined.run.id, first.run.id);
    const prompt = onlyAlert(appsScript).prompt;
    assert.ok(prompt.includes(`${backend.bulkFlow}: succeeded (joined the run already in progress)`), prompt);
    assert.ok(prompt.includes(`read ${backend.bulkRecords},`), prompt);
  });

  test('syncNow reports runs still going when the wait ends', async () => {
    await waitForIdle();
    const { appsScript, addon } = leadAddon();
    addon.evaluate('SYNC_LIMITS.waitBudgetMs = 300');
    addon.syncNow();

    const prompt = onlyAlert(appsScript).prompt;
    assert.match(prompt, new RegExp(`${backend.bulkFlow}: still (queued|running) when the wait ended \\(run \\w+\\)`));
    assert.match(prompt, /syncplan > Open sidebar follows it/);
    assert.ok(appsScript.sleeps.reduce((sum, ms) => sum + ms, 0) <= 300, JSON.stringify(appsScript.sleeps));
    await waitForIdle();
  });

  test('startRun shows the backend message of a 403', async () => {
    const flowId = (await listFlows())[0].id;
    const expected = await errorMessageOf('POST', `/flows/${flowId}/runs`, backend.outsiderToken, {});
    assert.equal(expected.status, 403);
    const { addon } = newAddon({ token: backend.outsiderToken, backendUrl: backend.url });

    assert.throws(() => addon.startRun(flowId), (error) => {
      assert.equal(error.message, `${expected.message} (HTTP 403, ${expected.code})`);
      assert.equal(error.status, 403);
      return true;
    });
  });

  test('syncNow shows the backend message of a rejected token', async () => {
    const expected = await errorMessageOf('GET', '/flows', backend.rejectedToken);
    assert.equal(expected.status, 401);
    const { appsScript, addon } = newAddon({ token: backend.rejectedToken, backendUrl: backend.url });
    addon.syncNow();

    const alert = onlyAlert(appsScript);
    assert.equal(alert.title, 'syncplan: Sync now failed');
    assert.equal(alert.prompt, `${expected.message} (HTTP 401, ${expected.code})`);
  });

  test('syncNow lists no flow for a user without permissions', async () => {
    assert.deepEqual(await listFlows(backend.outsiderToken), []);
    const { appsScript, addon } = newAddon({ token: backend.outsiderToken, backendUrl: backend.url });
    addon.syncNow();

    assert.match(onlyAlert(appsScript).prompt, /lists no flow that you may run/);
    assert.equal(requestsTo(appsScript, 'POST', /./).length, 0);
  });

  test('syncNow names an unreachable backend', async () => {
    const { appsScript, addon } = newAddon({ token: backend.leadToken, backendUrl: 'http://127.0.0.1:9' });
    addon.syncNow();

    const prompt = onlyAlert(appsScript).prompt;
    assert.match(prompt, /Could not reach the syncplan backend at http:\/\/127\.0\.0\.1:9/);
    assert.match(prompt, /Check the backend URL in syncplan > Settings/);
  });

  test('checkBackend counts the flows the backend lists', async () => {
    const flows = await listFlows();
    const { addon } = leadAddon();
    const check = addon.checkBackend();

    assert.equal(check.backendUrl, backend.url);
    assert.equal(check.flowCount, flows.length);
  });

  test('hourlySync starts the flows without UI or waiting', async () => {
    const flows = await waitForIdle();
    const { appsScript, addon } = leadAddon({ ui: false });
    addon.hourlySync({ triggerUid: 'trigger-1' });

    assert.equal(requestsTo(appsScript, 'POST', /\/runs$/).length, flows.length);
    assert.deepEqual(appsScript.sleeps, []);
    const started = appsScript.logs.filter((log) => log.level === 'info');
    assert.equal(started.length, flows.length, JSON.stringify(appsScript.logs));
    assert.match(started[0].message, /^syncplan hourly sync: flow \S+ run \w+ is (queued|running|succeeded)/);
    await waitForIdle();
  });

  test('hourlySync throws the backend message when it cannot start', async () => {
    const expected = await errorMessageOf('GET', '/flows', backend.rejectedToken);
    const { appsScript, addon } = newAddon({ token: backend.rejectedToken, backendUrl: backend.url, ui: false });

    assert.throws(() => addon.hourlySync({}), (error) => error.message.includes(expected.message));
    assert.equal(requestsTo(appsScript, 'POST', /./).length, 0);
  });
});

describe('retry against the backend', { skip: backendSkip }, () => {
  async function erroredRuns() {
    await waitForIdle();
    const found = [];
    for (const flow of ['deals', 'calendar_hours']) {
      const run = await runToCompletion(flow);
      const { body } = await api('GET', `/runs/${run.id}/errors?page=1&per_page=50`);
      assert.ok(body.errors.length > 0, `flow ${flow} recorded no error to retry`);
      found.push({ flow, run, errors: body.errors });
    }
    return found;
  }

  function errorsTab(appsScript, rows) {
    const sheet = appsScript.spreadsheet.insertSheet('Errors');
    sheet.getRange(1, 1, 1, ERRORS_HEADER.length).setValues([ERRORS_HEADER]);
    sheet.getRange(2, 1, rows.length, ERRORS_HEADER.length).setValues(rows);
    return sheet;
  }

  test('retryTickedErrors posts the ticked ids and unticks them', async () => {
    const [deals, calendar] = await erroredRuns();
    const { appsScript, addon } = leadAddon();
    const untickedId = 'not-ticked-0001';
    const sheet = errorsTab(appsScript, [
      errorsRow(deals.errors[0], 'deals', deals.run.id, true),
      errorsRow({ id: untickedId, code: 'invalid_date', message: 'left alone' }, 'deals', deals.run.id, false),
      errorsRow(calendar.errors[0], 'calendar_hours', calendar.run.id, true),
    ]);
    addon.retryTickedErrors();

    const retries = requestsTo(appsScript, 'POST', /^\/api\/v1\/runs\/[^/]+\/retry$/);
    assert.equal(retries.length, 2);
    const byRun = Object.fromEntries(retries.map((fetch) => [fetch.url.split('/').at(-2), fetch]));
    assert.deepEqual(JSON.parse(byRun[deals.run.id].payload), { error_ids: [deals.errors[0].id] });
    assert.deepEqual(JSON.parse(byRun[calendar.run.id].payload), { error_ids: [calendar.errors[0].id] });
    assert.equal(byRun[deals.run.id].status, 202);
    assert.equal(byRun[calendar.run.id].status, 202);
    assert.equal(byRun[deals.run.id].headers['Content-Type'], 'application/json');

    assert.deepEqual(sheet.snapshot().slice(1).map((row) => row[RETRY_COLUMN - 1]), [false, false, false]);
    const retryWrites = sheet.writes.filter((write) => write.column === RETRY_COLUMN && write.row > 1);
    assert.deepEqual(retryWrites.slice(-2).map((write) => [write.row, write.value]), [[2, false], [4, false]]);

    const prompt = onlyAlert(appsScript).prompt;
    assert.match(prompt, new RegExp(`deals: sent 1 error for retry; run \\w+ is \\w+ \\(retry of run ${deals.run.id}\\)`));
    assert.match(prompt, new RegExp(`calendar_hours: sent 1 error for retry; .*retry of run ${calendar.run.id}`));
    const retryRun = JSON.parse(byRun[deals.run.id].body).run;
    assert.equal(retryRun.retry_of, deals.run.id);

    await waitForIdle();
    const flows = await listFlows();
    assert.equal(flows.find((flow) => flow.id === 'deals').last_run.retry_of, deals.run.id);
  });

  test('retryTickedErrors keeps rows the backend rejects ticked', async () => {
    const [deals] = await erroredRuns();
    const unknownId = 'ffffffffffffffff';
    const expected = await errorMessageOf('POST', `/runs/${deals.run.id}/retry`, backend.leadToken,
      { error_ids: [unknownId] });
    const { appsScript, addon } = leadAddon();
    const sheet = errorsTab(appsScript, [
      errorsRow({ id: unknownId, code: 'invalid_date', message: 'unknown' }, 'deals', deals.run.id, true),
      errorsRow({ id: 'eeeeeeeeeeeeeeee', code: 'invalid_date', message: 'no first run' }, 'deals', '', 'TRUE'),
    ]);
    addon.retryTickedErrors();

    const retries = requestsTo(appsScript, 'POST', /\/retry$/);
    assert.equal(retries.length, 1);
    assert.equal(retries[0].status, 400);
    assert.deepEqual(sheet.snapshot().slice(1).map((row) => row[RETRY_COLUMN - 1]), [true, 'TRUE']);
    const prompt = onlyAlert(appsScript).prompt;
    assert.ok(prompt.includes(`deals: 1 error not sent, still ticked: ${expected.message} (HTTP 400, ${expected.code})`),
      prompt);
    assert.match(prompt, /eeeeeeeeeeeeeeee is not in the latest run \w+ and its First run cell is empty/);
  });

  test('retryTickedErrors with nothing ticked sends nothing', async () => {
    const { appsScript, addon } = leadAddon();
    const sheet = appsScript.spreadsheet.insertSheet('Errors');
    sheet.getRange(1, 1, 1, ERRORS_HEADER.length).setValues([ERRORS_HEADER]);
    addon.retryTickedErrors();

    assert.equal(appsScript.fetches.length, 0);
    assert.match(onlyAlert(appsScript).prompt, /No row of the Errors tab has its Retry box ticked/);
  });

  test('retryTickedErrors names a missing Errors tab or column', async () => {
    const { appsScript, addon } = leadAddon();
    addon.retryTickedErrors();
    assert.match(appsScript.ui.alerts[0].prompt, /This spreadsheet has no Errors tab/);

    const sheet = appsScript.spreadsheet.insertSheet('Errors');
    const header = ERRORS_HEADER.filter((name) => name !== 'Retry');
    sheet.getRange(1, 1, 1, header.length).setValues([header]);
    sheet.getRange(2, 1, 1, header.length).setValues([header.map(() => 'x')]);
    addon.retryTickedErrors();
    assert.match(appsScript.ui.alerts[1].prompt, /The Errors tab has no "Retry" column/);
    assert.equal(appsScript.fetches.length, 0);
  });
});
