// Every backend call the app makes, named after what it does. Paths follow the public contract in
// docs/contract.md.
import { api, COOKIE_TRANSPORT, request } from './client.js'

const enc = encodeURIComponent
const put = (path) => request('PUT', path, { body: {} })

export const auth = {
  // The refresh token comes back as an HttpOnly cookie, not in the body.
  login: (username, password) =>
    request('POST', '/auth/login', {
      body: { username, password },
      auth: false,
      headers: COOKIE_TRANSPORT,
    }),
  register: (username, password) =>
    request('POST', '/auth/register', { body: { username, password }, auth: false }),
  // Revokes the sign-in the cookie belongs to, and clears the cookie.
  logout: () => request('POST', '/auth/logout', { body: {}, auth: false }),
  me: () => api.get('/auth/me'),
}

export const boards = {
  list: ({ status, q, limit = 20, cursor } = {}) => api.get('/boards', { status, q, limit, cursor }),
  get: (id) => api.get(`/boards/${enc(id)}`),
  create: (title, content) => api.post('/boards', { title, content }),
  apply: (id) => api.post(`/boards/${enc(id)}/apply`),
  match: (id, roomId) => api.post(`/boards/${enc(id)}/match`, { roomId }),
  close: (id) => api.del(`/boards/${enc(id)}`),
  rooms: (role) => api.get('/boards/rooms', { role }),
  room: (roomId) => api.get(`/boards/rooms/${enc(roomId)}`),
  // Either member; the room turns read-only for both, and the other is told.
  leave: (roomId) => api.post(`/boards/rooms/${enc(roomId)}/leave`),
  mute: (roomId, muted) =>
    muted ? put(`/boards/rooms/${enc(roomId)}/mute`) : api.del(`/boards/rooms/${enc(roomId)}/mute`),
  blocks: () => api.get('/boards/blocks'),
  block: (userId) => api.post('/boards/blocks', { userId }),
  unblock: (userId) => api.del(`/boards/blocks/${enc(userId)}`),
  // {reason, note?, roomId? | boardId?, messageIds?}; the reporter's block follows.
  report: (report) => api.post('/boards/reports', report),
}

export const chat = {
  history: (roomId, { before, after, limit = 50 } = {}) =>
    api.get(`/chat/rooms/${enc(roomId)}/messages`, { before, after, limit }),
  unread: () => api.get('/chat/rooms/unread'),
  latest: () => api.get('/chat/rooms/latest'),
  markRead: (roomId, lastReadId) => api.post(`/chat/rooms/${enc(roomId)}/read`, { lastReadId }),
  presence: (roomId) => api.get(`/chat/rooms/${enc(roomId)}/presence`),
  unsend: (roomId, messageId) => api.del(`/chat/rooms/${enc(roomId)}/messages/${enc(messageId)}`),
}

export const notify = {
  ticket: () => api.post('/notify/ticket'),
  alarms: ({ limit = 20, cursor } = {}) => api.get('/notify/alarms', { limit, cursor }),
  // The bell's list: one entry per room for its messages, with their unread `count`.
  bell: ({ limit = 20, cursor } = {}) => api.get('/notify/alarms/by-room', { limit, cursor }),
  markRoomRead: (roomId) => api.post('/notify/alarms/read', { roomId }),
  markRead: (ids) => api.post('/notify/alarms/read', { ids }),
}
