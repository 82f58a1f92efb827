// The IoT Hub cases of node-cases.js (issue 24): after provisioning, the official Node.js device client
// (azure-iot-device with azure-iot-device-mqtt and azure-iot-device-amqp, pinned in package.json) connects to
// the hub DPS assigned (the emulator's own), sends telemetry, reads its twin, patches a reported property and
// reads it back from the hub, and closes. Every message it sent must then be kept by the emulator, read with
// its service call `GET /devices/{id}/messages/events` (a service SAS token of the fixture's policy).
'use strict';

const crypto = require('crypto');
const https = require('https');
const { Client, Message, SharedAccessKeyAuthenticationProvider } = require('azure-iot-device');
const DeviceMqtt = require('azure-iot-device-mqtt');
const DeviceAmqp = require('azure-iot-device-amqp');

const TRANSPORTS = {
  mqtt: DeviceMqtt.Mqtt,
  'mqtt-ws': DeviceMqtt.MqttWs,
  amqp: DeviceAmqp.Amqp,
  'amqp-ws': DeviceAmqp.AmqpWs,
};
const MESSAGES_PER_CASE = 2;
// The renewal case: tokens valid 6 s, renewed 3 s before they expire (every 3 s), RENEWALS times.
const TOKEN_VALID_S = 6;
const TOKEN_MARGIN_S = 3;
const RENEWALS = 3;

// A node-style call as a promise: `call(cb)` with cb(err, value).
function promised(call) {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value))));
}

function serviceSas(host, policy, key) {
  const expiry = Math.floor(Date.now() / 1000) + 300;
  const resource = encodeURIComponent(host);
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${resource}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${resource}&sig=${encodeURIComponent(sig)}&se=${expiry}&skn=${policy}`;
}

// The D2C messages the emulator's hub kept for a device (its service call over HTTPS on port 443).
function keptMessages(fx, deviceId) {
  const { host, policy, key } = fx.hubReader;
  const options = {
    host,
    port: 443,
    path: `/devices/${encodeURIComponent(deviceId)}/messages/events?api-version=2021-10-01`,
    ca: fx.serverCa,
    headers: { Authorization: serviceSas(host, policy, key) },
  };
  return new Promise((resolve, reject) => {
    https.get(options, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`messages/events: ${res.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body).map((m) => ({
            properties: Object.fromEntries(m.properties),
            body: Buffer.from(m.body, 'base64').toString('utf8'),
          })));
        } catch (e) {
          reject(e);
        }
      });
    }).on('error', reject);
  });
}

// Connect, send MESSAGES_PER_CASE messages, read the twin, patch and read back a reported property, close;
// then the hub must have kept exactly those messages of this run, in order.
async function hubSession(fx, check, kind, connectionString, options, caseName) {
  const client = Client.fromConnectionString(connectionString, TRANSPORTS[kind]);
  const run = crypto.randomBytes(6).toString('hex');
  let open = false;
  try {
    await promised((cb) => client.setOptions({ ca: fx.serverCa, ...options }, cb));
    await promised((cb) => client.open(cb));
    open = true;
    for (let seq = 1; seq <= MESSAGES_PER_CASE; seq += 1) {
      const message = new Message(JSON.stringify({ case: caseName, seq }));
      message.properties.add('run', run);
      message.properties.add('seq', String(seq));
      message.contentType = 'application/json';
      await promised((cb) => client.sendEvent(message, cb));
    }
    const twin = await promised((cb) => client.getTwin(cb));
    check(twin.properties && twin.properties.reported, 'the twin has no reported properties');
    const before = twin.properties.reported.$version;
    await promised((cb) => twin.properties.reported.update({ officialSdk: { run, transport: kind } }, cb));
    const again = await promised((cb) => twin.get(cb));
    const reported = again.properties.reported;
    check(reported.officialSdk && reported.officialSdk.run === run,
      `the reported property did not read back: ${JSON.stringify(reported)}`);
    check(reported.$version > before, `reported $version ${reported.$version} after ${before}`);
    await promised((cb) => client.close(cb));
    open = false;
  } finally {
    if (open) client.close(() => {});
  }
  const deviceId = /DeviceId=([^;]*)/.exec(connectionString)[1];
  const kept = await checkKept(fx, check, deviceId, run, MESSAGES_PER_CASE);
  for (const m of kept) check(m.properties['$.ct'] === 'application/json', `content type ${m.properties['$.ct']}`);
}

// The hub's kept messages of `run` for a device: exactly `count`, seq 1..count in order.
async function checkKept(fx, check, deviceId, run, count) {
  const kept = (await keptMessages(fx, deviceId)).filter((m) => m.properties.run === run);
  check(kept.length === count, `the hub kept ${kept.length} of the ${count} messages sent`);
  kept.forEach((m, i) => {
    check(m.properties.seq === String(i + 1) && JSON.parse(m.body).seq === i + 1, `kept message ${i}: ${JSON.stringify(m)}`);
  });
  return kept;
}

// A SAS token device stays connected across token renewals: the authentication provider renews its short
// token every TOKEN_VALID_S - TOKEN_MARGIN_S seconds and the transport re-authenticates with each new one
// (MQTT: a new CONNECT before the hub drops the old token; AMQP: a new CBS put-token); a message after each
// renewal is kept, and the client never reports a disconnection.
async function renewalSession(h, kind) {
  const device = `node-hub-${kind}-renewal-device`;
  const key = h.deriveKey(h.fx.symGroupKey, device);
  const result = await h.register(kind, new h.SymmetricKeySecurityClient(device, key));
  const cs = `HostName=${result.assignedHub};DeviceId=${result.deviceId};SharedAccessKey=${key}`;
  const provider = SharedAccessKeyAuthenticationProvider.fromConnectionString(cs, TOKEN_VALID_S, TOKEN_MARGIN_S);
  const client = Client.fromAuthenticationProvider(provider, TRANSPORTS[kind]);
  const run = crypto.randomBytes(6).toString('hex');
  const disconnects = [];
  client.on('disconnect', (e) => disconnects.push(e));
  client.on('error', (e) => disconnects.push(e));
  const send = (seq) => {
    const message = new Message(JSON.stringify({ case: `renewal-${kind}`, seq }));
    message.properties.add('run', run);
    message.properties.add('seq', String(seq));
    return promised((cb) => client.sendEvent(message, cb));
  };
  let open = false;
  try {
    await promised((cb) => client.setOptions({ ca: h.fx.serverCa }, cb));
    await promised((cb) => client.open(cb));
    open = true;
    await send(1);
    for (let renewal = 1; renewal <= RENEWALS; renewal += 1) {
      await new Promise((resolve) => provider.once('newTokenAvailable', resolve));
      await send(renewal + 1);
    }
    await promised((cb) => client.close(cb));
    open = false;
  } finally {
    if (open) client.close(() => {});
  }
  h.check(disconnects.length === 0, `the client was disconnected: ${disconnects.map(String).join('; ')}`);
  await checkKept(h.fx, h.check, result.deviceId, run, RENEWALS + 1);
}

// Provision over `kind` (DPS has the same four transports), then the hub session over `kind`.
async function provisionedHubSession(h, kind, security, key, x509) {
  const result = await h.register(kind, security);
  h.check(result.assignedHub === h.fx.assignedHub, `assignedHub ${result.assignedHub}`);
  const auth = x509 ? 'x509=true' : `SharedAccessKey=${key}`;
  const cs = `HostName=${result.assignedHub};DeviceId=${result.deviceId};${auth}`;
  await hubSession(h.fx, h.check, kind, cs, x509 || {}, `${kind}-${result.deviceId}`);
}

// h: { run, check, register, deriveKey, fx, SymmetricKeySecurityClient, X509Security }.
async function hubCases(h) {
  for (const kind of Object.keys(TRANSPORTS)) {
    const device = `node-hub-${kind}-device`;
    const key = h.deriveKey(h.fx.symGroupKey, device);
    await h.run(`hub ${kind} symmetric group key`, () =>
      provisionedHubSession(h, kind, new h.SymmetricKeySecurityClient(device, key), key, null));
    const leaf = h.fx.x509GroupDevices[`node-${kind}`];
    const x509 = { cert: leaf.cert, key: leaf.key };
    await h.run(`hub ${kind} x509 group`, () =>
      provisionedHubSession(h, kind, new h.X509Security(leaf.id, x509), null, x509));
  }
  for (const kind of ['mqtt', 'amqp']) {
    await h.run(`hub ${kind} ${RENEWALS} SAS token renewals`, () => renewalSession(h, kind));
  }
  // A device the hub knows, with a SAS token signed by another key: refused at CONNECT (MQTT) or at the
  // put-token (AMQP).
  for (const kind of ['mqtt', 'amqp']) {
    await h.run(`hub ${kind} wrong device key refused`, async () => {
      const device = `node-hub-${kind}-device`;
      const wrong = Buffer.alloc(32, 9).toString('base64');
      const client = Client.fromConnectionString(
        `HostName=${h.fx.assignedHub};DeviceId=${device};SharedAccessKey=${wrong}`, TRANSPORTS[kind]);
      await promised((cb) => client.setOptions({ ca: h.fx.serverCa }, cb));
      let error;
      try {
        await promised((cb) => client.open(cb));
      } catch (e) {
        error = e;
      }
      if (!error) await promised((cb) => client.close(cb));
      h.check(error && /Unauthorized|not authorized/i.test(`${error.name} ${error.message}`),
        `a wrong key: ${error ? `${error.name} ${error.message}` : 'accepted'}`);
    });
  }
}

module.exports = { hubCases };
