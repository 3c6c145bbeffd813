/**
 * The webhook outbox's file: what survives a reopen when compaction, adds
 * and settlements interleave, and how large the file may grow while a
 * destination is down.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Outbox, type NewDelivery } from './outbox.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nhi-outbox-'))
  dirs.push(dir)
  return dir
}
const delivery = (id: string, destination = 'secops', size = 10): NewDelivery => ({ destination, id, type: 'finding.opened', body: JSON.stringify({ id, pad: 'x'.repeat(size) }) })

describe('webhook outbox', () => {
  it('keeps a delivery added while the file is being compacted', async () => {
    const dir = freshDir()
    const outbox = await Outbox.open({ dir })
    await outbox.add([delivery('big-1', 'secops', 600_000), delivery('big-2', 'secops', 600_000)])
    await outbox.settle(outbox.head('secops')!, 'delivered')
    // The last pending delivery settles (the file is past the compaction size) while a new one is being added.
    await Promise.all([outbox.settle(outbox.head('secops')!, 'delivered'), outbox.add([delivery('new')])])
    await outbox.close()
    const reopened = await Outbox.open({ dir })
    expect(reopened.pending().map((e) => e.id)).toEqual(['new'])
    await reopened.close()
  })

  it('stays bounded while one destination is down and others deliver', async () => {
    const dir = freshDir()
    const outbox = await Outbox.open({ dir })
    await outbox.add([delivery('stuck', 'down', 1000)])
    for (let i = 0; i < 60; i++) {
      await outbox.add([delivery(`ok-${i}`, 'up', 100_000)])
      await outbox.settle(outbox.head('up')!, 'delivered')
    }
    // 60 deliveries of 100 kB went through the file; it keeps only the stuck one once past the compaction size.
    expect(statSync(join(dir, 'outbox.log')).size).toBeLessThan(1024 * 1024 + 200_000)
    await outbox.close()
    const reopened = await Outbox.open({ dir })
    expect(reopened.pending().map((e) => e.id)).toEqual(['stuck'])
    await reopened.close()
  })
})
