/**
 * @OnlyCurrentDoc
 *
 * syncplan add-on for Google Sheets: start syncs on the syncplan backend, follow
 * their runs, and retry the rows people tick in the Errors tab.
 *
 * Contract:
 * - Every request goes to the backend URL stored in this spreadsheet's document
 *   properties (syncplan > Settings), under /api/v1, with the user's Google ID
 *   token (ScriptApp.getIdentityToken) as a bearer token. The backend verifies the
 *   token and checks the email against each flow's permissions, so the script and
 *   the document hold no secret.
 * - No request waits for a run to finish. Starting a run returns at once (HTTP 202);
 *   Sync now then polls GET /runs/<id> in short sleeps under SYNC_LIMITS, and the
 *   sidebar polls from the browser.
 * - A non-2xx response becomes a SyncplanError whose message is the backend's
 *   {"error": {"message"}} text, shown to the user as it is.
 *
 * Helper names end in "_", Apps Script's marker for private functions, so that only
 * the functions without it are meant for the menu, the trigger and google.script.run.
 */

const MENU_TITLE = 'syncplan';
const BACKEND_URL_PROPERTY = 'syncplan.backendUrl';
const API_PATH = '/api/v1';
const HOURLY_SYNC_HANDLER = 'hourlySync';
const FINAL_RUN_STATUSES = ['succeeded', 'failed', 'interrupted'];
const RUN_COUNT_NAMES = ['read', 'created', 'updated', 'unchanged', 'deleted', 'failed'];
// Apps Script fetches from Google's servers, so a loopback backend is reachable
// only from a local test harness; http:// is accepted for it and nothing else.
const LOOPBACK_HOSTS = ['localhost', '127.0.0.1'];
const BACKEND_URL_PATTERN =
  /^(https?):\/\/([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::(\d{1,5}))?(\/[^?#\s]*)?$/i;

/**
 * Time and size limits of the commands. Apps Script ends an execution after
 * 6 minutes, so Sync now stops waiting after 5 and reports what is still running.
 * The hourly trigger does not wait at all, because time-driven triggers share a
 * daily runtime quota (90 minutes a day on consumer accounts).
 */
const SYNC_LIMITS = {
  waitBudgetMs: 5 * 60 * 1000,
  pollIntervalMs: 3000,
  errorsPerPage: 100,
  maxErrorPages: 100,
};

const ERRORS_TAB = 'Errors';
const ERRORS_COLUMNS = {
  errorId: 'Error ID',
  flow: 'Flow',
  firstRun: 'First run',
  retry: 'Retry',
};

/** A failure the user can act on; its message is shown as it is. */
class SyncplanError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = 'SyncplanError';
    this.status = status || null;
    this.code = code || null;
  }
}

// --- menu ------------------------------------------------------------------

/** Add the syncplan menu when the spreadsheet opens. */
function onOpen(event) {
  SpreadsheetApp.getUi()
    .createMenu(MENU_TITLE)
    .addItem('Sync now', 'syncNow')
    .addItem('Open sidebar', 'showSidebar')
    .addSeparator()
    .addItem('Install hourly sync', 'installHourlySync')
    .addItem('Retry ticked errors', 'retryTickedErrors')
    .addSeparator()
    .addItem('Settings', 'showSettings')
    .addToUi();
}

/** Add the menu right after an install, before the spreadsheet is reopened. */
function onInstall(event) {
  onOpen(event);
}

/** Start every flow the user may run, wait for the runs, and show their counts. */
function syncNow() {
  const ui = SpreadsheetApp.getUi();
  try {
    const started = Date.now();
    const entries = startAllFlows_();
    const runCount = entries.filter((entry) => entry.run).length;
    SpreadsheetApp.getActiveSpreadsheet().toast(
      `Started ${runCount} of ${entries.length} flows; waiting for them to finish.`,
      MENU_TITLE,
      5,
    );
    waitForRuns_(entries, SYNC_LIMITS.waitBudgetMs);
    ui.alert('syncplan: sync', formatSyncReport_(entries, Date.now() - started), ui.ButtonSet.OK);
  } catch (error) {
    showError_(ui, 'Sync now', error);
  }
}

/** Open the sidebar that lists the flows with a Run button each. */
function showSidebar() {
  const html = HtmlService.createHtmlOutputFromFile('Sidebar').setTitle(MENU_TITLE);
  SpreadsheetApp.getUi().showSidebar(html);
}

/** Open the dialog that sets the backend URL of this spreadsheet. */
function showSettings() {
  const html = HtmlService.createHtmlOutputFromFile('Settings').setWidth(460).setHeight(300);
  SpreadsheetApp.getUi().showModalDialog(html, 'syncplan settings');
}

/** Install the hourly time-driven trigger of this user, once. */
function installHourlySync() {
  const ui = SpreadsheetApp.getUi();
  try {
    const result = installHourlyTrigger_();
    let message = 'Hourly sync is installed. It starts every flow you may run once an hour, as you.';
    if (!result.created) {
      message = result.removed
        ? `Hourly sync was already installed. Removed ${result.removed} duplicate ` +
          `trigger${result.removed === 1 ? '' : 's'}, so it runs once an hour.`
        : 'Hourly sync was already installed; nothing changed.';
    }
    ui.alert('syncplan: hourly sync', message, ui.ButtonSet.OK);
  } catch (error) {
    showError_(ui, 'Install hourly sync', error);
  }
}

/** Send the ticked rows of the Errors tab for retry, then untick the sent rows. */
function retryTickedErrors() {
  const ui = SpreadsheetApp.getUi();
  try {
    const outcomes = retryTickedRows_(SpreadsheetApp.getActiveSpreadsheet());
    ui.alert('syncplan: retry', formatRetryReport_(outcomes), ui.ButtonSet.OK);
  } catch (error) {
    showError_(ui, 'Retry ticked errors', error);
  }
}

// --- trigger ---------------------------------------------------------------

/**
 * Start every flow once an hour, as the user who installed the trigger. It has no
 * UI, so problems are logged, and it throws when a flow could not be started so
 * that the execution is listed as failed.
 */
function hourlySync(event) {
  const entries = startAllFlows_();
  for (const entry of entries) {
    if (entry.run) {
      console.info(`syncplan hourly sync: flow ${entry.flow} run ${entry.run.id} is ${entry.run.status}` +
        (entry.reused ? ' (a run was already in progress)' : ''));
    } else {
      console.error(`syncplan hourly sync: flow ${entry.flow} was not started: ${entry.error}`);
    }
  }
  const failed = entries.filter((entry) => !entry.run);
  if (failed.length > 0) {
    throw new SyncplanError(`syncplan hourly sync could not start ${failed.length} flow(s): ` +
      failed.map((entry) => `${entry.flow}: ${entry.error}`).join('; '));
  }
}

// --- server functions for the sidebar and the settings dialog ----------------

/** Return the flows the user may see, each with its last run (or null). */
function listFlows() {
  return callBackend_('get', '/flows').flows;
}

/** Start a run of one flow; return {run, reused}, reused when one was in progress. */
function startRun(flowId) {
  requireId_(flowId, 'flow id');
  const body = callBackend_('post', `/flows/${encodeURIComponent(flowId)}/runs`, {});
  return { run: body.run, reused: body.reused === true };
}

/** Return one run with its status and counts. */
function getRun(runId) {
  requireId_(runId, 'run id');
  return callBackend_('get', `/runs/${encodeURIComponent(runId)}`).run;
}

/** Return the settings the dialog edits. */
function getSettings() {
  return { backendUrl: documentProperties_().getProperty(BACKEND_URL_PROPERTY) || '' };
}

/** Validate and store the backend URL; return the stored, normalized settings. */
function saveSettings(settings) {
  const backendUrl = normalizeBackendUrl_(settings ? settings.backendUrl : '');
  documentProperties_().setProperty(BACKEND_URL_PROPERTY, backendUrl);
  return { backendUrl: backendUrl };
}

/** Call the backend once with the stored settings; return how many flows it lists. */
function checkBackend() {
  return { backendUrl: backendUrl_(), flowCount: listFlows().length };
}

/**
 * Log and return the OAuth client id the backend must be configured with: the
 * audience (aud claim) of this user's ID token. Run it once from the editor.
 */
function logOAuthClientId() {
  const payload = identityToken_().split('.')[1] || '';
  const padded = payload + '='.repeat((4 - (payload.length % 4)) % 4);
  const claims = JSON.parse(Utilities.newBlob(Utilities.base64DecodeWebSafe(padded)).getDataAsString());
  console.info(`syncplan: the OAuth client id (ID token audience) is ${claims.aud}`);
  return claims.aud;
}

// --- settings --------------------------------------------------------------

function documentProperties_() {
  return PropertiesService.getDocumentProperties();
}

function backendUrl_() {
  const stored = documentProperties_().getProperty(BACKEND_URL_PROPERTY);
  if (!stored) {
    throw new SyncplanError('No syncplan backend URL is set for this spreadsheet; ' +
      'open syncplan > Settings and enter the address of the backend.');
  }
  return stored;
}

/**
 * Return the backend URL in the form the add-on stores: scheme and host in lower
 * case, no trailing slash, no /api/v1 suffix. Raise a SyncplanError that names the
 * value when it is not an https URL (http only for localhost and 127.0.0.1).
 */
function normalizeBackendUrl_(text) {
  const value = typeof text === 'string' ? text.trim() : '';
  if (!value) {
    throw new SyncplanError('The backend URL is empty; enter the address of the syncplan ' +
      'backend, such as https://syncplan.example.com');
  }

  const match = BACKEND_URL_PATTERN.exec(value);
  if (!match) {
    throw new SyncplanError(`The backend URL ${JSON.stringify(value)} is not valid; enter it as ` +
      'https://HOST[:PORT][/PATH], without a user name, query or fragment.');
  }
  const scheme = match[1].toLowerCase();
  const host = match[2].toLowerCase();
  const port = match[3];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    throw new SyncplanError(`The backend URL ${JSON.stringify(value)} has port ${port}; ` +
      'use a port between 1 and 65535.');
  }
  if (scheme === 'http' && LOOPBACK_HOSTS.indexOf(host) === -1) {
    throw new SyncplanError(`The backend URL ${JSON.stringify(value)} uses http://, which would ` +
      'send your Google ID token unencrypted; use https:// (http:// is accepted only for ' +
      'localhost and 127.0.0.1, for development).');
  }

  let path = (match[4] || '').replace(/\/+$/, '');
  if (path.endsWith(API_PATH)) {
    path = path.slice(0, -API_PATH.length).replace(/\/+$/, '');
  }
  return `${scheme}://${host}${port !== undefined ? ':' + port : ''}${path}`;
}

// --- HTTP ------------------------------------------------------------------

function identityToken_() {
  const token = ScriptApp.getIdentityToken();
  if (!token) {
    throw new SyncplanError('Google returned no ID token for your account, so the backend ' +
      'cannot tell who you are; check that appsscript.json lists the openid and ' +
      'userinfo.email scopes, then run a syncplan command again to authorize them.');
  }
  return token;
}

/**
 * Send one request to the backend and return its parsed JSON body. Raise a
 * SyncplanError carrying the backend's error message for a non-2xx response, and
 * one naming the backend URL when the request could not be sent.
 */
function callBackend_(method, path, payload) {
  const baseUrl = backendUrl_();
  const options = {
    method: method,
    headers: { Authorization: 'Bearer ' + identityToken_(), Accept: 'application/json' },
    muteHttpExceptions: true,
    // A redirect would carry the ID token to an address nobody configured.
    followRedirects: false,
  };
  if (payload !== undefined) {
    options.contentType = 'application/json';
    options.payload = JSON.stringify(payload);
  }

  let response;
  try {
    response = UrlFetchApp.fetch(baseUrl + API_PATH + path, options);
  } catch (error) {
    throw new SyncplanError(`Could not reach the syncplan backend at ${baseUrl}: ` +
      `${errorMessage_(error)}. Check the backend URL in syncplan > Settings and that the ` +
      'backend is running.');
  }
  return parseResponse_(method, path, response);
}

function parseResponse_(method, path, response) {
  const status = response.getResponseCode();
  const text = response.getContentText();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (error) {
    body = null;
  }
  const request = `${method.toUpperCase()} ${API_PATH}${path}`;

  if (status >= 200 && status < 300) {
    if (body === null || typeof body !== 'object') {
      throw new SyncplanError(`The syncplan backend responded to ${request} with HTTP ${status} but ` +
        'no JSON body; check that the backend URL in syncplan > Settings points at syncplan.');
    }
    return body;
  }

  const apiError = body && typeof body === 'object' ? body.error : null;
  if (apiError && typeof apiError.message === 'string' && apiError.message) {
    const code = typeof apiError.code === 'string' ? apiError.code : null;
    throw new SyncplanError(`${apiError.message} (HTTP ${status}${code ? ', ' + code : ''})`,
      status, code);
  }
  if (status >= 300 && status < 400) {
    const location = headerValue_(response, 'Location') || 'an unknown address';
    throw new SyncplanError(`The syncplan backend redirected ${request} to ${location}; set ` +
      'the final address as the backend URL in syncplan > Settings.', status);
  }
  const snippet = text.length > 200 ? text.slice(0, 200) + '...' : text;
  throw new SyncplanError(`The syncplan backend responded to ${request} with HTTP ${status}` +
    (snippet ? `: ${snippet}` : '') + '.', status);
}

function headerValue_(response, name) {
  const headers = response.getHeaders() || {};
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name.toLowerCase()) {
      return String(headers[key]);
    }
  }
  return null;
}

function requireId_(value, what) {
  if (typeof value !== 'string' || !value.trim()) {
    throw new SyncplanError(`The ${what} ${JSON.stringify(value)} is not valid; pass the id ` +
      'as a non-empty string.');
  }
}

function errorMessage_(error) {
  return error && error.message ? error.message : String(error);
}

// --- syncing ---------------------------------------------------------------

/**
 * Start a run of every flow the backend lists for this user, in the listed order.
 * Return one entry per flow: {flow, run, reused} when started (or joined), and
 * {flow, error} when the start request failed. Listing the flows may throw.
 */
function startAllFlows_() {
  const flows = listFlows();
  return flows.map((flow) => {
    try {
      const started = startRun(flow.id);
      return { flow: flow.id, run: started.run, reused: started.reused, error: null };
    } catch (error) {
      return { flow: flow.id, run: null, reused: false, error: errorMessage_(error) };
    }
  });
}

function isFinalStatus_(status) {
  return FINAL_RUN_STATUSES.indexOf(status) !== -1;
}

/**
 * Poll the runs of ``entries`` until each has a final status or ``budgetMs`` has
 * passed, updating each entry's run in place. A failed poll is kept as the entry's
 * pollError and polled again on the next round.
 */
function waitForRuns_(entries, budgetMs) {
  const deadline = Date.now() + budgetMs;
  let pending = entries.filter((entry) => entry.run && !isFinalStatus_(entry.run.status));
  while (pending.length > 0) {
    const left = deadline - Date.now();
    if (left <= 0) {
      break;
    }
    Utilities.sleep(Math.min(SYNC_LIMITS.pollIntervalMs, left));
    for (const entry of pending) {
      try {
        entry.run = getRun(entry.run.id);
        entry.pollError = null;
      } catch (error) {
        entry.pollError = errorMessage_(error);
      }
    }
    pending = pending.filter((entry) => !isFinalStatus_(entry.run.status));
  }
}

/** Format run counts as "read 6, created 4, ..., failed 1, filtered out 1, 0.3 s". */
function formatCounts_(counts) {
  const values = counts || {};
  const parts = RUN_COUNT_NAMES.map((name) => `${name} ${values[name] === undefined ? 0 : values[name]}`);
  if (values.filtered > 0) {
    parts.push(`filtered out ${values.filtered}`);
  }
  if (typeof values.seconds === 'number') {
    parts.push(`${values.seconds.toFixed(1)} s`);
  }
  return parts.join(', ');
}

function formatSyncReport_(entries, elapsedMs) {
  if (entries.length === 0) {
    return 'The backend lists no flow that you may run; ask its administrator to add your ' +
      'email to the permissions of the flows you need.';
  }

  const lines = entries.map((entry) => {
    if (!entry.run) {
      return `${entry.flow}: not started: ${entry.error}`;
    }
    const run = entry.run;
    const joined = entry.reused ? ' (joined the run already in progress)' : '';
    if (!isFinalStatus_(run.status)) {
      const problem = entry.pollError ? `; last status check failed: ${entry.pollError}` : '';
      return `${entry.flow}: still ${run.status} when the wait ended (run ${run.id})${joined}; ` +
        `syncplan > Open sidebar follows it${problem}`;
    }
    const message = run.message ? `: ${run.message}` : '';
    return `${entry.flow}: ${run.status}${joined}${message}\n    ${formatCounts_(run.counts)}`;
  });

  const failedRecords = entries.some((entry) => entry.run && entry.run.counts && entry.run.counts.failed > 0);
  const hint = failedRecords
    ? '\n\nRecords that failed are in the Errors tab: tick Retry on their rows, then use ' +
      'syncplan > Retry ticked errors.'
    : '';
  return `Sync of ${entries.length} flows, ${Math.round(elapsedMs / 1000)} s:\n\n` +
    lines.join('\n') + hint;
}

// --- triggers --------------------------------------------------------------

/**
 * Create the hourly trigger unless this user already has one for this project.
 * Return {created, removed}: removed counts duplicates deleted, so that a project
 * left with several triggers ends with exactly one.
 */
function installHourlyTrigger_() {
  backendUrl_();
  const existing = ScriptApp.getProjectTriggers()
    .filter((trigger) => trigger.getHandlerFunction() === HOURLY_SYNC_HANDLER);
  if (existing.length > 0) {
    const duplicates = existing.slice(1);
    duplicates.forEach((trigger) => ScriptApp.deleteTrigger(trigger));
    return { created: false, removed: duplicates.length };
  }

  ScriptApp.newTrigger(HOURLY_SYNC_HANDLER).timeBased().everyHours(1).create();
  return { created: true, removed: 0 };
}

// --- retry -----------------------------------------------------------------

function isTicked_(value) {
  return value === true || (typeof value === 'string' && value.trim().toUpperCase() === 'TRUE');
}

function errorsColumns_(headerRow) {
  const headers = headerRow.map((value) => String(value).trim());
  const columns = {};
  for (const key of Object.keys(ERRORS_COLUMNS)) {
    const index = headers.indexOf(ERRORS_COLUMNS[key]);
    if (index === -1) {
      throw new SyncplanError(`The ${ERRORS_TAB} tab has no ${JSON.stringify(ERRORS_COLUMNS[key])} ` +
        'column; keep the header row syncplan wrote (Error ID, Flow, First run, ..., Retry), ' +
        'or run Sync now to restore it.');
    }
    columns[key] = index;
  }
  return columns;
}

/** Return the rows of the Errors tab whose Retry cell is ticked. */
function readTickedErrors_(sheet) {
  const values = sheet.getDataRange().getValues();
  if (values.length < 2) {
    return [];
  }

  const columns = errorsColumns_(values[0]);
  const ticked = [];
  for (let index = 1; index < values.length; index++) {
    const row = values[index];
    const errorId = String(row[columns.errorId]).trim();
    if (errorId && isTicked_(row[columns.retry])) {
      ticked.push({
        errorId: errorId,
        flow: String(row[columns.flow]).trim(),
        firstRun: String(row[columns.firstRun]).trim(),
      });
    }
  }
  return ticked;
}

/** Return the ids of every error recorded in one run, reading all its pages. */
function errorIdsOfRun_(runId) {
  const ids = {};
  for (let page = 1; page <= SYNC_LIMITS.maxErrorPages; page++) {
    const body = callBackend_('get', `/runs/${encodeURIComponent(runId)}/errors` +
      `?page=${page}&per_page=${SYNC_LIMITS.errorsPerPage}`);
    const errors = body.errors || [];
    errors.forEach((error) => { ids[error.id] = true; });
    if (errors.length === 0 || page * body.per_page >= body.total) {
      return ids;
    }
  }
  // NOTE: past maxErrorPages pages the remaining ids are treated as absent from this
  // run, so their rows are retried against their First run instead.
  return ids;
}

/**
 * Choose the run to retry each ticked error against. An error that the flow's
 * latest run recorded goes to that run. Any other error (the latest run was a
 * retry that did not carry it) goes to its First run, the run that recorded it
 * first, because the backend retries only errors the given run recorded.
 */
function planRetryBatches_(flow, rows, latestRun) {
  const idsInLatest = errorIdsOfRun_(latestRun.id);
  const batches = {};
  const problems = [];
  for (const row of rows) {
    const runId = idsInLatest[row.errorId] ? latestRun.id : row.firstRun;
    if (!runId) {
      problems.push({ flow: flow, errorIds: [row.errorId], error: `error ${row.errorId} is not ` +
        `in the latest run ${latestRun.id} and its First run cell is empty` });
      continue;
    }
    (batches[runId] = batches[runId] || []).push(row.errorId);
  }
  return { batches: batches, problems: problems };
}

function retryFlowErrors_(flow, rows, latestRuns) {
  const errorIds = rows.map((row) => row.errorId);
  if (!flow) {
    return [{ flow: '(no flow)', errorIds: errorIds, error: 'the Flow cell of these rows is empty' }];
  }
  if (!Object.prototype.hasOwnProperty.call(latestRuns, flow)) {
    return [{ flow: flow, errorIds: errorIds, error: `the backend lists no flow ${JSON.stringify(flow)} ` +
      'that you may run' }];
  }
  const latestRun = latestRuns[flow];
  if (!latestRun) {
    return [{ flow: flow, errorIds: errorIds, error: 'the flow has no run yet; run Sync now first' }];
  }
  if (!isFinalStatus_(latestRun.status)) {
    return [{ flow: flow, errorIds: errorIds, error: `run ${latestRun.id} of the flow is ` +
      `${latestRun.status}; retry after it finishes` }];
  }

  let plan;
  try {
    plan = planRetryBatches_(flow, rows, latestRun);
  } catch (error) {
    return [{ flow: flow, errorIds: errorIds, error: errorMessage_(error) }];
  }
  const outcomes = plan.problems;
  for (const runId of Object.keys(plan.batches)) {
    const ids = plan.batches[runId];
    try {
      const body = callBackend_('post', `/runs/${encodeURIComponent(runId)}/retry`, { error_ids: ids });
      outcomes.push({ flow: flow, errorIds: ids, retriedRun: runId, run: body.run, error: null });
    } catch (error) {
      outcomes.push({ flow: flow, errorIds: ids, retriedRun: runId, error: errorMessage_(error) });
    }
  }
  return outcomes;
}

/**
 * Retry the ticked rows of the Errors tab, grouped by flow, and untick the rows
 * the backend accepted. Return one outcome per retry request or per problem.
 */
function retryTickedRows_(spreadsheet) {
  const sheet = spreadsheet.getSheetByName(ERRORS_TAB);
  if (!sheet) {
    throw new SyncplanError(`This spreadsheet has no ${ERRORS_TAB} tab; syncplan adds it when a ` +
      'sync finds records that fail.');
  }
  const ticked = readTickedErrors_(sheet);
  if (ticked.length === 0) {
    return [];
  }

  const latestRuns = {};
  listFlows().forEach((flow) => { latestRuns[flow.id] = flow.last_run || null; });
  const byFlow = {};
  ticked.forEach((row) => { (byFlow[row.flow] = byFlow[row.flow] || []).push(row); });

  const outcomes = [];
  for (const flow of Object.keys(byFlow)) {
    outcomes.push(...retryFlowErrors_(flow, byFlow[flow], latestRuns));
  }
  const sent = {};
  outcomes.filter((outcome) => outcome.run).forEach((outcome) => {
    outcome.errorIds.forEach((id) => { sent[id] = true; });
  });
  untickRows_(sheet, sent);
  return outcomes;
}

/**
 * Untick the Retry cell of each row whose error id was sent. The tab is read again
 * first: the retry run may already have rewritten it, moving rows.
 */
function untickRows_(sheet, sentIds) {
  if (Object.keys(sentIds).length === 0) {
    return;
  }
  const values = sheet.getDataRange().getValues();
  if (values.length < 2) {
    return;
  }
  const columns = errorsColumns_(values[0]);
  for (let index = 1; index < values.length; index++) {
    const row = values[index];
    if (sentIds[String(row[columns.errorId]).trim()] && isTicked_(row[columns.retry])) {
      sheet.getRange(index + 1, columns.retry + 1).setValue(false);
    }
  }
}

function formatRetryReport_(outcomes) {
  if (outcomes.length === 0) {
    return `No row of the ${ERRORS_TAB} tab has its Retry box ticked. Tick Retry on the rows ` +
      'to run again, then use syncplan > Retry ticked errors.';
  }

  const lines = outcomes.map((outcome) => {
    const count = `${outcome.errorIds.length} error${outcome.errorIds.length === 1 ? '' : 's'}`;
    if (outcome.run) {
      return `${outcome.flow}: sent ${count} for retry; run ${outcome.run.id} is ` +
        `${outcome.run.status} (retry of run ${outcome.retriedRun}).`;
    }
    return `${outcome.flow}: ${count} not sent, still ticked: ${outcome.error}`;
  });
  const anySent = outcomes.some((outcome) => outcome.run);
  const follow = anySent ? '\n\nThe sent rows are unticked; syncplan > Open sidebar follows the runs.' : '';
  return lines.join('\n') + follow;
}

// --- messages --------------------------------------------------------------

function showError_(ui, command, error) {
  const message = errorMessage_(error);
  console.error(`syncplan ${command} failed: ${message}`);
  ui.alert(`syncplan: ${command} failed`, message, ui.ButtonSet.OK);
}
