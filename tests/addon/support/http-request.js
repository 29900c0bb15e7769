// Send one HTTP request described by the JSON on stdin and print the response as
// JSON on stdout: {status, headers, body} or {error}. The Apps Script stand-in
// runs this file with execFileSync, because UrlFetchApp.fetch is synchronous and
// Node has no synchronous HTTP client. It always exits 0 so that the caller can
// tell a transport error (printed as {error}) from a crash of this helper.

import { readFileSync } from 'node:fs';

async function main() {
  const request = JSON.parse(readFileSync(0, 'utf8'));
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body === null ? undefined : request.body,
      redirect: request.followRedirects ? 'follow' : 'manual',
      signal: AbortSignal.timeout(request.timeoutMs),
    });
    const headers = {};
    response.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const body = await response.text();
    process.stdout.write(JSON.stringify({ status: response.status, headers, body }));
  } catch (error) {
    const cause = error.cause && error.cause.message ? `: ${error.cause.message}` : '';
    process.stdout.write(JSON.stringify({ error: `${error.message}${cause}` }));
  }
}

await main();
