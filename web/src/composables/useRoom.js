// One open room: its messages (history + live, merged by id), who is here and typing, how far
// the other member has read, sending (through the outbox), unsending, and read marks.
//
// Entering is fast because nothing waits on anything else: the shared STOMP connection is already
// up, the SUBSCRIBE goes out at once with `since:<newest id the chats list knows>` (so the server
// replays whatever the history request might miss), and history, presence and read marks load
// in parallel. Live frames and history pages are merged by message id, so nothing shows twice.
import { computed, reactive, ref } from 'vue'
import { chat } from '../api/endpoints.js'
import { useStomp } from './useStomp.js'
import { useOutbox } from './useOutbox.js'
import { useChats } from './useChats.js'
import { useNotifications } from './useNotifications.js'
import { useSession } from './useSession.js'
import { useBrowserNotifications } from './useBrowserNotifications.js'
import { i18n } from '../i18n/index.js'

const PAGE = 50
export const MAX_MESSAGE_CHARS = 1000 // the server's limit, in Unicode code points
export const UNSEND_WINDOW_MS = 5 * 60 * 1000
const TYPING_SHOWN_MS = 4000 // "typing..." goes away this long after the last signal
const TYPING_EVERY_MS = 2000 // while I type, a signal at most this often

let localSeq = 0

function isId(x) {
  return Number.isInteger(x)
}

// Characters as the server counts them (code points, not UTF-16 units).
export function messageLength(text) {
  return Array.from(text.trim()).length
}

export function useRoom(roomId) {
  const stomp = useStomp()
  const outbox = useOutbox()
  const chats = useChats()
  const notifications = useNotifications()
  const session = useSession()
  const browser = useBrowserNotifications()
  const me = () => session.state.user?.username

  const confirmed = ref([]) // messages from the server, ascending by id
  const byId = new Map()
  const members = reactive(new Set())
  const otherReadId = ref(0) // the other member has read up to here
  const typing = ref(false) // the other member is typing
  const state = reactive({
    historyLoaded: false,
    historyError: null, // an Error: shown through errorText
    actionError: null,
    hasOlder: false,
    loadingOlder: false,
    refused: '', // the server's reason for refusing this room's live stream
  })

  let handle = null
  let closed = false
  let lastPostedRead = 0
  let readTimer = null
  let presenceTimer = null
  let typingTimer = null
  let lastTypingSent = 0
  let typingDraft = false // the composer holds text
  let typingTrailer = null
  let unshow = null
  let loadedUpTo = 0 // the newest id when history first loaded (or replayed before it)

  // Mine still on the way (or refused), in the order they were typed, below what is stored.
  const locals = computed(() => outbox.state.items.filter((i) => i.roomId === roomId))
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
      if (list[mid].id <= item.id) lo = mid + 1
      else hi = mid
    }
    list.splice(lo, 0, item)
  }

  // Adds one stored message, once. My own TALK echoed back takes the place of its outbox copy.
  function insert(msg) {
    if (!isId(msg.id) || byId.has(msg.id)) return false
    let item = null
    if (msg.type === 'TALK' && msg.sender === me() && msg.clientMessageId) {
      item = outbox.find(roomId, msg.clientMessageId)
      if (item) outbox.settle(item, msg.id)
    }
    // Reactive, so that a later change through byId (unsent, say) shows.
    if (!item) item = reactive({ key: `m${msg.id}` })
    Object.assign(item, {
      id: msg.id,
      type: msg.type,
      sender: msg.sender,
      message: msg.message,
      deleted: Boolean(msg.deleted),
      createdAt: msg.createdAt,
      status: 'delivered',
    })
    // A SYSTEM line's code and parameters: the app words it (systemLine.js).
    if (msg.code) Object.assign(item, { code: msg.code, params: msg.params || {} })
    byId.set(msg.id, item)
    place(item)
    return true
  }

  function onSignal(msg) {
    const fromOther = msg.sender && msg.sender !== me()
    if (msg.type === 'READ') {
      if (fromOther && isId(msg.lastReadId) && msg.lastReadId > otherReadId.value) {
        otherReadId.value = msg.lastReadId
      }
    } else if (msg.type === 'TYPING') {
      if (fromOther) showTyping()
    } else if (msg.type === 'DELETED') {
      const item = byId.get(msg.id)
      if (item) Object.assign(item, { deleted: true, message: '' })
    }
  }

  function showTyping() {
    typing.value = true
    clearTimeout(typingTimer)
    typingTimer = setTimeout(() => {
      typing.value = false
    }, TYPING_SHOWN_MS)
  }

  function onLive(msg) {
    // Signals on the room's subscription: not lines of the conversation.
    if (msg.type === 'READ' || msg.type === 'TYPING' || msg.type === 'DELETED') {
      onSignal(msg)
      return
    }
    // ENTER and QUIT say who is here (the header shows it), not what was said.
    if (msg.type === 'ENTER' && msg.sender) members.add(msg.sender)
    if (msg.type === 'QUIT' && msg.sender) members.delete(msg.sender)
    // Replayed ENTER/QUIT frames may be old; the snapshot shortly after settles who is here.
    if (msg.type === 'ENTER' || msg.type === 'QUIT') loadPresenceSoon()
    if (msg.type === 'TALK' && msg.sender !== me()) {
      typing.value = false
      clearTimeout(typingTimer)
    }
    if (!insert(msg)) return
    chats.noteMessage(roomId, msg)
    // The room is open in a hidden tab: the server counts me as here and rings no bell. Only
    // what came after the history page (not a replay of what it already had) is news.
    if (
      msg.type === 'TALK' &&
      msg.sender !== me() &&
      state.historyLoaded &&
      msg.id > loadedUpTo &&
      !room.value?.muted
    ) {
      browser.show({
        key: `duochat-room-${roomId}`,
        title: i18n.global.t('notify.messageTitle', { name: msg.sender }),
        body: msg.message,
      })
    }
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

  function noteOtherRead(page) {
    if (isId(page.otherLastReadId) && page.otherLastReadId > otherReadId.value) {
      otherReadId.value = page.otherLastReadId
    }
  }

  async function loadHistory() {
    try {
      const page = await chat.history(roomId, { limit: PAGE })
      if (closed) return
      for (const msg of page.items) insert(msg)
      if (page.items.length) chats.noteMessage(roomId, page.items[page.items.length - 1])
      noteOtherRead(page)
      state.hasOlder = Boolean(page.hasMore)
      loadedUpTo = maxId()
      state.historyLoaded = true
      flushRead()
    } catch (err) {
      state.historyError = err
    }
  }

  // Back from a dropped connection: the replay brought the messages missed, but not the
  // signals (a read mark, an unsent message); the newest page of history has both.
  async function catchUp() {
    try {
      const page = await chat.history(roomId, { limit: PAGE })
      if (closed) return
      for (const msg of page.items) {
        if (!insert(msg) && msg.deleted) onSignal({ type: 'DELETED', id: msg.id })
      }
      noteOtherRead(page)
    } catch {
      // The next reconnect or live signal corrects it.
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
      noteOtherRead(page)
      state.hasOlder = Boolean(page.hasMore)
      return true
    } catch (err) {
      state.historyError = err
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

  function send(text) {
    const message = text.trim()
    if (!message || messageLength(message) > MAX_MESSAGE_CHARS) return false
    outbox.enqueue(roomId, message)
    return true
  }

  // The composer changed: tell the other member, now and then, that I am typing. A change
  // too soon after the last signal is told a little later (if there is still a draft), so a
  // short burst of typing is not lost to the rate.
  function noteTyping(draft) {
    typingDraft = draft.trim() !== ''
    if (!typingDraft || typingTrailer) return
    const wait = lastTypingSent + TYPING_EVERY_MS - Date.now()
    if (wait <= 0) {
      lastTypingSent = Date.now()
      stomp.sendTyping(roomId)
      return
    }
    typingTrailer = setTimeout(() => {
      typingTrailer = null
      if (typingDraft && !closed) noteTyping('-')
    }, wait)
  }

  function canUnsend(item) {
    if (!isId(item.id) || item.deleted || item.type !== 'TALK' || item.sender !== me()) return false
    return Date.now() - Date.parse(item.createdAt) < UNSEND_WINDOW_MS
  }

  async function unsend(item) {
    state.actionError = null
    try {
      await chat.unsend(roomId, item.id)
      Object.assign(item, { deleted: true, message: '' })
    } catch (err) {
      state.actionError = err
    }
  }

  async function open() {
    notifications.setActiveRoom(roomId)
    notifications.markRoomRead(roomId)
    document.addEventListener('visibilitychange', onVisibility)
    unshow = outbox.show(roomId)
    loadHistory()
    loadPresence()
    chats.ensureLoaded().catch(() => {})
    const since = await chats.knownLatestId(roomId)
    if (closed) return
    handle = stomp.joinRoom(roomId, {
      since,
      onMessage: onLive,
      onRefused: (message) => {
        state.refused = message
      },
      onReconnect: catchUp,
    })
  }

  function close() {
    // What arrived in the last moments on screen was read too.
    if (state.historyLoaded) flushRead()
    closed = true
    clearTimeout(readTimer)
    clearTimeout(presenceTimer)
    clearTimeout(typingTimer)
    clearTimeout(typingTrailer)
    document.removeEventListener('visibilitychange', onVisibility)
    handle?.leave()
    unshow?.()
    if (notifications.state.activeRoomId === roomId) notifications.setActiveRoom(null)
  }

  return {
    items,
    state,
    room,
    counterpart,
    counterpartHere,
    members,
    otherReadId,
    typing,
    open,
    close,
    loadOlder,
    send,
    noteTyping,
    canUnsend,
    unsend,
    retry: outbox.retry,
    discard: outbox.discard,
  }
}
