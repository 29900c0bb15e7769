// A loopback server that responds like a misconfigured backend, for the error
// paths of Code.gs. Run it as a child process (UrlFetchApp's stand-in blocks this
// process while it waits, so a server in the test process could never respond).
// It prints its port on stdout, then serves, under any of these prefixes,
// PREFIX/api/v1/flows:
//   /redirect    302 to /elsewhere/api/v1/flows on the same server
//   /elsewhere   200 {"flows": []}, counting each request it receives
//   /html        502 with an HTML body
//   /text        200 with a body that is not JSON
// and GET /hits returns {"elsewhere": N}.

import http from 'node:http';

let elsewhereHits = 0;

const server = http.createServer((request, response) => {
  const port = server.address().port;
  const path = new URL(request.url, 'http://127.0.0.1').pathname;
  if (path === '/hits') {
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ elsewhere: elsewhereHits }));
  } else if (path === '/redirect/api/v1/flows') {
    response.writeHead(302, { Location: `http://127.0.0.1:${port}/elsewhere/api/v1/flows` });
    response.end();
  } else if (path === '/elsewhere/api/v1/flows') {
    elsewhereHits += 1;
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end('{"flows": []}');
  } else if (path === '/html/api/v1/flows') {
    response.writeHead(502, { 'Content-Type': 'text/html' });
    response.end('<html><body>Bad gateway</body></html>');
  } else if (path === '/text/api/v1/flows') {
    response.writeHead(200, { 'Content-Type': 'text/plain' });
    response.end('hello from some other site');
  } else {
    response.writeHead(404, { 'Content-Type': 'text/plain' });
    response.end('not found');
  }
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
