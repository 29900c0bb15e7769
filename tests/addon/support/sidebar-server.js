// A loopback HTTP server that serves the add-on's HTML pages the way Apps Script
// would, and runs their google.script.run calls against Code.gs in this process.
//
// GET /Sidebar.html and /Settings.html return the files of sheets_addon/apps_script.
// POST /gas/NAME with {"args": [...]} calls the Code.gs function NAME through the
// Apps Script stand-in, whose UrlFetchApp reaches the real backend, and responds
// with 200 {"ok": true, "value": ...} or, when the function throws, 200 {"ok": false,
// "error": {"message"}}. A thrown error is a result of the call, not an HTTP failure,
// so the browser logs nothing for it. As in Apps Script, names ending in "_" and
// names Code.gs does not define cannot be called.
// Also launches Debian's Chromium through playwright-core with a fresh profile.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { ADDON_DIR, createAppsScript, loadAddon } from './apps-script.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const PAGES = new Set(['Sidebar.html', 'Settings.html']);
const MAX_BODY_BYTES = 1024 * 1024;

function send(response, status, type, body) {
  response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  response.end(body);
}

function sendJson(response, status, value) {
  send(response, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`request body over ${MAX_BODY_BYTES} bytes`));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function serverFunctionNames(addon, globals) {
  return new Set(Object.keys(addon).filter((name) => typeof addon[name] === 'function' &&
    !name.endsWith('_') && name !== 'evaluate' && !(name in globals)));
}

/**
 * Start the page server for one Apps Script stand-in. ``calls`` records every
 * google.script.run call: {name, args, ok}.
 */
export async function startPageServer({ identityToken, backendUrl }) {
  const appsScript = createAppsScript({ identityToken });
  const addon = loadAddon(appsScript);
  appsScript.documentProperties.setProperty('syncplan.backendUrl', backendUrl);
  const callable = serverFunctionNames(addon, appsScript.globals);
  const calls = [];

  async function handleCall(request, response, name) {
    if (!callable.has(name)) {
      sendJson(response, 200, { ok: false, error: { message: `Script function not found: ${name}` } });
      return;
    }
    const { args } = JSON.parse(await readBody(request) || '{"args": []}');
    try {
      const value = addon[name](...args);
      calls.push({ name, args, ok: true });
      sendJson(response, 200, { ok: true, value: value === undefined ? null : value });
    } catch (error) {
      calls.push({ name, args, ok: false, message: error.message });
      sendJson(response, 200, { ok: false, error: { message: error.message } });
    }
  }

  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    const page = url.pathname.slice(1);
    if (request.method === 'GET' && PAGES.has(page)) {
      send(response, 200, 'text/html; charset=utf-8', readFileSync(path.join(ADDON_DIR, page)));
      return;
    }
    if (request.method === 'GET' && url.pathname === '/favicon.ico') {
      // Chromium requests it for every page, and Apps Script pages have none.
      response.writeHead(204);
      response.end();
      return;
    }
    if (request.method === 'POST' && url.pathname.startsWith('/gas/')) {
      handleCall(request, response, decodeURIComponent(url.pathname.slice('/gas/'.length)))
        .catch((error) => sendJson(response, 400, { error: { message: error.message } }));
      return;
    }
    sendJson(response, 404, { error: { message: `no page ${url.pathname}` } });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${server.address().port}`,
    appsScript,
    addon,
    calls,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Launch headless Chromium with a fresh profile that is deleted on close. The
 * viewport is 300 px wide, the width of a Sheets sidebar.
 */
export async function launchBrowser() {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'syncplan-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 300, height: 760 },
    locale: 'en-GB',
    timezoneId: 'Europe/London',
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
