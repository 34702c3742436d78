// record_relay.js LISTEN_PORT_FILE UPSTREAM_PORT DIR: a TCP relay that
// forwards every connection to 127.0.0.1:UPSTREAM_PORT unchanged and writes
// what passes, per connection and direction, to DIR/conn-N.c2s / .s2c. It
// stands where a capture of nginx's upstream side would be taken: whatever
// nginx (the TLS-terminating proxy) hands to the service passes through here.
'use strict';
const net = require('net');
const fs = require('fs');
const path = require('path');
const [portFile, upstreamPort, dir] = process.argv.slice(2);
let n = 0;
const server = net.createServer((client) => {
  const id = n++;
  const c2s = fs.createWriteStream(path.join(dir, `conn-${id}.c2s`));
  const s2c = fs.createWriteStream(path.join(dir, `conn-${id}.s2c`));
  const up = net.connect(Number(upstreamPort), '127.0.0.1');
  client.on('data', (d) => { c2s.write(d); up.write(d); });
  up.on('data', (d) => { s2c.write(d); client.write(d); });
  client.on('end', () => up.end());
  up.on('end', () => client.end());
  const done = () => { client.destroy(); up.destroy(); c2s.end(); s2c.end(); };
  client.on('error', done); up.on('error', done);
  client.on('close', done); up.on('close', done);
});
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(portFile, String(server.address().port));
});
process.on('SIGTERM', () => process.exit(0));
