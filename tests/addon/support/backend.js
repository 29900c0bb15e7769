// The backend the add-on tests talk to, as tests/test_addon.py describes it in
// environment variables, and a few direct API calls for setting up and checking
// a test. Without the variables, tests that need the backend are skipped.

const FINAL_STATUSES = new Set(['succeeded', 'failed', 'interrupted']);
const IDLE_TIMEOUT_MS = 120 * 1000;
const IDLE_POLL_MS = 250;

export const backend = {
  url: process.env.SYNCPLAN_ADDON_BACKEND_URL || '',
  leadToken: process.env.SYNCPLAN_ADDON_LEAD_TOKEN || '',
  outsiderToken: process.env.SYNCPLAN_ADDON_OUTSIDER_TOKEN || '',
  rejectedToken: process.env.SYNCPLAN_ADDON_REJECTED_TOKEN || '',
  bulkFlow: process.env.SYNCPLAN_ADDON_BULK_FLOW || 'bulk',
  bulkRecords: Number(process.env.SYNCPLAN_ADDON_BULK_RECORDS || '0'),
  screenshot: process.env.SYNCPLAN_ADDON_SCREENSHOT || '',
};

/** false when the backend is configured, else the reason tests skip. */
export const backendSkip = backend.url && backend.leadToken && backend.outsiderToken &&
  backend.rejectedToken && backend.bulkRecords > 0
  ? false
  : 'no backend: tests/test_addon.py starts one and sets SYNCPLAN_ADDON_BACKEND_URL, ' +
    'SYNCPLAN_ADDON_LEAD_TOKEN, SYNCPLAN_ADDON_OUTSIDER_TOKEN, SYNCPLAN_ADDON_REJECTED_TOKEN ' +
    'and SYNCPLAN_ADDON_BULK_RECORDS';

/** Send one API request; return {status, body} with the parsed JSON body. */
export async function api(method, path, { token = backend.leadToken, body } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(`${backend.url}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

export async function listFlows(token = backend.leadToken) {
  const { status, body } = await api('GET', '/flows', { token });
  if (status !== 200) {
    throw new Error(`GET /flows returned HTTP ${status}: ${JSON.stringify(body)}`);
  }
  return body.flows;
}

function sleep(milliseconds) {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/** Wait until no flow has a queued or running run, so a test starts from rest. */
export async function waitForIdle() {
  const deadline = Date.now() + IDLE_TIMEOUT_MS;
  for (;;) {
    const flows = await listFlows();
    const busy = flows.filter((flow) => flow.last_run && !FINAL_STATUSES.has(flow.last_run.status));
    if (busy.length === 0) {
      return flows;
    }
    if (Date.now() > deadline) {
      throw new Error(`flows still busy after ${IDLE_TIMEOUT_MS} ms: ` +
        busy.map((flow) => `${flow.id} ${flow.last_run.status}`).join(', '));
    }
    await sleep(IDLE_POLL_MS);
  }
}

/** Start a run of ``flow`` and wait for its final state; return the run. */
export async function runToCompletion(flow) {
  const started = await api('POST', `/flows/${flow}/runs`, { body: {} });
  if (started.status !== 202 && started.status !== 200) {
    throw new Error(`POST /flows/${flow}/runs returned HTTP ${started.status}: ${JSON.stringify(started.body)}`);
  }
  const deadline = Date.now() + IDLE_TIMEOUT_MS;
  for (;;) {
    const { body } = await api('GET', `/runs/${started.body.run.id}`);
    if (FINAL_STATUSES.has(body.run.status)) {
      return body.run;
    }
    if (Date.now() > deadline) {
      throw new Error(`run ${body.run.id} of ${flow} is still ${body.run.status} after ${IDLE_TIMEOUT_MS} ms`);
    }
    await sleep(IDLE_POLL_MS);
  }
}

/** Send one request that must fail; return the status, code and message of its JSON error. */
export async function errorMessageOf(method, path, token, body) {
  const answer = await api(method, path, { token, body });
  if (answer.status < 400 || !answer.body || !answer.body.error) {
    throw new Error(`${method} ${path} returned HTTP ${answer.status} without a JSON error: ` +
      JSON.stringify(answer.body));
  }
  return { status: answer.status, code: answer.body.error.code, message: answer.body.error.message };
}
