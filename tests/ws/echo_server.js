// tests/ws/echo_server.js: the npm `ws` package's server, for our C client
// tests and the benchmark. Prints "port N" once listening on 127.0.0.1.
//   /echo (any path): echoes each message with its type
//   /badaccept: answers the handshake with a wrong Sec-WebSocket-Accept
//   /refuse: refuses the upgrade with 403
//   /close: the server starts the closing handshake (4001 "server says bye")
// Offered subprotocols: picks "chat.v2" when offered.
'use strict';
const WebSocket = require('ws');

const wss = new WebSocket.Server({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 256 << 20,
  perMessageDeflate: false,
  verifyClient: (info) => !info.req.url.startsWith('/refuse'),
  handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
});
wss.on('headers', (headers, req) => {
  if (!req.url.startsWith('/badaccept')) return;
  for (let i = 0; i < headers.length; i++)
    if (/^sec-websocket-accept:/i.test(headers[i])) headers[i] = 'Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=';
});
wss.on('connection', (ws, req) => {
  if (req.url.startsWith('/close')) { ws.close(4001, 'server says bye'); return; }
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(`port ${wss.address().port}`));
process.on('SIGTERM', () => { for (const c of wss.clients) c.terminate(); wss.close(() => process.exit(0)); });
