// One STOMP connection for the whole session. It connects once after sign-in, so that entering a
// room costs only a SUBSCRIBE (the old app's slow room entry came from a socket connect per room).
// It reconnects by itself and re-subscribes every open room with `since:<last message id seen>`,
// so the server replays exactly what was missed.
//
// Reconnecting is ours, not the library's: after a drop the next attempt waits a backoff with
// jitter (so that a server's restart is not met by every client at the same instant), and the
// browser's `online` event, a tab coming back into view or "Retry now" try at once.
import { reactive, ref } from 'vue'
import { Client } from '@stomp/stompjs'
import { accessToken } from '../api/client.js'

const status = ref('idle') // idle | connecting | connected | reconnecting
const lastError = ref(null) // {message, at}
// The next attempt after a drop: when it is due and how long the wait was (for the UI and tests).
const retry = reactive({ at: 0, delay: 0, attempts: 0 })

const BACKOFF_BASE_MS = 500
const BACKOFF_MAX_MS = 15000

let client = null
let everConnected = false
let seq = 0
let retryTimer = null
let opening = false // connectNow() is between deactivate() and activate()
const rooms = new Map() // roomId -> {roomId, lastId, onMessage, sub}
const receipts = new Map() // receipt id -> {resolve, reject, timer}
const subscribing = new Map() // SUBSCRIBE receipt id -> room entry, until the receipt arrives
let waiters = []

// Why a send did not go through. `refused`: the server answered with an ERROR for it (resending
// it unchanged fails again); otherwise the connection dropped or stalled, and it may be resent.
export class SendError extends Error {
  constructor(message, { refused = false } = {}) {
    super(message)
    this.refused = refused
  }
}

function brokerURL() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  return `${scheme}://${location.host}/ws-stomp`
}

function failReceipts(reason) {
  for (const [id, r] of receipts) {
    clearTimeout(r.timer)
    r.reject(new SendError(reason))
    receipts.delete(id)
  }
}

// Full backoff with "equal jitter": half of the exponential step, plus a random half.
function backoffDelay(attempt) {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt)
  return Math.round(step / 2 + Math.random() * (step / 2))
}

function scheduleReconnect() {
  clearTimeout(retryTimer)
  const delay = backoffDelay(retry.attempts)
  retry.attempts += 1
  retry.delay = delay
  retry.at = Date.now() + delay
  retryTimer = setTimeout(connectNow, delay)
}

// A new connection now, unless one is open or opening. The library's client is deactivated
// first (the socket is already gone) so that activate() starts a fresh attempt.
async function connectNow() {
  clearTimeout(retryTimer)
  retryTimer = null
  const c = client
  if (!c || c.connected || opening) return
  opening = true
  retry.at = 0
  status.value = everConnected ? 'reconnecting' : 'connecting'
  try {
    await c.deactivate()
  } finally {
    opening = false
  }
  if (client === c) c.activate()
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

function onOnline() {
  if (client && !client.connected) {
    retry.attempts = 0
    connectNow()
  }
}

// The network is gone: an open socket would only learn it from a missed heart-beat, a long
// while later. Close it now, so that the app says so and queues what is typed meanwhile.
function onOffline() {
  if (client?.connected) client.forceDisconnect()
}

function onVisible() {
  if (document.visibilityState === 'visible') onOnline()
}

function start() {
  if (client) return
  status.value = 'connecting'
  retry.attempts = 0
  client = new Client({
    brokerURL: brokerURL(),
    connectionTimeout: 8000,
    reconnectDelay: 0, // we schedule reconnects ourselves (backoff with jitter, `online`)
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
      const again = everConnected
      status.value = 'connected'
      everConnected = true
      lastError.value = null
      clearTimeout(retryTimer)
      retry.attempts = 0
      retry.at = 0
      for (const entry of rooms.values()) {
        subscribe(entry)
        if (again) entry.onReconnect?.()
      }
      const ready = waiters
      waiters = []
      for (const w of ready) w.resolve()
    },
    onStompError: (frame) => {
      const message = frame.headers.message || 'The chat server reported an error.'
      const receiptId = frame.headers['receipt-id']
      // A refused message shows its reason on its own line; anything else, in the room.
      if (!receipts.has(receiptId)) lastError.value = { message, at: Date.now() }
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
        r.reject(new SendError(message, { refused: true }))
      }
    },
    onWebSocketClose: () => {
      subscribing.clear()
      failReceipts('The connection dropped before the server confirmed the message.')
      // Signed out, or connectNow() is replacing this attempt with a new one right away.
      if (!client || opening) return
      status.value = everConnected ? 'reconnecting' : 'connecting'
      scheduleReconnect()
    },
  })
  window.addEventListener('online', onOnline)
  window.addEventListener('offline', onOffline)
  document.addEventListener('visibilitychange', onVisible)
  client.activate()
}

async function stop() {
  const c = client
  client = null
  everConnected = false
  clearTimeout(retryTimer)
  retry.at = 0
  retry.attempts = 0
  window.removeEventListener('online', onOnline)
  window.removeEventListener('offline', onOffline)
  document.removeEventListener('visibilitychange', onVisible)
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

function isConnected() {
  return Boolean(client?.connected)
}

// Opens a room's live stream. `since` is the newest message id already known (0 for an empty
// room); the server replays everything after it, so the caller may load history in parallel and
// merge by id.
// onRefused(message) runs if the server refuses the subscription (not a member, say), and
// onReconnect() after a dropped connection is back (signals sent meanwhile are not replayed).
function joinRoom(roomId, { since, onMessage, onRefused, onReconnect }) {
  const old = rooms.get(roomId)
  if (old?.sub && client?.connected) old.sub.unsubscribe()
  const entry = { roomId, lastId: since ?? null, onMessage, onRefused, onReconnect, sub: null }
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

// Sends a TALK on the open connection and resolves once the server's RECEIPT says it is stored.
// clientMessageId makes a resend safe: the server stores a message once per id, and receipts a
// resend again. Rejects with a SendError at once when not connected.
function sendTalk(roomId, message, clientMessageId, timeoutMs = 10000) {
  if (!client?.connected) return Promise.reject(new SendError('Not connected.'))
  const receipt = `m-${++seq}-${Date.now().toString(36)}`
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      receipts.delete(receipt)
      reject(new SendError('The server did not confirm the message in time.'))
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
      reject(new SendError(err.message))
    }
  })
}

// "I am typing" for the other member: best effort, never queued.
function sendTyping(roomId) {
  if (!client?.connected) return
  try {
    client.publish({
      destination: '/pub/chat/typing',
      body: JSON.stringify({ roomId }),
      headers: { 'content-type': 'application/json' },
    })
  } catch {
    // The socket is closing; the signal does not matter any more.
  }
}

// A connection that stopped answering (no receipt in time): drop it, so that the reconnect
// resends what is waiting.
function dropConnection() {
  client?.forceDisconnect()
}

export function useStomp() {
  return {
    status,
    lastError,
    retry,
    start,
    stop,
    joinRoom,
    sendTalk,
    sendTyping,
    whenConnected,
    isConnected,
    reconnectNow: onOnline,
    dropConnection,
  }
}
