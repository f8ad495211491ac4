#!/usr/bin/env node
// One node of HQ's MQTT broker: aedes, with every piece of session state in Redis so that any
// node can carry on what another one was doing.
//
//   node hq/broker.js --port 1883 --redis redis://127.0.0.1:6379/0 --id hq-a
//
// (or MCW_HQ_PORT, MCW_HQ_REDIS_URL, MCW_HQ_NODE_ID, MCW_HQ_HOST, MCW_HQ_HEARTBEAT_MS).
//
// * aedes-persistence-redis keeps the sessions (subscriptions of cleansession=false clients),
//   retained messages, wills and the QoS 1 queue of every persistent session in Redis, shared by
//   every node; mqemitter-redis carries each published message to the nodes whose clients
//   subscribe to it (Redis pub/sub).
// * Four things aedes 1.2.0 does that lose or misorder messages in this setting are changed
//   here (each explained where it is done, tested by hil-tests/test_hq_cluster_hil.py, and to be
//   checked again at any upgrade of aedes: they reach into its internals):
//   - a QoS 1 PUBLISH is acknowledged only once Redis has it (aedes answers first, stores after);
//   - its per-client duplicate filter, which drops messages that Redis round trips reordered,
//     is off;
//   - a resumed persistent session gets its queue before newer messages;
//   - the will a client left with a dead node is published before it connects again elsewhere,
//     not after (a van's bridge would otherwise look down at HQ while it is up).
// * A van (client id mcw-<vehicle>) may publish and subscribe under mcw/v1/<vehicle>/ only.
// * One JSON line on stdout when listening; SIGTERM/SIGINT close it cleanly (exit 0).
//
// MQTT 3.1.1 (and 3.1) over plain TCP: TLS for the vans is terminated in front of the nodes or
// by a TLS listener (docs/hq.md).

import net from 'node:net'
import { parseArgs } from 'node:util'
import { Aedes } from 'aedes'
import mqttPacket from 'mqtt-packet'
import redisPersistence from 'aedes-persistence-redis'
import mqemitterRedis from 'mqemitter-redis'

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.MCW_HQ_PORT ?? '1883' },
    host: { type: 'string', default: process.env.MCW_HQ_HOST ?? '127.0.0.1' },
    redis: { type: 'string', default: process.env.MCW_HQ_REDIS_URL ?? 'redis://127.0.0.1:6379/0' },
    id: { type: 'string', default: process.env.MCW_HQ_NODE_ID ?? `hq-${process.pid}` },
    // a dead node's clients get their wills published by the others 3-4 heartbeats later
    'heartbeat-ms': { type: 'string', default: process.env.MCW_HQ_HEARTBEAT_MS ?? '2000' },
    // a line per client connection and disconnection (the tests; noisy with a fleet)
    'log-clients': { type: 'boolean', default: process.env.MCW_HQ_LOG_CLIENTS === '1' }
  }
})

const nodeId = args.id
const port = Number.parseInt(args.port, 10)
const heartbeatMs = Number.parseInt(args['heartbeat-ms'], 10)
const logClients = args['log-clients']

function log (fields) {
  process.stdout.write(JSON.stringify({ hq: nodeId, ts: new Date().toISOString(), ...fields }) + '\n')
}

// ---- PUBACK only after the message is in Redis ---------------------------------------------
// aedes 1.x answers a QoS 1 PUBLISH with PUBACK first and publishes (stores the retained copy,
// enqueues it for every persistent session, fans it out) afterwards. The PUBACK is held here
// until aedes calls `published` for that packet, which it does after those steps succeeded;
// when one fails the client is disconnected and never gets the PUBACK, so it sends it again.
// aedes writes every packet through mqtt-packet's writeToStream on the client's socket.
const PENDING = Symbol('pending QoS 1 publishes')
const HELD = Symbol('held PUBACKs')
const writeToStream = mqttPacket.writeToStream

mqttPacket.writeToStream = function holdPubacks (packet, stream, opts) {
  const client = stream.client
  if (packet.cmd === 'puback' && client && client[PENDING]?.has(packet.messageId)) {
    client[HELD].set(packet.messageId, opts)
    return true // nothing written yet: aedes must not wait for a drain
  }
  return writeToStream(packet, stream, opts)
}

function expectPuback (client, packet) {
  if (!client[PENDING]) {
    client[PENDING] = new Set()
    client[HELD] = new Map()
  }
  client[PENDING].add(packet.messageId)
}

function releasePuback (client, packet) {
  if (!client?.[PENDING]?.delete(packet.messageId)) return
  const held = client[HELD]
  if (!held.has(packet.messageId)) return
  const opts = held.get(packet.messageId)
  held.delete(packet.messageId)
  if (!client.closed && !client.conn.destroyed) {
    writeToStream({ cmd: 'puback', messageId: packet.messageId }, client.conn, opts)
  }
}

// ---- a resumed session gets its queue before anything new ---------------------------------
// When a persistent session resumes, aedes restores its subscriptions (new messages start to
// flow) and only then sends the queue it kept in Redis, so a message published during the
// resumption overtakes older queued ones: HQ would see events out of order. Here the new ones
// wait until the queue has been sent (the client's `connected` event). Every one of them is in
// the session's Redis queue as well, so a connection that fails meanwhile loses nothing.
const RESUMING = Symbol('messages held while the queue is sent')

// aedes drops a message for a client when it has already forwarded a later-numbered message of
// the same node to that client (its guard against overlapping subscriptions delivering one
// message twice). That assumes a node fans its messages out in the order it numbers them; with
// Redis round trips it does not (a retained message waits for its store, a message for a
// persistent session for its queue), and a client subscribed to both lost the earlier one.
// Here every message is forwarded: overlapping subscriptions may bring a message twice, which
// QoS 1 allows (HQ knows an event by its id).
const NO_DUPLICATE_FILTER = new Proxy(Object.create(null), {
  get: () => 0,
  set: () => true,
  deleteProperty: () => true
})

function preConnect (client, packet, callback) {
  client.duplicates = NO_DUPLICATE_FILTER
  if (packet.clean === false) {
    const deliver = client.deliverQoS
    client[RESUMING] = []
    client.deliverQoS = function deliverAfterQueue (pkt, cb) {
      const held = client[RESUMING]
      if (held === null) return deliver(pkt, cb)
      held.push(pkt)
      cb() // aedes' emitter waits for this; the packet is ours now
    }
    client.once('connected', () => {
      const held = client[RESUMING]
      client[RESUMING] = null
      for (const pkt of held) deliver(pkt, noop)
    })
  }
  takeOverWills(packet.clientId).then(() => callback(null, true), (err) => callback(err, false))
}

// ---- the will of a connection lost with a dead node ---------------------------------------
// aedes publishes the wills of a dead node's clients 3-4 heartbeats after its last one, even
// when a client has meanwhile come back on another node: a van's bridge reconnecting here would
// announce "1" on its notification topic and the stale will "0" would follow, leaving HQ
// believing the bridge down while it is up. So when a client connects, the will its previous
// connection left with another node is taken over here: published at once if that node is dead
// (so "0" comes before the new connection's "1"), dropped if that node still runs (it closes
// the old connection on aedes' takeover notice and publishes its will itself).
const heartbeats = new Map() // node id -> last heartbeat or birth seen (ms)
const takenWills = new Set() // `${node}/${client}` taken over here: not to be published again

function nodeDead (node) {
  return Date.now() - (heartbeats.get(node) ?? 0) > 3 * heartbeatMs
}

async function takeOverWills (clientId) {
  if (!clientId) return
  for (const node of heartbeats.keys()) {
    if (node === nodeId) continue
    const will = await persistence.delWill({ id: clientId, brokerId: node })
    if (!will) continue
    takenWills.add(`${node}/${clientId}`)
    if (nodeDead(node)) {
      // without the dead node's id: aedes drops a packet whose node counter it has passed
      await new Promise((resolve) => broker.publish(
        { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain },
        resolve))
      if (logClients) log({ will: clientId, of: node })
    }
  }
}

function noop () {}

// ---- the per-van ACL ----------------------------------------------------------------------
// A van's bridge logs in as mcw-<vehicle> (its certificate's name, docs/hq.md) and may only
// touch its own tree: it cannot publish into another van's topics, nor read another van's
// commands. HQ's own services use other client ids.
const VAN_PREFIX = 'mcw-'

function vanTree (client) {
  if (!client?.id?.startsWith(VAN_PREFIX)) return null
  return `mcw/v1/${client.id.slice(VAN_PREFIX.length)}/`
}

function authorizePublish (client, packet, callback) {
  if (packet.topic.startsWith('$SYS')) {
    return callback(new Error('$SYS is reserved'))
  }
  if (packet.brokerId && takenWills.delete(`${packet.brokerId}/${packet.clientId}`)) {
    return callback(new Error(`the will of ${packet.clientId} was taken over`))
  }
  const tree = vanTree(client)
  if (tree !== null && !packet.topic.startsWith(tree)) {
    return callback(new Error(`${client.id} may not publish to ${packet.topic}`))
  }
  // `client` is null for a will that another node publishes for a dead node's client
  if (client && packet.qos === 1 && packet.messageId !== undefined) {
    expectPuback(client, packet)
  }
  callback(null)
}

function authorizeSubscribe (client, sub, callback) {
  const tree = vanTree(client)
  if (tree !== null && !sub.topic.startsWith(tree)) {
    return callback(null, null) // refused: SUBACK 0x80 for this filter
  }
  callback(null, sub)
}

function published (packet, client, callback) {
  if (client) releasePuback(client, packet)
  callback(null)
}

// ---- the node ------------------------------------------------------------------------------
// ioredis options from the URL (redis://[:password@]host[:port][/db])
const url = new URL(args.redis)
const redisOptions = {
  host: url.hostname,
  port: Number.parseInt(url.port || '6379', 10),
  db: Number.parseInt(url.pathname.slice(1) || '0', 10),
  password: url.password ? decodeURIComponent(url.password) : undefined
}
const persistence = redisPersistence({
  ...redisOptions,
  // a persistent session gets its whole queue at reconnection (aedes-persistence-redis' default
  // is the first 1000 messages; the rest would wait for the session's next reconnection)
  maxSessionDelivery: 10_000_000
})
// No ready check (INFO) on the pub/sub connections: ioredis 5.8+ may send it after a queued
// SUBSCRIBE, Redis refuses it in subscriber mode and the node died at start (ioredis #2037).
const mq = mqemitterRedis({ ...redisOptions, enableReadyCheck: false, disableClientInfo: true })
mq.state.on('error', (err) => log({ error: `redis (mqemitter): ${err.message}` }))

const broker = await Aedes.createBroker({
  id: nodeId,
  persistence,
  mq,
  heartbeatInterval: heartbeatMs,
  // packets a client sends before its CONNECT is processed (a bridge's first burst)
  queueLimit: 1000,
  preConnect,
  authorizePublish,
  authorizeSubscribe,
  published
})

for (const topic of ['$SYS/+/heartbeat', '$SYS/+/birth']) {
  broker.mq.on(topic, (packet, done) => {
    heartbeats.set(packet.payload.toString(), Date.now())
    done()
  })
}
heartbeats.set(nodeId, Date.now())

let errors = 0
broker.on('clientError', () => { errors++ })
broker.on('connectionError', () => { errors++ })
broker.on('error', (err) => {
  if (!String(err?.message).includes('was taken over')) log({ error: String(err?.stack ?? err) })
})
if (logClients) {
  broker.on('clientReady', (client) => log({ client: client.id, connected: true }))
  broker.on('clientDisconnect', (client) => log({ client: client.id, connected: false }))
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true) // small JSON messages: no Nagle delay on PUBACKs
  broker.handle(socket)
})
server.on('error', (err) => {
  log({ error: `listen ${args.host}:${port}: ${err.message}` })
  process.exit(1)
})
server.listen(port, args.host, () => {
  log({ listening: port, host: args.host, redis: args.redis, aedes: broker.version })
})

let stopping = false
function stop (signal) {
  if (stopping) return
  stopping = true
  log({ stopping: signal, clients: broker.connectedClients, client_errors: errors })
  // a node that does not finish closing in time is still gone: the others take over
  const timer = setTimeout(() => process.exit(0), 10_000)
  timer.unref()
  server.close()
  broker.close(() => {
    // the promise form: the callback form waits for a 'ready' that aedes 1.x never causes
    persistence.destroy().finally(() => process.exit(0))
  })
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
