// One open room: its messages (history + live, merged by id), who is here, sending with receipts,
// and read marks.
//
// Entering is fast because nothing waits on anything else: the shared STOMP connection is already
// up, the SUBSCRIBE goes out at once with `since:<newest id the chats list knows>` (so the server
// replays whatever the history request might miss), and history, presence and read marks load
// in parallel. Live frames and history pages are merged by message id, so nothing shows twice.
import { computed, reactive, ref } from 'vue'
import { chat } from '../api/endpoints.js'
import { useStomp } from './useStomp.js'
import { useChats } from './useChats.js'
import { useNotifications } from './useNotifications.js'
import { useSession } from './useSession.js'

const PAGE = 50

let localSeq = 0

function isId(x) {
  return Number.isInteger(x)
}

export function useRoom(roomId) {
  const stomp = useStomp()
  const chats = useChats()
  const notifications = useNotifications()
  const session = useSession()
  const me = () => session.state.user?.username

  const confirmed = ref([]) // messages from the server, ascending by sortKey
  const locals = ref([]) // my messages not yet echoed back by the server, in send order
  const byId = new Map()
  const announced = new Set()
  const members = reactive(new Set())
  const state = reactive({
    historyLoaded: false,
    historyError: '',
    hasOlder: false,
    loadingOlder: false,
    refused: '', // the server's reason for refusing this room's live stream
  })

  let handle = null
  let baseline = 0 // the newest id known when the room opened
  let closed = false
  let lastPostedRead = 0
  let readTimer = null
  let presenceTimer = null

  const items = computed(() => [...confirmed.value, ...locals.value])
  const room = computed(() => chats.findRoom(roomId))
  const counterpart = computed(() => {
    const r = room.value
    if (!r) return null
    return r.writer?.username === me() ? r.applicant : r.writer
  })
  const counterpartHere = computed(() =>
    Boolean(counterpart.value && members.has(counterpart.value.username)),
  )

  function maxId() {
    for (let i = confirmed.value.length - 1; i >= 0; i--) {
      if (isId(confirmed.value[i].id)) return confirmed.value[i].id
    }
    return 0
  }

  function minId() {
    for (const m of confirmed.value) if (isId(m.id)) return m.id
    return null
  }

  function place(item) {
    const list = confirmed.value
    let lo = 0
    let hi = list.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (list[mid].sortKey <= item.sortKey) lo = mid + 1
      else hi = mid
    }
    list.splice(lo, 0, item)
  }

  // Adds one server message, once. My own TALK echoed back takes the place of its pending copy.
  function insert(msg) {
    if (isId(msg.id)) {
      if (byId.has(msg.id)) return false
    } else {
      // Announcements carry no id: one seen again (say, replayed after a reconnect) shows once.
      const sig = `${msg.type}|${msg.sender}|${msg.createdAt}`
      if (announced.has(sig)) return false
      announced.add(sig)
    }
    let item = null
    if (msg.type === 'TALK' && msg.sender === me() && isId(msg.id)) {
      // The time check keeps an old identical line from history claiming a new send.
      const at = Date.parse(msg.createdAt) || Date.now()
      let i = msg.clientMessageId
        ? locals.value.findIndex((l) => l.clientMessageId === msg.clientMessageId)
        : -1
      if (i < 0) i = locals.value.findIndex((l) => l.message === msg.message && at >= l.sentAt - 60000)
      if (i >= 0) {
        item = locals.value[i]
        locals.value.splice(i, 1)
        if (item.status === 'failed') item.status = 'delivered' // it was stored after all
      }
    }
    if (!item) item = { key: isId(msg.id) ? `m${msg.id}` : `e${++localSeq}`, status: null }
    Object.assign(item, {
      id: msg.id,
      type: msg.type,
      sender: msg.sender,
      message: msg.message,
      deleted: Boolean(msg.deleted),
      createdAt: msg.createdAt,
      // Frames without an id (ENTER/QUIT that the server announces but does not store) happened
      // after everything known so far, even if the history page is still on its way.
      sortKey: isId(msg.id) ? msg.id : Math.max(maxId(), baseline) + 0.5,
    })
    if (isId(msg.id)) byId.set(msg.id, item)
    place(item)
    return true
  }

  function onLive(msg) {
    // Signals on the room's subscription: not lines of the conversation.
    if (msg.type === 'READ' || msg.type === 'TYPING') return
    if (msg.type === 'DELETED') {
      const item = byId.get(msg.id)
      if (item) Object.assign(item, { deleted: true, message: '' })
      return
    }
    if (!insert(msg)) return
    chats.noteMessage(roomId, msg)
    if (msg.type === 'ENTER' && msg.sender) members.add(msg.sender)
    if (msg.type === 'QUIT' && msg.sender) members.delete(msg.sender)
    // Replayed ENTER/QUIT frames may be old; the snapshot shortly after settles who is here.
    if (msg.type === 'ENTER' || msg.type === 'QUIT') loadPresenceSoon()
    if (msg.type === 'SYSTEM') chats.loadRooms().catch(() => {})
    scheduleRead()
  }

  async function loadPresence() {
    try {
      const p = await chat.presence(roomId)
      if (closed) return
      members.clear()
      for (const name of p.members || []) members.add(name)
    } catch {
      // Presence is a nicety; the room works without it.
    }
  }

  function loadPresenceSoon() {
    clearTimeout(presenceTimer)
    presenceTimer = setTimeout(loadPresence, 300)
  }

  async function loadHistory() {
    try {
      const page = await chat.history(roomId, { limit: PAGE })
      if (closed) return
      for (const msg of page.items) insert(msg)
      if (page.items.length) chats.noteMessage(roomId, page.items[page.items.length - 1])
      state.hasOlder = Boolean(page.hasMore)
      state.historyLoaded = true
      flushRead()
    } catch (err) {
      state.historyError = err.message
    }
  }

  async function loadOlder() {
    const before = minId()
    if (state.loadingOlder || !state.hasOlder || before === null) return false
    state.loadingOlder = true
    try {
      const page = await chat.history(roomId, { before, limit: PAGE })
      if (closed) return false
      for (const msg of page.items) insert(msg)
      state.hasOlder = Boolean(page.hasMore)
      return true
    } catch (err) {
      state.historyError = err.message
      return false
    } finally {
      state.loadingOlder = false
    }
  }

  function flushRead() {
    clearTimeout(readTimer)
    readTimer = null
    if (closed || document.visibilityState === 'hidden') return
    const id = maxId()
    chats.setUnread(roomId, 0)
    if (id <= lastPostedRead) return
    lastPostedRead = id
    chat
      .markRead(roomId, id)
      .then(() => notifications.markRoomRead(roomId))
      .catch(() => {
        lastPostedRead = 0
      })
  }

  // At most one read mark per 300 ms while messages stream in.
  function scheduleRead() {
    if (!readTimer) readTimer = setTimeout(flushRead, 300)
  }

  function onVisibility() {
    if (document.visibilityState === 'visible') flushRead()
  }

  function deliver(item) {
    item.status = 'pending'
    item.error = ''
    stomp
      .sendTalk(roomId, item.message, item.clientMessageId)
      .then(() => {
        item.status = 'delivered'
      })
      .catch((err) => {
        // Echoed back meanwhile: stored, whatever the receipt said.
        if (isId(item.id)) {
          item.status = 'delivered'
          return
        }
        item.status = 'failed'
        item.error = err.message
      })
  }

  function send(text) {
    const message = text.trim()
    if (!message) return false
    const item = reactive({
      key: `l${++localSeq}`,
      id: null,
      type: 'TALK',
      sender: me(),
      message,
      createdAt: new Date().toISOString(),
      sentAt: Date.now(),
      // Kept for every resend of this message, so the server stores it once.
      clientMessageId: newClientMessageId(),
      status: 'pending',
      error: '',
    })
    locals.value.push(item)
    deliver(item)
    return true
  }

  function retry(item) {
    if (item.status === 'failed') deliver(item)
  }

  async function open() {
    notifications.setActiveRoom(roomId)
    notifications.markRoomRead(roomId)
    document.addEventListener('visibilitychange', onVisibility)
    loadHistory()
    loadPresence()
    chats.ensureLoaded().catch(() => {})
    const since = await chats.knownLatestId(roomId)
    if (closed) return
    baseline = since || 0
    handle = stomp.joinRoom(roomId, {
      since,
      onMessage: onLive,
      onRefused: (message) => {
        state.refused = message
      },
    })
  }

  function close() {
    // What arrived in the last moments on screen was read too.
    if (state.historyLoaded) flushRead()
    closed = true
    clearTimeout(readTimer)
    clearTimeout(presenceTimer)
    document.removeEventListener('visibilitychange', onVisibility)
    handle?.leave()
    if (notifications.state.activeRoomId === roomId) notifications.setActiveRoom(null)
  }

  return {
    items,
    state,
    room,
    counterpart,
    counterpartHere,
    members,
    open,
    close,
    loadOlder,
    send,
    retry,
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
