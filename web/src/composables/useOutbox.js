// Messages on their way out, for every room, in the order they were typed.
//
// A message is never lost and never overtakes an earlier one: the outbox sends one message at a
// time and the next only after the server's receipt. While the connection is down, messages wait
// ("queued") and go out by themselves, in order, once it is back. A resend carries the same
// clientMessageId, so a message the server stored before the connection dropped is stored once.
// Only a message the server refuses (an ERROR for it) stops as "failed": the sender may retry,
// edit or delete it. What is still waiting is kept in sessionStorage (per tab), so a reload does
// not lose it.
import { reactive, watch } from 'vue'
import { SendError, useStomp } from './useStomp.js'

const MAX_ATTEMPTS_WITHOUT_RECEIPT = 5

const state = reactive({ items: [] }) // oldest first
let owner = null // the signed-in username the items belong to
let pumping = false
let localSeq = 0
const shown = new Map() // roomId -> how many open views show that room's items

const stomp = useStomp()

function storageKey() {
  return `duochat.outbox.${owner}`
}

function save() {
  if (!owner) return
  const waiting = state.items
    .filter((i) => i.status !== 'delivered')
    .map(({ roomId, clientMessageId, message, createdAt, status, error }) => ({
      roomId,
      clientMessageId,
      message,
      createdAt,
      status: status === 'failed' ? 'failed' : 'queued',
      error,
    }))
  try {
    if (waiting.length) sessionStorage.setItem(storageKey(), JSON.stringify(waiting))
    else sessionStorage.removeItem(storageKey())
  } catch {
    // Storage full or blocked: the outbox still works for this page's lifetime.
  }
}

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(storageKey()) || '[]')
    if (!Array.isArray(saved)) return []
    return saved
      .filter((s) => s && typeof s.roomId === 'string' && typeof s.message === 'string')
      .map((s) => newItem(s.roomId, s.message, s))
  } catch {
    return []
  }
}

function newItem(roomId, message, saved = {}) {
  return reactive({
    key: `o${++localSeq}`,
    roomId,
    id: null,
    type: 'TALK',
    sender: owner,
    message,
    createdAt: saved.createdAt || new Date().toISOString(),
    // Kept for every resend of this message, so the server stores it once.
    clientMessageId: saved.clientMessageId || newClientMessageId(),
    status: saved.status || 'queued', // queued | pending | delivered | failed
    error: saved.error || '',
    attempts: 0,
  })
}

function remove(item) {
  const i = state.items.indexOf(item)
  if (i >= 0) state.items.splice(i, 1)
  save()
}

// Sends the queued messages one after another while the connection is up.
async function pump() {
  if (pumping) return
  pumping = true
  try {
    while (owner && stomp.isConnected()) {
      const item = state.items.find((i) => i.status === 'queued')
      if (!item) break
      item.status = 'pending'
      item.attempts += 1
      try {
        await stomp.sendTalk(item.roomId, item.message, item.clientMessageId)
        item.status = 'delivered'
        item.error = ''
        // Nobody shows it: it is in the room's history now.
        if (!shown.get(item.roomId)) remove(item)
        else save()
      } catch (err) {
        if (!state.items.includes(item)) continue // deleted while it was on its way
        if (isSettled(item)) continue // its echo came back: stored after all
        if (err instanceof SendError && err.refused) {
          item.status = 'failed'
          item.error = err.message
          save()
          break // the server closes the connection after an ERROR: the rest wait for the next
        } else if (item.attempts >= MAX_ATTEMPTS_WITHOUT_RECEIPT) {
          item.status = 'failed'
          item.error = err.message
        } else {
          // The connection dropped or stalled: it goes again, first, once it is back.
          item.status = 'queued'
          if (stomp.isConnected()) stomp.dropConnection()
        }
        save()
        if (item.status === 'queued') break
      }
    }
  } finally {
    pumping = false
  }
}

function isSettled(item) {
  return Number.isInteger(item.id)
}

watch(stomp.status, (s) => {
  if (s === 'connected') pump()
})

function start(username) {
  if (owner === username) return
  owner = username
  state.items = load()
  pump()
}

// Signing out forgets what was still waiting (the next person at this browser must not send it).
function stop() {
  if (owner) {
    try {
      sessionStorage.removeItem(storageKey())
    } catch {
      // nothing stored
    }
  }
  owner = null
  state.items = []
}

function enqueue(roomId, text) {
  const item = newItem(roomId, text)
  state.items.push(item)
  save()
  pump()
  return item
}

// The server's echo of a message: it is stored and has its id.
function settle(item, id) {
  item.id = id
  item.status = 'delivered'
  remove(item)
}

function find(roomId, clientMessageId) {
  return state.items.find((i) => i.roomId === roomId && i.clientMessageId === clientMessageId)
}

// Send a failed message again, as it was: after everything already waiting.
function retry(item) {
  if (item.status !== 'failed') return
  const i = state.items.indexOf(item)
  if (i >= 0) state.items.splice(i, 1)
  item.status = 'queued'
  item.error = ''
  item.attempts = 0
  state.items.push(item)
  save()
  pump()
}

function discard(item) {
  if (item.status === 'pending') return // on its way: wait for the answer
  remove(item)
}

// A room view shows its room's items while it is open; delivered ones stay until their echo.
function show(roomId) {
  shown.set(roomId, (shown.get(roomId) || 0) + 1)
  return () => {
    const n = (shown.get(roomId) || 1) - 1
    if (n) shown.set(roomId, n)
    else shown.delete(roomId)
    for (const item of [...state.items]) {
      if (item.roomId === roomId && item.status === 'delivered' && !n) remove(item)
    }
  }
}

// A random id for a message this tab sends (crypto.randomUUID needs a secure context, which
// http://127.0.0.1 is but a LAN address is not).
function newClientMessageId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID()
  const bytes = new Uint8Array(16)
  globalThis.crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

export function useOutbox() {
  return { state, start, stop, enqueue, settle, find, retry, discard, show }
}
