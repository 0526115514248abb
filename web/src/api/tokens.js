// The access token lives in localStorage so that a reload keeps the session. Every tab shares it,
// which is why refreshing takes a cross-tab lock (see refreshTokens in client.js). The refresh
// token never reaches script: the server keeps it in an HttpOnly cookie scoped to /auth.
const KEY = 'duochat.tokens'

export function readTokens() {
  try {
    const raw = localStorage.getItem(KEY)
    return raw ? JSON.parse(raw) : null
  } catch {
    return null
  }
}

export function saveTokens({ accessToken, expiresIn }) {
  const tokens = {
    accessToken,
    // A little early, so that a token is never sent in its last seconds.
    expiresAt: Date.now() + Math.max(0, (Number(expiresIn) || 0) - 10) * 1000,
  }
  localStorage.setItem(KEY, JSON.stringify(tokens))
  return tokens
}

export function clearTokens() {
  localStorage.removeItem(KEY)
}

export function isFresh(tokens, marginMs = 0) {
  return Boolean(tokens?.accessToken) && tokens.expiresAt - marginMs > Date.now()
}
