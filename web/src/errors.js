// What the user reads when something fails. The servers answer with English codes
// (`{code, message}`) and the chat server refuses a frame with an English sentence; both are
// mapped to the app's language here, never shown raw.
import { i18n } from './i18n/index.js'

const { t, te } = i18n.global

// The chat server's refusal sentences (ERROR frames) and the app's own reasons for a message
// that did not go out, by their start.
const STOMP = [
  [/^message too long/i, 'tooLong'],
  [/^this room is read-only/i, 'readOnly'],
  [/^too many messages/i, 'tooFast'],
  [/^the server is busy/i, 'busy'],
  [/^you are not a member/i, 'notMember'],
  [/^message is empty/i, 'empty'],
  [/^too many connections/i, 'tooManyConnections'],
  [/^the connection dropped/i, 'dropped'],
  [/^the server did not confirm/i, 'noReceipt'],
]

export function stompText(message) {
  const hit = STOMP.find(([re]) => re.test(String(message || '')))
  return t(`errors.stomp.${hit ? hit[1] : 'generic'}`)
}

// The text for an error thrown by an API call (ApiError), a failed fetch, or anything else.
export function errorText(err) {
  if (!err) return ''
  if (err.code && te(`errors.code.${err.code}`)) {
    const text = t(`errors.code.${err.code}`)
    return err.retryAfter && err.status === 429 ? `${text} ${t('errors.retryAfter', { n: err.retryAfter })}` : text
  }
  if (err.status && te(`errors.status.${err.status}`)) return t(`errors.status.${err.status}`)
  if (err.status >= 500) return t('errors.status.503')
  if (err instanceof TypeError) return t('errors.network') // fetch could not reach the server
  return t('errors.generic')
}

// A registration's problems per field: the server lists each broken rule in `details` as
// {loc: [..., field], type: code}. Returns {username: [text], password: [text], form: [text]}.
export function fieldErrors(err) {
  const out = { username: [], password: [], form: [] }
  const details = Array.isArray(err?.details) ? err.details : []
  for (const d of details) {
    const field = Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : null
    const key = field in out && field !== 'form' ? field : 'form'
    const code = te(`errors.code.${d.type}`) ? d.type : null
    const text = code ? t(`errors.code.${code}`) : null
    if (text && !out[key].includes(text)) out[key].push(text)
  }
  if (!out.username.length && !out.password.length && !out.form.length) {
    const text = errorText(err)
    const field = /^username/.test(err?.code || '') ? 'username' : /password/.test(err?.code || '') ? 'password' : 'form'
    out[field].push(text)
  }
  return out
}
