// Live notifications over Server-Sent Events, plus the list behind the bell.
//
// The bell shows one entry per room for its messages (the newest, with how many are unread), so
// four messages make one entry "4", not four entries; its badge counts entries.
//
// EventSource cannot send headers, so each stream opens with a single-use ticket. The browser's own
// reconnect would reuse the spent ticket, so on any error we close the stream, take a new ticket
// and reopen. The server replays missed events (Last-Event-ID) only within one EventSource, so
// after reopening we re-fetch the list to catch up.
import { reactive } from 'vue'
import { notify } from '../api/endpoints.js'

const KINDS = ['message', 'applied', 'matched', 'rejected', 'left']

const state = reactive({
  items: [], // Alarm, newest first
  unreadCount: 0,
  nextCursor: null,
  live: false,
  activeRoomId: null, // the room on screen: its alarms are read on arrival
})

let source = null
let running = false
let retryTimer = null
let backoff = 1000
const listeners = new Set()

let refetchTimer = null

// Entries by id, and a room's messages as one entry (the newest wins).
function merge(alarms) {
  const known = new Map(state.items.map((a) => [entryKey(a), a]))
  for (const a of alarms) {
    const prev = known.get(entryKey(a))
    if (!prev || cmpDesc(a, prev) <= 0) known.set(entryKey(a), a)
  }
  state.items = [...known.values()].sort((x, y) => cmpDesc(x, y))
}

function entryKey(alarm) {
  return alarm.kind === 'message' && alarm.roomId ? `room:${alarm.roomId}` : `id:${alarm.id}`
}

function cmpDesc(x, y) {
  if (x.createdAt !== y.createdAt) return x.createdAt < y.createdAt ? 1 : -1
  return String(y.id).localeCompare(String(x.id), undefined, { numeric: true })
}

async function fetchList() {
  const page = await notify.bell({ limit: 30 })
  // Replace rather than merge: read flags may have changed on the server meanwhile.
  state.items = page.items
  state.unreadCount = page.unreadCount
  state.nextCursor = page.nextCursor
}

async function loadOlder() {
  if (!state.nextCursor) return
  const page = await notify.bell({ limit: 30, cursor: state.nextCursor })
  merge(page.items)
  state.nextCursor = page.nextCursor
  state.unreadCount = page.unreadCount
}

function onEvent(event) {
  let alarm
  try {
    alarm = JSON.parse(event.data)
  } catch {
    return
  }
  if (state.items.some((a) => a.id === alarm.id)) return
  const prev = state.items.find((a) => entryKey(a) === entryKey(alarm))
  const prevUnread = Boolean(prev && !prev.read)
  const count = (prevUnread ? prev.count || 1 : 0) + (alarm.read ? 0 : 1)
  merge([{ ...alarm, count, read: alarm.read && !prevUnread }])
  if (!alarm.read && !prevUnread) state.unreadCount += 1
  if (alarm.kind === 'message' && alarm.roomId && alarm.roomId === state.activeRoomId) {
    markRoomRead(alarm.roomId)
  }
  for (const fn of listeners) fn(alarm)
}

function scheduleReopen() {
  clearTimeout(retryTimer)
  retryTimer = setTimeout(() => open(true), backoff)
  backoff = Math.min(backoff * 2, 15000)
}

async function open(isReopen) {
  if (!running) return
  let ticket
  try {
    ticket = (await notify.ticket()).ticket
  } catch {
    scheduleReopen()
    return
  }
  if (!running) return
  const es = new EventSource(`/notify/stream?ticket=${encodeURIComponent(ticket)}`)
  source = es
  es.onopen = () => {
    state.live = true
    backoff = 1000
    if (isReopen) fetchList().catch(() => {})
  }
  for (const kind of KINDS) es.addEventListener(kind, onEvent)
  // Another tab (or the room's read mark) read some: the server's list is the truth.
  es.addEventListener('read', refetchSoon)
  es.onerror = () => {
    es.close()
    if (source !== es) return
    source = null
    state.live = false
    scheduleReopen()
  }
}

async function start() {
  if (running) return
  running = true
  backoff = 1000
  try {
    await fetchList()
  } catch {
    // The stream still opens; the list is fetched again on the next reopen.
  }
  open(false)
}

function refetchSoon() {
  clearTimeout(refetchTimer)
  refetchTimer = setTimeout(() => fetchList().catch(() => {}), 300)
}

function stop() {
  running = false
  clearTimeout(retryTimer)
  clearTimeout(refetchTimer)
  source?.close()
  source = null
  state.items = []
  state.unreadCount = 0
  state.nextCursor = null
  state.live = false
  state.activeRoomId = null
}

// Marks entries read here at once; the badge counts entries, so it drops by those.
function markLocally(match) {
  let newlyRead = 0
  for (const a of state.items) {
    if (!match(a)) continue
    if (!a.read) newlyRead += 1
    a.read = true
    a.count = 0
  }
  state.unreadCount = Math.max(0, state.unreadCount - newlyRead)
  return newlyRead
}

async function markRoomRead(roomId) {
  const hasUnread = markLocally((a) => a.roomId === roomId) > 0
  if (!hasUnread && state.unreadCount === 0) return
  try {
    // Its answer counts alarms, not entries: the list says how many entries are left.
    const res = await notify.markRoomRead(roomId)
    if (res.updated) refetchSoon()
  } catch {
    // The server also marks them when the room's read mark lands.
  }
}

async function markRead(ids) {
  markLocally((a) => ids.includes(a.id))
  try {
    await notify.markRead(ids)
    refetchSoon()
  } catch {
    // Left unread; the next list fetch shows the truth.
  }
}

function setActiveRoom(roomId) {
  state.activeRoomId = roomId
}

// fn(alarm) runs for every live notification.
function onAlarm(fn) {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

export function useNotifications() {
  return { state, start, stop, loadOlder, markRoomRead, markRead, setActiveRoom, onAlarm }
}
