// A stand-in for the Apps Script globals that Code.gs uses, and a loader that runs
// Code.gs in a fresh vm context with them.
//
// What is real and what is not:
// - UrlFetchApp.fetch sends a real, synchronous HTTP request (through a child
//   Node process running http-request.js) and rejects any host but loopback, so
//   a test can only reach servers it started on this machine.
// - Utilities.sleep really sleeps (Atomics.wait), after calling the onSleep hook.
// - SpreadsheetApp keeps one spreadsheet in memory: sheets of plain values,
//   ranges by row and column, getDataRange, getLastRow, toast.
// - SpreadsheetApp.getUi records menus, alerts, sidebars and dialogs; with
//   {ui: false} it throws as Apps Script does in a time-driven trigger.
// - PropertiesService, ScriptApp triggers and HtmlService keep their state in
//   memory; HtmlService reads the add-on's real .html files.
// Behaviour follows the Apps Script reference for the methods used here. Methods
// that Code.gs does not call are left out, so that a new call fails in a test.

import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const SUPPORT_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ADDON_DIR = path.resolve(SUPPORT_DIR, '..', '..', '..', 'sheets_addon', 'apps_script');
const HTTP_HELPER = path.join(SUPPORT_DIR, 'http-request.js');
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
// Apps Script caps one Utilities.sleep at 5 minutes.
const MAX_SLEEP_MS = 5 * 60 * 1000;
const FETCH_TIMEOUT_MS = 30 * 1000;

// --- spreadsheet -------------------------------------------------------------

function checkPositiveInteger(value, label) {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`Exception: The ${label} ${JSON.stringify(value)} is out of range; ` +
      'rows and columns start at 1.');
  }
}

class Range {
  constructor(sheet, row, column, numRows, numColumns) {
    checkPositiveInteger(row, 'starting row');
    checkPositiveInteger(column, 'starting column');
    checkPositiveInteger(numRows, 'number of rows');
    checkPositiveInteger(numColumns, 'number of columns');
    this.sheet = sheet;
    this.row = row;
    this.column = column;
    this.numRows = numRows;
    this.numColumns = numColumns;
  }

  getRow() { return this.row; }
  getColumn() { return this.column; }
  getNumRows() { return this.numRows; }
  getNumColumns() { return this.numColumns; }

  getValues() {
    const values = [];
    for (let r = 0; r < this.numRows; r++) {
      const line = [];
      for (let c = 0; c < this.numColumns; c++) {
        line.push(this.sheet.cell(this.row + r, this.column + c));
      }
      values.push(line);
    }
    return values;
  }

  getValue() {
    return this.sheet.cell(this.row, this.column);
  }

  setValues(values) {
    if (!Array.isArray(values) || values.length !== this.numRows ||
        values.some((line) => !Array.isArray(line) || line.length !== this.numColumns)) {
      throw new Error(`Exception: The number of rows or columns in the data does not match the ` +
        `range: expected ${this.numRows} x ${this.numColumns}.`);
    }
    values.forEach((line, r) => line.forEach((value, c) => {
      this.sheet.setCell(this.row + r, this.column + c, value);
    }));
    return this;
  }

  setValue(value) {
    for (let r = 0; r < this.numRows; r++) {
      for (let c = 0; c < this.numColumns; c++) {
        this.sheet.setCell(this.row + r, this.column + c, value);
      }
    }
    return this;
  }
}

class Sheet {
  constructor(name) {
    this.name = name;
    this.rows = [];
    this.writes = [];
  }

  getName() { return this.name; }

  cell(row, column) {
    const line = this.rows[row - 1];
    const value = line ? line[column - 1] : undefined;
    return value === undefined || value === null ? '' : value;
  }

  setCell(row, column, value) {
    while (this.rows.length < row) {
      this.rows.push([]);
    }
    this.rows[row - 1][column - 1] = value;
    this.writes.push({ row, column, value });
  }

  getLastRow() {
    for (let index = this.rows.length - 1; index >= 0; index--) {
      if ((this.rows[index] || []).some((value) => value !== '' && value !== undefined && value !== null)) {
        return index + 1;
      }
    }
    return 0;
  }

  getLastColumn() {
    let last = 0;
    this.rows.forEach((line) => {
      (line || []).forEach((value, index) => {
        if (value !== '' && value !== undefined && value !== null) {
          last = Math.max(last, index + 1);
        }
      });
    });
    return last;
  }

  getRange(row, column, numRows = 1, numColumns = 1) {
    return new Range(this, row, column, numRows, numColumns);
  }

  // Apps Script returns A1:A1 for an empty sheet, so getValues() gives [['']].
  getDataRange() {
    return new Range(this, 1, 1, Math.max(1, this.getLastRow()), Math.max(1, this.getLastColumn()));
  }

  appendRow(values) {
    const row = this.getLastRow() + 1;
    values.forEach((value, index) => this.setCell(row, index + 1, value));
    return this;
  }

  /** Test helper, not Apps Script: the whole used area as values. */
  snapshot() {
    return this.getDataRange().getValues();
  }
}

class Spreadsheet {
  constructor(name) {
    this.name = name;
    this.sheets = [new Sheet('Sheet1')];
    this.toasts = [];
  }

  getName() { return this.name; }
  getId() { return 'in-memory-spreadsheet'; }
  getSheets() { return this.sheets.slice(); }

  getSheetByName(name) {
    return this.sheets.find((sheet) => sheet.getName() === name) || null;
  }

  insertSheet(name) {
    if (this.getSheetByName(name)) {
      throw new Error(`Exception: A sheet with the name "${name}" already exists. ` +
        'Please enter another name.');
    }
    const sheet = new Sheet(name);
    this.sheets.push(sheet);
    return sheet;
  }

  toast(message, title, timeoutSeconds) {
    this.toasts.push({ message: String(message), title: title === undefined ? '' : String(title),
      timeoutSeconds });
  }
}

// --- user interface ----------------------------------------------------------

const BUTTON = Object.freeze({ OK: 'OK', CANCEL: 'CANCEL', YES: 'YES', NO: 'NO', CLOSE: 'CLOSE' });
const BUTTON_SET = Object.freeze({ OK: 'OK', OK_CANCEL: 'OK_CANCEL', YES_NO: 'YES_NO',
  YES_NO_CANCEL: 'YES_NO_CANCEL' });

class Menu {
  constructor(ui, title) {
    this.ui = ui;
    this.title = title;
    this.items = [];
  }

  addItem(caption, functionName) {
    this.items.push({ caption, functionName });
    return this;
  }

  addSeparator() {
    this.items.push({ separator: true });
    return this;
  }

  addToUi() {
    this.ui.menus.push({ title: this.title, items: this.items.slice() });
  }
}

class Ui {
  constructor() {
    this.menus = [];
    this.alerts = [];
    this.sidebars = [];
    this.dialogs = [];
    this.Button = BUTTON;
    this.ButtonSet = BUTTON_SET;
  }

  createMenu(title) {
    return new Menu(this, title);
  }

  // alert(prompt), alert(prompt, buttons) or alert(title, prompt, buttons).
  alert(...args) {
    let title = '';
    let prompt;
    let buttons = BUTTON_SET.OK;
    if (args.length >= 3) {
      [title, prompt, buttons] = args;
    } else if (args.length === 2 && Object.values(BUTTON_SET).includes(args[1])) {
      [prompt, buttons] = args;
    } else {
      [title, prompt] = args.length === 2 ? args : ['', args[0]];
    }
    this.alerts.push({ title: String(title), prompt: String(prompt), buttons });
    return BUTTON.OK;
  }

  showSidebar(output) {
    this.sidebars.push(output);
  }

  showModalDialog(output, title) {
    this.dialogs.push({ output, title });
  }
}

// --- properties, triggers, HTML ----------------------------------------------

class Properties {
  constructor() {
    this.values = new Map();
  }

  getProperty(key) {
    return this.values.has(key) ? this.values.get(key) : null;
  }

  setProperty(key, value) {
    this.values.set(String(key), String(value));
    return this;
  }

  deleteProperty(key) {
    this.values.delete(key);
    return this;
  }

  getProperties() {
    return Object.fromEntries(this.values);
  }
}

let triggerSequence = 0;

class Trigger {
  constructor(handlerFunction, schedule) {
    triggerSequence += 1;
    this.id = `trigger-${triggerSequence}`;
    this.handlerFunction = handlerFunction;
    this.schedule = schedule;
  }

  getHandlerFunction() { return this.handlerFunction; }
  getUniqueId() { return this.id; }
  getEventType() { return 'CLOCK'; }
}

class ClockTriggerBuilder {
  constructor(triggers, handlerFunction) {
    this.triggers = triggers;
    this.handlerFunction = handlerFunction;
    this.schedule = null;
  }

  everyHours(hours) {
    if (!Number.isInteger(hours) || hours < 1) {
      throw new Error(`Exception: everyHours(${hours}) is not valid; pass a whole number of hours.`);
    }
    this.schedule = { everyHours: hours };
    return this;
  }

  create() {
    if (!this.schedule) {
      throw new Error('Exception: The clock trigger has no schedule; call everyHours first.');
    }
    const trigger = new Trigger(this.handlerFunction, this.schedule);
    this.triggers.push(trigger);
    return trigger;
  }
}

class HtmlOutput {
  constructor(fileName, content) {
    this.fileName = fileName;
    this.content = content;
    this.title = '';
    this.width = null;
    this.height = null;
  }

  getContent() { return this.content; }
  getTitle() { return this.title; }
  getWidth() { return this.width; }
  getHeight() { return this.height; }

  setTitle(title) {
    this.title = String(title);
    return this;
  }

  setWidth(width) {
    this.width = width;
    return this;
  }

  setHeight(height) {
    this.height = height;
    return this;
  }
}

// --- URL fetch -----------------------------------------------------------------

class HTTPResponse {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  getResponseCode() { return this.status; }
  getContentText() { return this.body; }
  getHeaders() { return { ...this.headers }; }
  getAllHeaders() { return { ...this.headers }; }
}

function requireLoopback(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new Error(`Exception: Invalid argument: ${url}`);
  }
  if (!LOOPBACK_HOSTS.has(parsed.hostname)) {
    throw new Error(`The Apps Script stand-in fetches only loopback URLs, got ${JSON.stringify(url)}; ` +
      'start the server on 127.0.0.1.');
  }
}

function fetchSync(url, params, fetches) {
  requireLoopback(url);
  const options = params || {};
  const method = String(options.method || 'get').toUpperCase();
  const headers = { ...(options.headers || {}) };
  if (options.contentType) {
    headers['Content-Type'] = options.contentType;
  }
  const body = options.payload === undefined ? null : String(options.payload);
  const request = {
    url, method, headers, body,
    followRedirects: options.followRedirects !== false,
    timeoutMs: FETCH_TIMEOUT_MS,
  };
  const output = execFileSync(process.execPath, [HTTP_HELPER], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    timeout: FETCH_TIMEOUT_MS + 5000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const result = JSON.parse(output);
  const record = { url, method, headers, payload: body, status: result.status || null,
    body: result.body || null, error: result.error || null };
  fetches.push(record);

  if (result.error) {
    throw new Error(`Exception: Address unavailable: ${url} (${result.error})`);
  }
  if (result.status >= 400 && !options.muteHttpExceptions) {
    throw new Error(`Exception: Request failed for ${url} returned code ${result.status}. ` +
      `Truncated server response: ${result.body.slice(0, 200)}`);
  }
  return new HTTPResponse(result.status, result.headers, result.body);
}

// --- assembly -----------------------------------------------------------------

function sleepSync(milliseconds) {
  const buffer = new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(buffer, 0, 0, milliseconds);
}

/**
 * Create the Apps Script globals for one test. ``identityToken`` is what
 * ScriptApp.getIdentityToken returns; change it later with ``setIdentityToken``.
 * Returns the globals and the in-memory state tests inspect.
 */
export function createAppsScript({ identityToken = null, ui = true, onSleep = null } = {}) {
  const spreadsheet = new Spreadsheet('syncplan report');
  const theUi = new Ui();
  const documentProperties = new Properties();
  const userProperties = new Properties();
  const scriptProperties = new Properties();
  const triggers = [];
  const fetches = [];
  const sleeps = [];
  const logs = [];
  const state = { identityToken, ui, onSleep };

  const record = (level) => (...args) => {
    logs.push({ level, message: args.map(String).join(' ') });
  };

  const globals = {
    SpreadsheetApp: {
      getActiveSpreadsheet: () => spreadsheet,
      getActive: () => spreadsheet,
      getUi: () => {
        if (!state.ui) {
          throw new Error('Exception: Cannot call SpreadsheetApp.getUi() from this context.');
        }
        return theUi;
      },
    },
    PropertiesService: {
      getDocumentProperties: () => documentProperties,
      getUserProperties: () => userProperties,
      getScriptProperties: () => scriptProperties,
    },
    ScriptApp: {
      getIdentityToken: () => state.identityToken,
      getProjectTriggers: () => triggers.slice(),
      newTrigger: (functionName) => ({
        timeBased: () => new ClockTriggerBuilder(triggers, functionName),
      }),
      deleteTrigger: (trigger) => {
        const index = triggers.indexOf(trigger);
        if (index !== -1) {
          triggers.splice(index, 1);
        }
      },
    },
    HtmlService: {
      createHtmlOutputFromFile: (fileName) => {
        const file = path.join(ADDON_DIR, `${fileName}.html`);
        if (!existsSync(file)) {
          throw new Error(`Exception: No HTML file named ${fileName} was found.`);
        }
        return new HtmlOutput(fileName, readFileSync(file, 'utf8'));
      },
    },
    UrlFetchApp: {
      fetch: (url, params) => fetchSync(url, params, fetches),
    },
    Utilities: {
      // Apps Script returns bytes as signed 8-bit integers.
      base64DecodeWebSafe: (text) => Array.from(Buffer.from(text, 'base64url'), (byte) => (byte << 24) >> 24),
      newBlob: (data) => ({
        getDataAsString: () => (typeof data === 'string' ? data
          : Buffer.from(data.map((byte) => byte & 255)).toString('utf8')),
      }),
      sleep: (milliseconds) => {
        if (!Number.isFinite(milliseconds) || milliseconds < 0 || milliseconds > MAX_SLEEP_MS) {
          throw new Error(`Exception: Utilities.sleep(${milliseconds}) is out of range; ` +
            `sleep between 0 and ${MAX_SLEEP_MS} ms.`);
        }
        sleeps.push(milliseconds);
        if (state.onSleep) {
          state.onSleep(sleeps.length);
        }
        sleepSync(milliseconds);
      },
    },
    Logger: { log: record('log') },
    console: { log: record('log'), info: record('info'), warn: record('warn'), error: record('error') },
  };

  return {
    globals,
    spreadsheet,
    ui: theUi,
    documentProperties,
    triggers,
    fetches,
    sleeps,
    logs,
    setIdentityToken(token) { state.identityToken = token; },
    setUiAvailable(available) { state.ui = available; },
    setOnSleep(callback) { state.onSleep = callback; },
  };
}

/**
 * Run Code.gs in a new vm context made of ``appsScript.globals``. Returns the
 * context: its functions are Code.gs's functions, and ``evaluate`` reads the
 * script's top-level constants, which are not properties of the context.
 */
export function loadAddon(appsScript) {
  const context = vm.createContext({ ...appsScript.globals });
  const source = readFileSync(path.join(ADDON_DIR, 'Code.gs'), 'utf8');
  vm.runInContext(source, context, { filename: 'Code.gs' });
  context.evaluate = (expression) => vm.runInContext(expression, context);
  return context;
}
