// Browser notifications (the Notification API) while the tab is hidden.
//
// The app asks for permission only at a moment that explains itself: once the user has a chat
// (a reply can come), with an in-app prompt whose "Turn on" button makes the browser's request;
// never on first load. "Not now" is remembered. A room's burst of messages makes one
// notification: another for that room only after a quiet spell, or after the user came back.
// Clicking one brings the tab forward and opens the room.
import { reactive } from 'vue'

const ASK_KEY = 'duochat.notify.ask'
const BURST_GAP_MS = 2 * 60 * 1000 // a room's messages closer than this are one burst
const ANSWER_SHOWN_MS = 8000 // "notifications are on" shows this long

const supported = typeof window !== 'undefined' && 'Notification' in window

function readDismissed() {
  try {
    return localStorage.getItem(ASK_KEY) === 'later'
  } catch {
    return false
  }
}

const state = reactive({
  supported,
  permission: supported ? Notification.permission : 'unsupported', // default | granted | denied
  dismissed: readDismissed(),
  answered: '', // what the browser said to this page's request: granted | denied
})

const bursts = new Map() // key -> {at, notification}

function refreshPermission() {
  if (supported) state.permission = Notification.permission
}

function canAsk() {
  return supported && state.permission === 'default' && !state.dismissed
}

async function enable() {
  if (!supported) return 'unsupported'
  let result
  try {
    result = await Notification.requestPermission()
  } catch {
    result = Notification.permission
  }
  state.permission = result
  state.answered = result === 'default' ? '' : result
  // The confirmation stays a moment, then makes room again.
  setTimeout(() => (state.answered = ''), ANSWER_SHOWN_MS)
  if (result !== 'default') dismiss()
  return result
}

function dismiss() {
  state.dismissed = true
  try {
    localStorage.setItem(ASK_KEY, 'later')
  } catch {
    // Private mode: asked again next visit.
  }
}

function hidden() {
  return document.visibilityState === 'hidden'
}

// Shows one notification for `key` (a room) unless this burst already has one. Returns whether
// it showed.
function show({ key, title, body = '', onClick }) {
  refreshPermission()
  if (!supported || state.permission !== 'granted' || !hidden()) return false
  const now = Date.now()
  const prev = bursts.get(key)
  if (prev && now - prev.at < BURST_GAP_MS) {
    prev.at = now // the burst goes on
    return false
  }
  let notification
  try {
    notification = new Notification(title, { body, tag: key, lang: document.documentElement.lang })
  } catch {
    return false // some browsers allow notifications only from a service worker
  }
  notification.onclick = () => {
    window.focus()
    notification.close()
    bursts.delete(key) // seen: the next message is news again
    onClick?.()
  }
  bursts.set(key, { at: now, notification })
  return true
}

// The permission may change in the browser's settings meanwhile.
window.addEventListener('focus', refreshPermission)

// Back in the tab: what was announced is seen, and the next message starts a new burst.
document.addEventListener('visibilitychange', () => {
  if (hidden()) return
  refreshPermission()
  for (const b of bursts.values()) b.notification?.close()
  bursts.clear()
})

export function useBrowserNotifications() {
  return { state, canAsk, enable, dismiss, show }
}
