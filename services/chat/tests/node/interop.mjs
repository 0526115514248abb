// Drives the chat service with @stomp/stompjs (over the `ws` package), the way the web client
// does: CONNECT with a `token` header, SUBSCRIBE with `since`, SEND with a receipt, then an
// ERROR for a room that is not ours. Prints one JSON line with what happened.
//
// usage: node interop.mjs <ws-url> <token> <roomId> <foreignRoomId>
import { Client } from '@stomp/stompjs'
import WebSocket from 'ws'

const [url, token, roomId, foreignRoomId] = process.argv.slice(2)
const result = { connected: null, receipt: null, messages: [], error: null, protocol: null }

function done(code) {
  console.log(JSON.stringify(result))
  process.exit(code)
}
setTimeout(() => {
  result.timeout = true
  done(1)
}, 20000)

let phase = 'own'
const client = new Client({
  webSocketFactory: () => {
    const ws = new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp'])
    ws.on('open', () => {
      result.protocol = ws.protocol
    })
    return ws
  },
  connectHeaders: { token },
  heartbeatIncoming: 10000,
  heartbeatOutgoing: 10000,
  reconnectDelay: 0,
  onConnect: (frame) => {
    result.connected = { version: frame.headers.version, user: frame.headers['user-name'] }
    client.subscribe(
      `/sub/chat/room/${roomId}`,
      (message) => {
        const body = JSON.parse(message.body)
        result.messages.push(body)
        if (body.type === 'TALK' && body.message === 'from stompjs') {
          phase = 'foreign'
          client.subscribe(`/sub/chat/room/${foreignRoomId}`, () => {}, {})
        }
      },
      { since: '0' },
    )
    const receipt = 'stompjs-1'
    client.watchForReceipt(receipt, (frame) => {
      result.receipt = frame.headers['receipt-id']
    })
    client.publish({
      destination: '/pub/chat/message',
      body: JSON.stringify({ type: 'TALK', roomId, message: 'from stompjs' }),
      headers: { receipt, 'content-type': 'application/json' },
    })
  },
  onStompError: (frame) => {
    result.error = { phase, message: frame.headers.message }
    client.deactivate().then(() => done(0))
  },
  onWebSocketClose: () => {
    if (!result.error) done(1)
  },
})
client.activate()
