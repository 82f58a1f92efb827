// The official Azure IoT Node.js provisioning SDKs and device client (pinned in package.json) against
// dps-emulator, run by scripts/official-sdks.sh inside a network namespace where the emulator serves
// localhost:443, :8883 and :5671 (AMQP, issue 23); its IoT Hub (the assigned hub, localhost) in
// node-hub-cases.js.
// Input: the JSON file named by OFFICIAL_SDKS_FIXTURE (written by the script). Output: one line per case,
// "PASS name" or "FAIL name: reason". Every case has a deadline: an SDK promise that never settles would
// otherwise end the process with exit code 0 and read as success.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { Mqtt, MqttWs } = require('azure-iot-provisioning-device-mqtt');
const { Amqp, AmqpWs } = require('azure-iot-provisioning-device-amqp');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { hubCases } = require('./node-hub-cases');

const fx = JSON.parse(fs.readFileSync(process.env.OFFICIAL_SDKS_FIXTURE, 'utf8'));
const HOST = 'localhost';
const CASE_DEADLINE_MS = 30000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

let passed = 0;
let failed = 0;
async function run(name, body) {
  try {
    await withDeadline(Promise.resolve().then(body), CASE_DEADLINE_MS, name);
    passed += 1;
    console.log(`PASS node ${name}`);
  } catch (e) {
    failed += 1;
    // Some SDK errors are plain objects (the AMQP transport's registration failures): show their JSON.
    let text = (e && e.message) || String(e);
    if (text === '[object Object]') text = JSON.stringify(e);
    console.log(`FAIL node ${name}: ${text.split('\n')[0]}`);
  }
}

function deriveKey(groupKey, registrationId) {
  return crypto.createHmac('sha256', Buffer.from(groupKey, 'base64')).update(registrationId).digest('base64');
}

function transport(kind) {
  switch (kind) {
    case 'http': return new Http();
    case 'mqtt': return new Mqtt();
    case 'mqtt-ws': return new MqttWs();
    case 'amqp': return new Amqp();
    case 'amqp-ws': return new AmqpWs();
    default: throw new Error(`unknown transport ${kind}`);
  }
}

function register(kind, security) {
  const client = ProvisioningDeviceClient.create(HOST, fx.idScope, transport(kind), security);
  return new Promise((resolve, reject) => {
    client.register((err, result) => (err ? reject(err) : resolve(result)));
  });
}

async function expectAssigned(kind, security, registrationId, deviceId) {
  const result = await register(kind, security);
  check(result.assignedHub === fx.assignedHub, `assignedHub ${result.assignedHub}`);
  check(result.deviceId === (deviceId || registrationId), `deviceId ${result.deviceId}`);
}

// Status of a rejected service call (the SDK's errors carry the HTTP response).
function statusOf(err) {
  return (err && (err.response && err.response.statusCode)) || (err && err.statusCode) || (err && err.name);
}

async function expectRefused(promise, status, what) {
  let outcome;
  try {
    await promise;
    outcome = 'accepted';
  } catch (e) {
    outcome = statusOf(e);
  }
  check(outcome === status || String(outcome).includes(String(status)), `${what}: expected ${status}, got ${outcome}`);
}

// Every page of a query with page size 2, paging with the continuation token as Node's Query needs.
async function allPages(query) {
  const items = [];
  let token;
  for (let pages = 0; pages < 100; pages += 1) {
    const page = await query.next(token);
    items.push(...page.responseBody);
    token = query.continuationToken;
    if (!query.hasMoreResults) return { items, pages: pages + 1 };
  }
  throw new Error('more than 100 pages');
}

async function deviceCases() {
  const x509 = { cert: fx.x509Individual.cert, key: fx.x509Individual.key };
  for (const kind of ['http', 'mqtt', 'mqtt-ws', 'amqp', 'amqp-ws']) {
    await run(`device ${kind} symmetric individual`, () =>
      expectAssigned(kind, new SymmetricKeySecurityClient(fx.symIndividual.id, fx.symIndividual.key),
        fx.symIndividual.id));
    const groupDevice = `node-${kind}-group-device`;
    await run(`device ${kind} symmetric group`, () =>
      expectAssigned(kind, new SymmetricKeySecurityClient(groupDevice, deriveKey(fx.symGroupKey, groupDevice)),
        groupDevice));
    await run(`device ${kind} x509 individual`, () =>
      expectAssigned(kind, new X509Security(fx.x509Individual.id, x509), fx.x509Individual.id));
    const leaf = fx.x509GroupDevices[`node-${kind}`];
    await run(`device ${kind} x509 group`, () =>
      expectAssigned(kind, new X509Security(leaf.id, { cert: leaf.cert, key: leaf.key }), leaf.id));
  }
  for (const kind of ['http', 'amqp', 'amqp-ws']) {
    await run(`device ${kind} wrong symmetric key refused`, async () => {
      const wrong = Buffer.alloc(32, 7).toString('base64');
      let error;
      try {
        await register(kind, new SymmetricKeySecurityClient(fx.symIndividual.id, wrong));
      } catch (e) {
        error = e;
      }
      check(error, 'a wrong key was accepted');
    });
  }
}

async function serviceCases() {
  const service = ProvisioningServiceClient.fromConnectionString(fx.serviceConnectionString);
  const key = () => crypto.randomBytes(32).toString('base64');
  // runBulkEnrollmentOperation's promise never settles in 1.11.2 (it answers only a callback): call it so.
  const bulk = (operation) => new Promise((resolve, reject) => {
    service.runBulkEnrollmentOperation(operation, (err, result, response) =>
      (err ? reject(err) : resolve({ responseBody: result, httpResponse: response })));
  });
  const symmetric = () => ({ type: 'symmetricKey', symmetricKey: { primaryKey: key(), secondaryKey: key() } });

  await run('service individual create/get/update/delete with etags', async () => {
    const id = 'node-svc-individual';
    const created = (await service.createOrUpdateIndividualEnrollment({
      registrationId: id, attestation: symmetric(), provisioningStatus: 'enabled',
    })).responseBody;
    check(created.etag, 'no etag on create');
    const got = (await service.getIndividualEnrollment(id)).responseBody;
    check(got.etag === created.etag, 'get answers another etag');
    got.provisioningStatus = 'disabled';
    const updated = (await service.createOrUpdateIndividualEnrollment(got)).responseBody;
    check(updated.provisioningStatus === 'disabled' && updated.etag !== created.etag, 'update not applied');
    const stale = { ...updated, etag: created.etag, provisioningStatus: 'enabled' };
    await expectRefused(service.createOrUpdateIndividualEnrollment(stale), 412, 'an update with a stale etag');
    await expectRefused(service.deleteIndividualEnrollment(id, created.etag), 412, 'a delete with a stale etag');
    await service.deleteIndividualEnrollment(id, updated.etag);
    await expectRefused(service.getIndividualEnrollment(id), 404, 'get after delete');
  });

  await run('service group create/get/update/delete with etags', async () => {
    const id = 'node-svc-group';
    const created = (await service.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: id, attestation: symmetric(),
    })).responseBody;
    const got = (await service.getEnrollmentGroup(id)).responseBody;
    check(got.etag === created.etag, 'get answers another etag');
    got.provisioningStatus = 'disabled';
    const updated = (await service.createOrUpdateEnrollmentGroup(got)).responseBody;
    check(updated.provisioningStatus === 'disabled', 'update not applied');
    await expectRefused(service.createOrUpdateEnrollmentGroup({ ...updated, etag: created.etag }), 412,
      'an update with a stale etag');
    await expectRefused(service.deleteEnrollmentGroup(id, created.etag), 412, 'a delete with a stale etag');
    await service.deleteEnrollmentGroup(id, updated.etag);
    await expectRefused(service.getEnrollmentGroup(id), 404, 'get after delete');
  });

  const bulkIds = ['node-bulk-1', 'node-bulk-2', 'node-bulk-3', 'node-bulk-4', 'node-bulk-5'];
  await run('service bulk create, update, delete with a partial failure', async () => {
    const make = (id) => ({ registrationId: id, attestation: symmetric() });
    const created = (await bulk({
      mode: 'create', enrollments: bulkIds.map(make),
    })).responseBody;
    check(created.isSuccessful === true, `bulk create: ${JSON.stringify(created)}`);
    const again = (await bulk({
      mode: 'create', enrollments: [make('node-bulk-new'), make(bulkIds[0])],
    })).responseBody;
    check(again.isSuccessful === false && again.errors.length === 1 && again.errors[0].registrationId === bulkIds[0],
      `partial failure: ${JSON.stringify(again)}`);
    await service.getIndividualEnrollment('node-bulk-new');
    const current = (await service.getIndividualEnrollment(bulkIds[1])).responseBody;
    const updated = (await bulk({
      mode: 'update', enrollments: [{ ...current, provisioningStatus: 'disabled' }],
    })).responseBody;
    check(updated.isSuccessful === true, `bulk update: ${JSON.stringify(updated)}`);
    const after = (await service.getIndividualEnrollment(bulkIds[1])).responseBody;
    check(after.provisioningStatus === 'disabled', 'bulk update not applied');
    const deleted = (await bulk({
      mode: 'delete', enrollments: [make('node-bulk-new'), make('node-bulk-absent')],
    })).responseBody;
    check(deleted.isSuccessful === false && deleted.errors.length === 1, `bulk delete: ${JSON.stringify(deleted)}`);
    await expectRefused(service.getIndividualEnrollment('node-bulk-new'), 404, 'get after bulk delete');
  });

  await run('service individual query paged by 2 to the end', async () => {
    const stored = (await allPages(service.createIndividualEnrollmentQuery({ query: 'SELECT * FROM enrollments' }, 2)));
    const ids = stored.items.map((e) => e.registrationId);
    for (const id of bulkIds) check(ids.includes(id), `query misses ${id}`);
    check(new Set(ids).size === ids.length, 'a record came twice');
    check(stored.pages >= Math.ceil(ids.length / 2), `${stored.pages} pages for ${ids.length} records`);
  });

  await run('service group query paged by 2 to the end', async () => {
    for (const n of [1, 2, 3]) {
      await service.createOrUpdateEnrollmentGroup({ enrollmentGroupId: `node-query-group-${n}`, attestation: symmetric() });
    }
    const stored = await allPages(service.createEnrollmentGroupQuery({ query: 'SELECT * FROM enrollmentGroups' }, 2));
    const ids = stored.items.map((g) => g.enrollmentGroupId);
    for (const n of [1, 2, 3]) check(ids.includes(`node-query-group-${n}`), `query misses group ${n}`);
    check(stored.pages >= 2, `${stored.pages} pages`);
  });

  await run('service enrollment deviceId is the assigned deviceId', async () => {
    const id = 'node-named-device';
    const primary = key();
    await service.createOrUpdateIndividualEnrollment({
      registrationId: id, deviceId: 'the-named-device-id',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: primary, secondaryKey: key() } },
    });
    await expectAssigned('http', new SymmetricKeySecurityClient(id, primary), id, 'the-named-device-id');
  });

  await run('service registration state get, query, delete', async () => {
    const state = (await service.getDeviceRegistrationState(fx.symIndividual.id)).responseBody;
    check(state.registrationId === fx.symIndividual.id && state.status === 'assigned', JSON.stringify(state));
    const query = service.createEnrollmentGroupDeviceRegistrationStateQuery(
      { query: 'SELECT * FROM enrollments' }, fx.symGroupId, 2);
    const states = await allPages(query);
    const ids = states.items.map((s) => s.registrationId);
    for (const kind of ['http', 'mqtt', 'mqtt-ws']) {
      check(ids.includes(`node-${kind}-group-device`), `the group's states miss node-${kind}-group-device`);
    }
    await expectRefused(service.deleteDeviceRegistrationState(fx.symIndividual.id, '"stale-etag"'), 412,
      'a delete with a stale etag');
    await service.deleteDeviceRegistrationState(fx.symIndividual.id, state.etag);
    await expectRefused(service.getDeviceRegistrationState(fx.symIndividual.id), 404, 'get after delete');
  });

  await run('service wrong key refused', async () => {
    const wrong = ProvisioningServiceClient.fromConnectionString(fx.wrongServiceConnectionString);
    await expectRefused(wrong.getIndividualEnrollment(bulkIds[0]), 401, 'a wrong service key');
  });
}

async function main() {
  // Keeps the event loop alive until the last case has settled.
  const alive = setInterval(() => {}, 1000);
  await deviceCases();
  await hubCases({ run, check, register, deriveKey, fx, SymmetricKeySecurityClient, X509Security });
  await serviceCases();
  clearInterval(alive);
  console.log(`node: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL node (the program itself): ${e && e.stack}`);
  process.exit(1);
});
