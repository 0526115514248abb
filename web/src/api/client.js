import { clearTokens, isFresh, readTokens, saveTokens } from './tokens.js'

// A failed call. `code` is the server's English error code, which the app maps to text
// (errors.js); `message` is the server's English sentence, for logs only. `details` lists each
// problem of a request that failed validation ({loc, msg, type}).
export class ApiError extends Error {
  constructor(status, code, message, { details = null, retryAfter = null } = {}) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
    this.retryAfter = retryAfter
  }
}

// Reads any error body: our `{code, message, details?}` shape, or FastAPI's default 422
// `{detail: [...]}` / `{detail: "..."}`. Returns [code, message, details].
export function describeError(status, body) {
  if (body && typeof body === 'object') {
    if (typeof body.message === 'string') {
      return [body.code || null, body.message, Array.isArray(body.details) ? body.details : null]
    }
    if (typeof body.detail === 'string') return [body.code || null, body.detail, null]
    if (Array.isArray(body.detail)) {
      const parts = body.detail.map((d) => d.msg).join('; ')
      return ['validation_error', parts, body.detail]
    }
  }
  return [null, `Request failed (${status})`, null]
}

// Called when the refresh token is rejected: the session is over.
let onSessionLost = () => {}
export function setSessionLostHandler(fn) {
  onSessionLost = fn
}

let refreshing = null

// The refresh token travels in the HttpOnly cookie (see auth's cookies.py), never in script.
export const COOKIE_TRANSPORT = { 'X-Duochat-Token-Transport': 'cookie' }

async function postRefresh() {
  const res = await fetch('/auth/refresh', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...COOKIE_TRANSPORT },
    body: '{}',
    credentials: 'same-origin',
  })
  if (!res.ok) throw new ApiError(res.status, 'refresh_failed', 'Your session has expired.')
  return saveTokens(await res.json())
}

// Refresh tokens rotate and reusing one revokes the whole family, so there must be exactly one
// refresh in flight: one promise per tab, and a Web Lock across tabs. Whoever gets a turn first
// checks whether the token that failed was already replaced (by an earlier refresh in this tab or
// by another tab) and then just uses the new one.
function replaced(current, rejected) {
  return Boolean(current?.accessToken) && current.accessToken !== rejected && isFresh(current)
}

async function doRefresh(rejected) {
  const run = async () => {
    const current = readTokens()
    if (!current) throw new ApiError(401, 'signed_out', 'You are signed out.')
    if (replaced(current, rejected)) return current
    return postRefresh()
  }
  if (navigator.locks?.request) return navigator.locks.request('duochat.refresh', run)
  return run()
}

// `rejected` is the access token that was refused (or found expired).
export function refreshTokens(rejected) {
  const current = readTokens()
  if (replaced(current, rejected)) return Promise.resolve(current)
  if (!refreshing) {
    refreshing = doRefresh(rejected)
      .catch((err) => {
        if (err instanceof ApiError && err.status < 500) {
          clearTokens()
          onSessionLost()
        }
        throw err
      })
      .finally(() => {
        refreshing = null
      })
  }
  return refreshing
}

// A valid access token, refreshed first when it is about to expire.
export async function accessToken(marginMs = 15000) {
  const tokens = readTokens()
  if (!tokens) return null
  if (isFresh(tokens, marginMs)) return tokens.accessToken
  return (await refreshTokens(tokens.accessToken)).accessToken
}

async function send(method, path, body, token, extraHeaders) {
  const headers = { ...extraHeaders }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (token) headers.Authorization = `Bearer ${token}`
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
}

// One JSON call. Authenticated calls attach the access token and, on a 401, refresh once and
// retry, so that an expired token never reaches the user.
export async function request(method, path, { body, query, auth = true, headers } = {}) {
  if (query) {
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, v)
    }
    const qs = params.toString()
    if (qs) path += `?${qs}`
  }
  let token = auth ? await accessToken() : null
  let res = await send(method, path, body, token, headers)
  if (res.status === 401 && auth && token) {
    token = (await refreshTokens(token)).accessToken
    res = await send(method, path, body, token, headers)
  }
  if (res.status === 204) return null
  const text = await res.text()
  let data = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = null
    }
  }
  if (!res.ok) {
    const [code, message, details] = describeError(res.status, data)
    const retryAfter = Number(res.headers.get('Retry-After')) || null
    throw new ApiError(res.status, code, message, { details, retryAfter })
  }
  return data
}

export const api = {
  get: (path, query) => request('GET', path, { query }),
  post: (path, body) => request('POST', path, { body: body ?? {} }),
  del: (path) => request('DELETE', path),
}
