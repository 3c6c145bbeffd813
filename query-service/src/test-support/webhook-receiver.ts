/**
 * A webhook receiver on loopback for the webhook tests: records every
 * request (headers and body) and answers as the test tells it to.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One request as the receiver got it. */
export interface ReceivedDelivery {
  path: string
  headers: IncomingMessage['headers']
  body: string
}

/** How to answer one request: a status, or `hang` (never answer, as a stuck endpoint does). */
export type Answer = number | 'hang'

/** A running receiver. */
export interface TestReceiver {
  url: (path?: string) => string
  received: ReceivedDelivery[]
  /** Decides each answer (default 200). */
  answer: (delivery: ReceivedDelivery) => Answer
  /** Resolves once `count` requests have arrived. */
  waitFor: (count: number) => Promise<void>
  close: () => Promise<void>
}

/** Starts a receiver on 127.0.0.1 with a free port. */
export async function startTestReceiver(): Promise<TestReceiver> {
  const hanging = new Set<ServerResponse>()
  const waiters: Array<{ count: number; resolve: () => void }> = []
  const receiver: TestReceiver = {
    url: () => '',
    received: [],
    answer: () => 200,
    waitFor: (count) =>
      new Promise((resolve) => {
        if (receiver.received.length >= count) resolve()
        else waiters.push({ count, resolve })
      }),
    close: () =>
      new Promise((resolve) => {
        for (const response of hanging) response.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const delivery = { path: request.url ?? '/', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') }
      receiver.received.push(delivery)
      const answer = receiver.answer(delivery)
      if (answer === 'hang') hanging.add(response)
      else response.writeHead(answer).end()
      for (const waiter of waiters.filter((w) => receiver.received.length >= w.count)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  receiver.url = (path = '/hook') => `http://127.0.0.1:${port}${path}`
  return receiver
}
