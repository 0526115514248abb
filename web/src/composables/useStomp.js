// One STOMP connection for the whole session. It connects once after sign-in, so that entering a
// room costs only a SUBSCRIBE (the old app's slow room entry came from a socket connect per room).
// It reconnects by itself and re-subscribes every open room with `since:<last message id seen>`,
// so the server replays exactly what was missed.
import { ref } from 'vue'
import { Client, ReconnectionTimeMode } from '@stomp/stompjs'
import { accessToken } from '../api/client.js'

const status = ref('idle') // idle | connecting | connected | reconnecting
const lastError = ref(null) // {message, at}

let client = null
let everConnected = false
let seq = 0
const rooms = new Map() // roomId -> {roomId, lastId, onMessage, sub}
const receipts = new Map() // receipt id -> {resolve, reject, timer}
const subscribing = new Map() // SUBSCRIBE receipt id -> room entry, until the receipt arrives
let waiters = []

function brokerURL() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  return `${scheme}://${location.host}/ws-stomp`
}

function failReceipts(reason) {
  for (const [id, r] of receipts) {
    clearTimeout(r.timer)
    r.reject(new Error(reason))
    receipts.delete(id)
  }
}

function subscribe(entry) {
  // The receipt ties a refusal (ERROR with receipt-id) to this room. The server closes the socket
  // after any ERROR, so a refused room must not be subscribed again on the reconnect.
  const receipt = `s-${++seq}`
  const headers = { receipt }
  if (entry.lastId !== null && entry.lastId !== undefined) headers.since = String(entry.lastId)
  subscribing.set(receipt, entry)
  client.watchForReceipt(receipt, () => subscribing.delete(receipt))
  entry.sub = client.subscribe(
    `/sub/chat/room/${entry.roomId}`,
    (frame) => {
      let msg
      try {
        msg = JSON.parse(frame.body)
      } catch {
        return
      }
      if (Number.isInteger(msg.id) && (entry.lastId === null || msg.id > entry.lastId)) {
        entry.lastId = msg.id
      }
      entry.onMessage(msg)
    },
    headers,
  )
}

function start() {
  if (client) return
  status.value = 'connecting'
  client = new Client({
    brokerURL: brokerURL(),
    connectionTimeout: 8000,
    reconnectDelay: 500,
    maxReconnectDelay: 8000,
    reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
    heartbeatIncoming: 20000,
    heartbeatOutgoing: 20000,
    // A fresh access token on every (re)connect: the server closes a socket whose token expired.
    beforeConnect: async (c) => {
      try {
        const token = await accessToken(30000)
        if (token) c.connectHeaders = { token }
      } catch {
        // Signed out or offline: the connect fails and the next attempt tries again.
      }
    },
    onConnect: () => {
      status.value = 'connected'
      everConnected = true
      lastError.value = null
      for (const entry of rooms.values()) subscribe(entry)
      const ready = waiters
      waiters = []
      for (const w of ready) w.resolve()
    },
    onStompError: (frame) => {
      const message = frame.headers.message || 'The chat server reported an error.'
      lastError.value = { message, at: Date.now() }
      const receiptId = frame.headers['receipt-id']
      const refused = receiptId && subscribing.get(receiptId)
      if (refused) {
        subscribing.delete(receiptId)
        // One more try on the next connection, which carries a fresh token (the server checks
        // membership with the token the connection was opened with); then give up.
        if (!refused.retried) {
          refused.retried = true
          return
        }
        if (rooms.get(refused.roomId) === refused) rooms.delete(refused.roomId)
        refused.onRefused?.(message)
        return
      }
      const r = receiptId && receipts.get(receiptId)
      if (r) {
        clearTimeout(r.timer)
        receipts.delete(receiptId)
        r.reject(new Error(message))
      }
    },
    onWebSocketClose: () => {
      if (client) status.value = everConnected ? 'reconnecting' : 'connecting'
      subscribing.clear()
      failReceipts('The connection dropped before the server confirmed the message.')
    },
  })
  client.activate()
}

async function stop() {
  const c = client
  client = null
  everConnected = false
  rooms.clear()
  failReceipts('Signed out.')
  for (const w of waiters) w.reject(new Error('Signed out.'))
  waiters = []
  status.value = 'idle'
  if (c) await c.deactivate()
}

function whenConnected(timeoutMs = 8000) {
  if (client?.connected) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const w = { resolve, reject }
    waiters.push(w)
    setTimeout(() => {
      if (waiters.includes(w)) {
        waiters = waiters.filter((x) => x !== w)
        reject(new Error('Not connected to the chat server.'))
      }
    }, timeoutMs)
  })
}

// Opens a room's live stream. `since` is the newest message id already known (0 for an empty
// room); the server replays everything after it, so the caller may load history in parallel and
// merge by id.
// onRefused(message) runs if the server refuses the subscription (not a member, say).
function joinRoom(roomId, { since, onMessage, onRefused }) {
  const old = rooms.get(roomId)
  if (old?.sub && client?.connected) old.sub.unsubscribe()
  const entry = { roomId, lastId: since ?? null, onMessage, onRefused, sub: null }
  rooms.set(roomId, entry)
  if (client?.connected) subscribe(entry)
  return {
    leave() {
      if (rooms.get(roomId) === entry) rooms.delete(roomId)
      if (entry.sub && client?.connected) {
        try {
          entry.sub.unsubscribe()
        } catch {
          // The socket closed meanwhile; the server drops the subscription with it.
        }
      }
    },
  }
}

// Sends a TALK and resolves once the server's RECEIPT says it is stored. clientMessageId makes a
// resend safe: the server stores a message once per id, and receipts a resend again.
async function sendTalk(roomId, message, clientMessageId, timeoutMs = 10000) {
  await whenConnected()
  const receipt = `m-${++seq}-${Date.now().toString(36)}`
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      receipts.delete(receipt)
      reject(new Error('The server did not confirm the message in time.'))
    }, timeoutMs)
    receipts.set(receipt, { resolve, reject, timer })
    client.watchForReceipt(receipt, (frame) => {
      const r = receipts.get(receipt)
      if (!r) return
      clearTimeout(r.timer)
      receipts.delete(receipt)
      r.resolve(frame)
    })
    try {
      client.publish({
        destination: '/pub/chat/message',
        body: JSON.stringify({ type: 'TALK', roomId, message, clientMessageId }),
        headers: { receipt, 'content-type': 'application/json' },
      })
    } catch (err) {
      clearTimeout(timer)
      receipts.delete(receipt)
      reject(err)
    }
  })
}

export function useStomp() {
  return { status, lastError, start, stop, joinRoom, sendTalk, whenConnected }
}
