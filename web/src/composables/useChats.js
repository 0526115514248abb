// My rooms (both roles), their unread counts and last messages, shared by the chats list, the
// boards screen and the room.
import { reactive } from 'vue'
import { boards, chat } from '../api/endpoints.js'

const state = reactive({
  writer: [], // rooms of the boards I wrote, one per applicant
  applicant: [], // rooms I applied from
  unread: {}, // roomId -> count
  latest: {}, // roomId -> Message
  loaded: false,
  error: null, // the last load's failure (an Error), shown through errorText
})

let inflight = null
let countsTimer = null

async function loadRooms() {
  const [w, a] = await Promise.all([boards.rooms('writer'), boards.rooms('applicant')])
  state.writer = w.items
  state.applicant = a.items
}

async function loadCounts() {
  const [unread, latest] = await Promise.all([chat.unread(), chat.latest()])
  state.unread = unread || {}
  for (const [roomId, msg] of Object.entries(latest || {})) noteMessage(roomId, msg)
}

function load() {
  if (!inflight) {
    inflight = Promise.all([loadRooms(), loadCounts()])
      .then(() => {
        state.loaded = true
        state.error = null
      })
      .catch((err) => {
        state.error = err
        throw err
      })
      .finally(() => {
        inflight = null
      })
  }
  return inflight
}

async function ensureLoaded() {
  if (!state.loaded) await load()
}

// Unread counts and previews change with every message: coalesce bursts into one reload.
function refreshCountsSoon() {
  clearTimeout(countsTimer)
  countsTimer = setTimeout(() => loadCounts().catch(() => {}), 250)
}

function findRoom(roomId) {
  return (
    state.writer.find((r) => r.roomId === roomId) ||
    state.applicant.find((r) => r.roomId === roomId) ||
    null
  )
}

function noteMessage(roomId, msg) {
  if (!msg) return
  const prev = state.latest[roomId]
  if (!prev || !Number.isInteger(prev.id) || (Number.isInteger(msg.id) && msg.id >= prev.id)) {
    state.latest[roomId] = msg
  }
}

// The newest message id known for a room (0 when it has none), for SUBSCRIBE's `since`.
async function knownLatestId(roomId) {
  if (!state.loaded) {
    try {
      await load()
    } catch {
      return null
    }
  }
  const id = state.latest[roomId]?.id
  return Number.isInteger(id) ? id : 0
}

function setUnread(roomId, count) {
  state.unread[roomId] = count
}

// A room I just opened by applying, before the next full reload.
function addAppliedRoom(room) {
  if (!findRoom(room.roomId)) state.applicant.unshift(room)
}

// A room as the server answered an action on it (leave, mute): it replaces the listed one.
function updateRoom(room) {
  for (const list of [state.writer, state.applicant]) {
    const i = list.findIndex((r) => r.roomId === room.roomId)
    if (i >= 0) list[i] = room
  }
}

function reset() {
  state.writer = []
  state.applicant = []
  state.unread = {}
  state.latest = {}
  state.loaded = false
}

export function useChats() {
  return {
    state,
    load,
    ensureLoaded,
    loadRooms,
    refreshCountsSoon,
    findRoom,
    noteMessage,
    knownLatestId,
    setUnread,
    addAppliedRoom,
    updateRoom,
    reset,
  }
}
