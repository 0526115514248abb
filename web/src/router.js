// SPA paths must not collide with the backend's path rules (/auth*, /boards*, /chat/*, /notify/*,
// /ws-stomp*): a reload goes to the load balancer first. Hence /board/:id and /room/:id.
import { createRouter, createWebHistory } from 'vue-router'
import { useSession } from './composables/useSession.js'
import LoginView from './views/LoginView.vue'
import BoardsView from './views/BoardsView.vue'
import BoardView from './views/BoardView.vue'
import ChatsView from './views/ChatsView.vue'
import RoomView from './views/RoomView.vue'
import BlockedView from './views/BlockedView.vue'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', name: 'login', component: LoginView, meta: { public: true } },
    { path: '/', name: 'boards', component: BoardsView },
    { path: '/board/:id', name: 'board', component: BoardView, props: true },
    { path: '/chats', name: 'chats', component: ChatsView },
    { path: '/room/:roomId', name: 'room', component: RoomView, props: true },
    { path: '/blocked', name: 'blocked', component: BlockedView },
    { path: '/:pathMatch(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  const session = useSession()
  await session.restore()
  const signedIn = Boolean(session.state.user)
  if (!to.meta.public && !signedIn) return { name: 'login', query: { next: to.fullPath } }
  if (to.name === 'login' && signedIn) return { name: 'boards' }
  return true
})
