// Who is signed in. One reactive object for the whole app.
import { reactive, readonly } from 'vue'
import { auth } from '../api/endpoints.js'
import { clearTokens, readTokens, saveTokens } from '../api/tokens.js'
import { setSessionLostHandler } from '../api/client.js'

const state = reactive({
  user: null, // {id, username}
  ready: false, // true once we know whether a stored session is still good
})

const listeners = new Set()

function setUser(user) {
  state.user = user
  for (const fn of listeners) fn(user)
}

setSessionLostHandler(() => setUser(null))

// Signing out in one tab signs out the others.
window.addEventListener('storage', (e) => {
  if (e.key === 'duochat.tokens' && !e.newValue && state.user) setUser(null)
})

// Restores a stored session on page load (GET /auth/me refreshes the token if it must).
async function restore() {
  if (state.ready) return
  try {
    if (readTokens()) setUser(await auth.me())
  } catch (err) {
    // A refused session is over; an unreachable server is not a reason to forget it.
    if (err?.status === 401) clearTokens()
    setUser(null)
  } finally {
    state.ready = true
  }
}

async function signIn(username, password) {
  saveTokens(await auth.login(username, password))
  setUser(await auth.me())
}

async function register(username, password) {
  await auth.register(username, password)
  await signIn(username, password)
}

// Revokes the refresh token on the server; the local session ends even if that call fails.
async function signOut() {
  const tokens = readTokens()
  clearTokens()
  setUser(null)
  if (tokens) {
    try {
      await auth.logout()
    } catch {
      // Already revoked or offline: nothing more to do locally.
    }
  }
}

// fn(user) runs on every sign-in and sign-out (user is null then).
function onUserChange(fn) {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

export function useSession() {
  return { state: readonly(state), restore, signIn, register, signOut, onUserChange }
}
