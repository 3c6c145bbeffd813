/**
 * A TCP proxy that a test can make stop answering, the two ways a server
 * goes away on a network: `down()` closes the port (new connections are
 * refused, open ones are reset), `blackhole()` keeps every connection open
 * and accepts new ones but never forwards or answers a byte (a hung host, a
 * dropped route). `up()` forwards
 * again on the same port.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

/** What the proxy does with connections. */
export type ProxyMode = 'forwarding' | 'down' | 'blackhole'

/** A running proxy. */
export interface TcpProxy {
  port: number
  readonly mode: ProxyMode
  /** Closes the listening port and resets every open connection. */
  down(): Promise<void>
  /** Silences open connections (kept open, nothing forwarded or answered) and leaves new ones unanswered too. */
  blackhole(): Promise<void>
  /** Forwards again (listening again on the same port if it was down); unanswered connections are reset. */
  up(): Promise<void>
  /** Connections accepted so far. */
  readonly accepted: number
  close(): Promise<void>
}

/** Proxies `127.0.0.1:<port>` to `target`; port 0 picks a free one. */
export async function startTcpProxy(target: { host?: string; port: number }, port = 0): Promise<TcpProxy> {
  let mode: ProxyMode = 'forwarding'
  let accepted = 0
  const open = new Set<Socket>()
  /** For each forwarded connection, how to make it go silent. */
  const forwarding = new Set<() => void>()
  const track = (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
    socket.on('error', () => socket.destroy())
  }
  const resetAll = () => {
    for (const socket of open) {
      try {
        socket.resetAndDestroy()
      } catch {
        socket.destroy()
      }
    }
  }

  const server: Server = createServer((client) => {
    accepted++
    track(client)
    if (mode === 'blackhole') {
      // Read and drop whatever arrives, answer nothing.
      client.resume()
      return
    }
    const upstream = connect({ host: target.host ?? '127.0.0.1', port: target.port })
    track(upstream)
    client.pipe(upstream)
    upstream.pipe(client)
    const closeClient = () => client.destroy()
    client.once('close', () => upstream.destroy())
    upstream.once('close', closeClient)
    // Going silent: the client's connection stays open, but nothing it sends
    // is forwarded and nothing comes back (no reset, no close), as when a
    // host hangs.
    const silence = () => {
      client.unpipe(upstream)
      upstream.unpipe(client)
      upstream.off('close', closeClient)
      upstream.destroy()
      client.resume()
    }
    forwarding.add(silence)
    client.once('close', () => forwarding.delete(silence))
  })
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  await listen()
  port = (server.address() as { port: number }).port

  const closeListener = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))

  return {
    get port() {
      return port
    },
    get mode() {
      return mode
    },
    get accepted() {
      return accepted
    },
    down: async () => {
      mode = 'down'
      const closed = closeListener()
      resetAll()
      await closed
    },
    blackhole: async () => {
      mode = 'blackhole'
      for (const silence of forwarding) silence()
      forwarding.clear()
      if (!server.listening) await listen()
    },
    up: async () => {
      if (mode === 'forwarding') return
      mode = 'forwarding'
      resetAll()
      if (!server.listening) await listen()
    },
    close: async () => {
      mode = 'down'
      const closed = closeListener()
      resetAll()
      await closed
    },
  }
}
