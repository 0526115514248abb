// The conversation's STOMP additions as a standard client sees them, with @stomp/stompjs (over
// the `ws` package): a SEND with a clientMessageId is echoed with it, a resend is receipted and
// not stored again; a typing SEND reaches the other member as TYPING; a read mark (REST) as
// READ; an unsend (REST) as DELETED. Prints one JSON line with what each member received.
//
// usage: node signals.mjs <ws-url> <http-url> <alice-token> <bob-token> <roomId>
import { Client } from '@stomp/stompjs'
import WebSocket from 'ws'

const [wsUrl, httpUrl, aliceToken, bobToken, roomId] = process.argv.slice(2)
const KEY = 'stompjs-key-1'
const result = { alice: [], bob: [], receipts: [], steps: [] }

function done(code) {
  console.log(JSON.stringify(result))
  process.exit(code)
}
setTimeout(() => {
  result.timeout = true
  done(1)
}, 30000)

function connect(token, into) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(wsUrl, ['v12.stomp']),
      connectHeaders: { token },
      reconnectDelay: 0,
      onConnect: () => {
        const receipt = `sub-${Math.random()}`
        client.watchForReceipt(receipt, () => resolve(client))
        client.subscribe(`/sub/chat/room/${roomId}`, (m) => into.push(JSON.parse(m.body)), {
          receipt,
        })
      },
      onStompError: (frame) => reject(new Error(frame.headers.message)),
    })
    client.activate()
  })
}

function waitFor(check, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const tick = () => {
      const found = check()
      if (found) return resolve(found)
      if (Date.now() - started > 10000) return reject(new Error(`timed out waiting for ${what}`))
      setTimeout(tick, 20)
    }
    tick()
  })
}

function sendTalk(client, receipt) {
  return new Promise((resolve) => {
    client.watchForReceipt(receipt, () => {
      result.receipts.push(receipt)
      resolve()
    })
    client.publish({
      destination: '/pub/chat/message',
      body: JSON.stringify({ type: 'TALK', roomId, message: 'hello from stompjs', clientMessageId: KEY }),
      headers: { receipt, 'content-type': 'application/json' },
    })
  })
}

async function rest(method, path, token, body) {
  const res = await fetch(`${httpUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  })
  return res.status
}

try {
  const alice = await connect(aliceToken, result.alice)
  const bob = await connect(bobToken, result.bob)
  const talk = (list) => list.find((m) => m.type === 'TALK')

  await sendTalk(alice, 'send-1')
  const stored = await waitFor(() => talk(result.bob), 'the TALK at bob')
  await waitFor(() => talk(result.alice), 'the echo at alice')
  // The same message again (a client that lost the receipt): receipted, not stored twice.
  await sendTalk(alice, 'send-2')
  result.steps.push('resent')

  alice.publish({ destination: '/pub/chat/typing', body: JSON.stringify({ roomId }) })
  await waitFor(() => result.bob.find((m) => m.type === 'TYPING'), 'TYPING at bob')

  result.readStatus = await rest('POST', `/chat/rooms/${roomId}/read`, bobToken, {
    lastReadId: stored.id,
  })
  await waitFor(() => result.alice.find((m) => m.type === 'READ'), 'READ at alice')

  result.unsendStatus = await rest('DELETE', `/chat/rooms/${roomId}/messages/${stored.id}`, aliceToken)
  await waitFor(() => result.bob.find((m) => m.type === 'DELETED'), 'DELETED at bob')

  // Anything the resend might have stored late would have arrived by now.
  await new Promise((r) => setTimeout(r, 300))
  await alice.deactivate()
  await bob.deactivate()
  done(0)
} catch (err) {
  result.error = String(err)
  done(1)
}
