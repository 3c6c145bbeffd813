/**
 * bench/findings-quality: precision and recall of the behavioural findings
 * (burst, sustained_growth, privilege_drift, dormant) on a labelled,
 * seeded population, over five seeds.
 *
 * Population (per seed): 2,000 identities, 500 in each volume tier of about
 * 10-100, 100-1k, 1k-10k and 10k-100k events a day (log-uniform within the
 * tier); 60 % with a working-day shape (three times busier 08-18 UTC), 50 %
 * with quiet weekends (0.3 of a weekday); Poisson noise per five minutes;
 * each identity uses a long tail of activity names (Zipf over 5 to 300).
 * Seven days of history, then a 28-day range judged as of its end.
 *
 * Labelled cases, one per identity:
 * - burst: 5m, 30m, 1h or 6h at 5x, 10x or 100x the identity's mean rate;
 * - growth: the rate times 3 or 5 from 3, 7 or 14 days before the end;
 * - drift by type (a new activity type) and by name (a new name of a known
 *   type), at 1 % or 5 % of the identity's traffic, for the last 1-14 days;
 * - dormancy: silent for the last 7, 14, 21 or 28 days;
 * - near misses that must stay quiet: a 3x blip (5m to 6h), a weekly job
 *   (an hour at 20x, same hour every week), a daily cron spike (the same
 *   five minutes every day), a holiday dip (a day at 10 %).
 * The rest are steady.
 *
 * The rules are the service's own (query-service/src/findings/detect.ts)
 * with the default policy, fed exact counts (the SQL that reads them is
 * covered by findings.test.ts); the burst screen runs too, and any true
 * burst it would have dropped is counted. A case is *detectable* when an
 * oracle that knows the true expected counts would find it with
 * probability >= 0.99 under the same test (level, factor, floor); recall is
 * over detectable cases, and cases that are not are listed with why.
 *
 * Targets (README, "Findings quality"): recall >= 0.95 per kind and tier where detectable;
 * <= 1 % of steady identities (near misses included) with any behavioural
 * finding. Benchmarks do not assert.
 */
import { parsePolicy } from '../query-service/src/policy/index.js'
import { readFileSync } from 'node:fs'
import {
  burstEpisodes,
  burstTestLevels,
  burstHop,
  dormancyThreshold,
  mayBurst,
  newNameIsDrift,
  sustainedGrowth,
  weeklyAdjusted,
  type BurstRule,
} from '../query-service/src/findings/detect.js'
import { logPoissonUpperTail } from '../query-service/src/findings/stats.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const STEP = 5 * MINUTE
const SLOTS_PER_DAY = DAY / STEP
const IDENTITIES = Number(process.env.QUALITY_IDENTITIES ?? 2000)
const SEEDS = [1, 2, 3, 4, 5]
const HISTORY_DAYS = 7
const RANGE_DAYS = 28
const START = Date.UTC(2026, 8, 28) // a Monday
const FROM = START + HISTORY_DAYS * DAY
const TO = FROM + RANGE_DAYS * DAY
const SLOTS = (TO - START) / STEP
const TIERS = ['10-100/day', '100-1k/day', '1k-10k/day', '10k-100k/day'] as const
const KINDS = ['burst', 'sustained_growth', 'privilege_drift', 'dormant'] as const
type Kind = (typeof KINDS)[number]

const policyText = readFileSync(new URL('../query-service/policy/default-policy.yaml', import.meta.url), 'utf8')
const d = parsePolicy(policyText, { source: 'default policy' }).policy.detection
const WINDOWS = d.burst_windows.map((w) => w.ms)
const RULE: BurstRule = {
  from: FROM,
  to: TO,
  windows: WINDOWS,
  levels: burstTestLevels(WINDOWS, d.burst_false_alarms),
  baselineDays: Math.round(d.burst_baseline.ms / DAY),
  factor: d.burst_factor,
  minEvents: d.burst_min_events,
  maxEpisodeMs: d.sustained_growth_period.ms,
  shiftFactor: d.sustained_growth_factor,
}

// ---- seeded randomness

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function poisson(random: () => number, mu: number): number {
  if (mu <= 0) return 0
  if (mu < 30) {
    const limit = Math.exp(-mu)
    let k = 0
    let p = random()
    while (p > limit) {
      k++
      p *= random()
    }
    return k
  }
  // Normal approximation for large means (Box-Muller).
  const z = Math.sqrt(-2 * Math.log(random() || 1e-12)) * Math.cos(2 * Math.PI * random())
  return Math.max(0, Math.round(mu + Math.sqrt(mu) * z))
}

const pick = <T>(random: () => number, values: readonly T[]): T => values[Math.floor(random() * values.length)] as T

// ---- the population

type Role =
  | { kind: 'steady' }
  | { kind: 'near_miss'; shape: 'blip3' | 'weekly_job' | 'daily_cron' | 'holiday_dip'; detail: string }
  | { kind: 'burst'; start: number; length: number; factor: number }
  | { kind: 'sustained_growth'; start: number; factor: number }
  | { kind: 'drift_type' | 'drift_name'; share: number; days: number }
  | { kind: 'dormant'; silentFrom: number }

interface Identity {
  tier: number
  daily: number
  role: Role
  /** True rate per 5-minute slot, injected cases included. */
  rate: Float64Array
  /** The same without the injected case (what is "expected"). */
  normal: Float64Array
}

function makeIdentity(random: () => number, index: number): Identity {
  const tier = index % 4
  const daily = 10 ** (1 + tier + random())
  const diurnal = random() < 0.6
  const weekly = random() < 0.5
  const hourWeight = (h: number) => (diurnal ? (h >= 8 && h < 18 ? 3 : 1) / ((10 * 3 + 14) / 24) : 1)
  const dayWeight = (dow: number) => (weekly ? (dow >= 5 ? 0.3 : 1) / ((5 + 0.6) / 7) : 1)
  const normal = new Float64Array(SLOTS)
  for (let i = 0; i < SLOTS; i++) {
    const t = START + i * STEP
    const dow = Math.floor((t - START) / DAY) % 7 // START is a Monday
    normal[i] = (daily / SLOTS_PER_DAY) * hourWeight(Math.floor((t % DAY) / HOUR)) * dayWeight(dow)
  }
  const rate = Float64Array.from(normal)
  const mean = daily / SLOTS_PER_DAY
  const slotOf = (t: number) => Math.round((t - START) / STEP)
  const r = random()
  let role: Role
  if (r < 0.5) role = { kind: 'steady' }
  else if (r < 0.6) {
    const shape = pick(random, ['blip3', 'weekly_job', 'daily_cron', 'holiday_dip'] as const)
    if (shape === 'blip3') {
      const length = pick(random, [5 * MINUTE, HOUR, 6 * HOUR])
      const start = FROM + DAY + Math.floor((random() * (RANGE_DAYS - 2) * DAY) / STEP) * STEP
      for (let t = start; t < start + length; t += STEP) rate[slotOf(t)]! += 2 * (normal[slotOf(t)] as number)
      role = { kind: 'near_miss', shape, detail: `3x for ${length / MINUTE}m` }
    } else if (shape === 'weekly_job') {
      const offset = Math.floor(random() * 7 * 24) * HOUR
      for (let t = START + offset; t < TO; t += 7 * DAY) for (let s = t; s < t + HOUR; s += STEP) rate[slotOf(s)]! += Math.max(19 * mean, 20 / 12)
      role = { kind: 'near_miss', shape, detail: 'an hour at 20x every week' }
    } else if (shape === 'daily_cron') {
      const offset = Math.floor(random() * SLOTS_PER_DAY) * STEP
      for (let t = START + offset; t < TO; t += DAY) rate[slotOf(t)]! += Math.max(30 * mean, 15)
      role = { kind: 'near_miss', shape, detail: 'the same 5m every day' }
    } else {
      const day = FROM + Math.floor(random() * RANGE_DAYS) * DAY
      for (let t = day; t < day + DAY; t += STEP) rate[slotOf(t)]! *= 0.1
      role = { kind: 'near_miss', shape, detail: 'a day at 10%' }
    }
  } else if (r < 0.76) {
    const length = pick(random, [5 * MINUTE, 30 * MINUTE, HOUR, 6 * HOUR])
    const factor = pick(random, [5, 10, 100])
    const start = FROM + DAY + Math.floor((random() * ((RANGE_DAYS - 2) * DAY - length)) / STEP) * STEP
    for (let t = start; t < start + length; t += STEP) rate[slotOf(t)]! += (factor - 1) * mean
    role = { kind: 'burst', start, length, factor }
  } else if (r < 0.84) {
    const factor = pick(random, [3, 5])
    const start = TO - pick(random, [3, 7, 14]) * DAY
    for (let t = start; t < TO; t += STEP) rate[slotOf(t)]! *= factor
    role = { kind: 'sustained_growth', start, factor }
  } else if (r < 0.92) {
    role = { kind: random() < 0.5 ? 'drift_type' : 'drift_name', share: pick(random, [0.01, 0.05]), days: pick(random, [1, 3, 7, 14]) }
  } else {
    const silentFrom = TO - pick(random, [7, 14, 21, 28]) * DAY - Math.floor(random() * 12) * HOUR
    for (let t = silentFrom; t < TO; t += STEP) rate[slotOf(t)] = 0
    role = { kind: 'dormant', silentFrom }
  }
  return { tier, daily, role, rate, normal }
}

// ---- oracles: is the case detectable at all?

/** Smallest count a window must hold to fire when `mu0` is truly expected. */
function critical(mu0: number, level: number): number {
  const logLevel = Math.log(level)
  let lo = Math.max(RULE.minEvents, Math.floor(RULE.factor * mu0))
  if (logPoissonUpperTail(lo, RULE.factor * mu0) <= logLevel) return lo
  let hi = lo + 1
  while (logPoissonUpperTail(hi, RULE.factor * mu0) > logLevel) hi = lo + 2 * (hi - lo)
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (logPoissonUpperTail(mid, RULE.factor * mu0) <= logLevel) hi = mid
    else lo = mid
  }
  return hi
}

function burstDetectable(id: Identity, role: Extract<Role, { kind: 'burst' }>): boolean {
  let best = 0
  WINDOWS.forEach((length, w) => {
    const hop = burstHop(length)
    for (let t = Math.floor((role.start - length) / hop) * hop + hop; t < role.start + role.length; t += hop) {
      let mu0 = 0
      let mu1 = 0
      for (let s = t; s < t + length; s += STEP) {
        const i = Math.round((s - START) / STEP)
        mu0 += id.normal[i] ?? 0
        mu1 += id.rate[i] ?? 0
      }
      best = Math.max(best, Math.exp(logPoissonUpperTail(critical(mu0, RULE.levels[w] as number), mu1)))
    }
  })
  return best >= 0.99
}

function growthDetectable(id: Identity, role: Extract<Role, { kind: 'sustained_growth' }>): boolean {
  // The normal count of each day, and their mean: what the weekday-adjusted rule compares against.
  const normalDay = (day: number) => id.normal.subarray(day * SLOTS_PER_DAY, (day + 1) * SLOTS_PER_DAY).reduce((a, b) => a + b, 0)
  const total = (TO - START) / DAY
  const m = Array.from({ length: total }, (_, k) => normalDay(k)).reduce((a, b) => a + b, 0) / total
  // Each recent day, adjusted by its weekday's share, must clear the band (m + 3 spreads; a Poisson spread is about sqrt(m)) and factor x m.
  const threshold = Math.max(m + 3 * Math.sqrt(m), d.sustained_growth_factor * m)
  let power = 1
  for (let k = total - d.sustained_growth_periods; k < total; k++) {
    const mu = normalDay(k)
    power *= Math.exp(logPoissonUpperTail(Math.ceil((threshold * mu) / m), role.factor * mu))
  }
  return power * Math.exp(logPoissonUpperTail(d.sustained_growth_min_events, role.factor * normalDay(total - 1))) >= 0.99
}

const driftRate = (id: Identity, role: Extract<Role, { kind: 'drift_type' | 'drift_name' }>) => id.daily * role.share

function driftDetectable(id: Identity, role: Extract<Role, { kind: 'drift_type' | 'drift_name' }>): boolean {
  const rate = driftRate(id, role)
  if (role.kind === 'drift_type') return rate * role.days >= Math.log(100)
  // Enough events, at a rate whose absence from the baseline is clearly improbable.
  return Math.exp(logPoissonUpperTail(d.drift_min_events, rate * role.days)) >= 0.99 && Math.exp((-rate * d.burst_baseline.ms) / DAY) <= 0.001 / 10
}

// ---- one seed

interface Outcome {
  tier: number
  label: Kind | 'steady'
  detail: string
  detectable: boolean
  found: Set<Kind>
  /** Findings of the labelled kind that matched the case (bursts: overlapping it). */
  hit: boolean
  /** Findings of the labelled kind that did not. */
  misplaced: number
  screenDropped: boolean
}

function judge(random: () => number, id: Identity): Outcome {
  const counts = new Float64Array(SLOTS)
  for (let i = 0; i < SLOTS; i++) counts[i] = poisson(random, id.rate[i] as number)
  let firstEvent = START
  while (firstEvent < TO && counts[(firstEvent - START) / STEP] === 0) firstEvent += STEP
  const found = new Set<Kind>()
  const role = id.role

  // burst (the screen first, as the service does)
  const days = Array.from({ length: (TO - START) / DAY }, (_, k) => counts.subarray(k * SLOTS_PER_DAY, (k + 1) * SLOTS_PER_DAY).reduce((a, b) => a + b, 0))
  const maxima = WINDOWS.map((length) =>
    Array.from({ length: RANGE_DAYS }, (_, day) => {
      let most = 0
      const dayStart = FROM + day * DAY
      for (let t = dayStart; t < dayStart + DAY; t += burstHop(length)) {
        let sum = 0
        for (let s = t; s < Math.min(t + length, TO); s += STEP) sum += counts[(s - START) / STEP] as number
        most = Math.max(most, sum)
      }
      return most
    }),
  )
  const screened = mayBurst({ days, maxima, firstRangeDay: HISTORY_DAYS }, RULE)
  const episodes = burstEpisodes({ startMs: START, stepMs: STEP, counts, firstEventMs: firstEvent }, RULE)
  if (episodes.length > 0) found.add('burst')
  const screenDropped = !screened && episodes.length > 0

  // sustained growth: daily periods of the range, the week's shape taken out
  const periods = days.slice(HISTORY_DAYS)
  const growth = sustainedGrowth(weeklyAdjusted(periods, periods.length - d.sustained_growth_periods, FROM, DAY), {
    periods: d.sustained_growth_periods,
    factor: d.sustained_growth_factor,
    minEvents: d.sustained_growth_min_events,
  })
  if (growth && (periods[periods.length - 1] ?? 0) >= d.sustained_growth_min_events) found.add('sustained_growth')

  // dormancy: the last event, and the longest silence between active hours before it
  let last = -1
  for (let i = SLOTS - 1; i >= 0; i--) if ((counts[i] as number) > 0) {
    last = START + i * STEP
    break
  }
  if (last > 0) {
    let longest = 0
    let previousHour = -1
    for (let h = 0; h * HOUR < last - START + HOUR; h++) {
      let any = false
      for (let i = h * 12; i < h * 12 + 12 && i < SLOTS; i++) if ((counts[i] as number) > 0) any = true
      if (!any) continue
      if (previousHour >= 0) longest = Math.max(longest, (h - previousHour - 1) * HOUR)
      previousHour = h
    }
    const threshold = dormancyThreshold(longest, { afterMs: d.dormant_after.ms, earlyAfterMs: d.dormant_early_after.ms, gapFactor: d.dormant_gap_factor })
    if (TO - last > threshold) found.add('dormant')
  }

  // drift: the identity's long tail of names (Zipf), and an injected new type or name
  const names = Math.min(300, Math.round(5 + id.daily / 50))
  const harmonic = Array.from({ length: names }, (_, i) => 1 / (i + 1)).reduce((a, b) => a + b, 0)
  for (let i = 0; i < names; i++) {
    const perDay = (id.daily / harmonic / (i + 1)) * (role.kind === 'dormant' ? (role.silentFrom - START) / (TO - START) : 1)
    if (poisson(random, perDay * HISTORY_DAYS) > 0) continue
    const inRange = poisson(random, perDay * RANGE_DAYS)
    if (inRange === 0) continue
    const firstSeen = FROM + RANGE_DAYS * DAY * (1 - random() ** (1 / inRange))
    if (newNameIsDrift(inRange, firstSeen, TO, d.burst_baseline.ms, d.drift_min_events)) found.add('privilege_drift')
  }
  if (role.kind === 'drift_type' || role.kind === 'drift_name') {
    const events = poisson(random, driftRate(id, role) * role.days)
    const firstSeen = TO - role.days * DAY * random() ** (1 / Math.max(1, events))
    const drift = role.kind === 'drift_type' ? events >= 1 : newNameIsDrift(events, firstSeen, TO, d.burst_baseline.ms, d.drift_min_events)
    if (drift) found.add('privilege_drift')
  }

  // labels
  if (role.kind === 'steady' || role.kind === 'near_miss') {
    return { tier: id.tier, label: 'steady', detail: role.kind === 'near_miss' ? role.shape : 'steady', detectable: false, found, hit: false, misplaced: 0, screenDropped }
  }
  const label: Kind = role.kind === 'drift_type' || role.kind === 'drift_name' ? 'privilege_drift' : role.kind
  let detail = ''
  let detectable = false
  let hit = found.has(label)
  let misplaced = 0
  if (role.kind === 'burst') {
    detail = `${role.length / MINUTE}m at ${role.factor}x`
    detectable = burstDetectable(id, role)
    const near = (e: { from: number; to: number }) => e.to > role.start - 6 * HOUR && e.from < role.start + role.length + 6 * HOUR
    hit = episodes.some(near)
    misplaced = episodes.filter((e) => !near(e)).length
  } else if (role.kind === 'sustained_growth') {
    detail = `${role.factor}x for ${(TO - role.start) / DAY}d`
    detectable = growthDetectable(id, role)
  } else if (role.kind === 'dormant') {
    detail = `silent ${Math.floor((TO - role.silentFrom) / DAY)}d`
    detectable = true
  } else {
    detail = `${role.kind === 'drift_type' ? 'new type' : 'new name'} at ${role.share * 100}% for ${role.days}d`
    detectable = driftDetectable(id, role)
  }
  return { tier: id.tier, label, detail, detectable, found, hit, misplaced, screenDropped }
}

// ---- report

function main(): void {
  const started = performance.now()
  const outcomes: Outcome[] = []
  const perSeed: Array<{ seed: number; steadyFlagged: number; steady: number }> = []
  for (const seed of SEEDS) {
    const random = rng(seed * 7919)
    let steadyFlagged = 0
    let steady = 0
    for (let i = 0; i < IDENTITIES; i++) {
      const outcome = judge(random, makeIdentity(random, i))
      outcomes.push(outcome)
      if (outcome.label === 'steady') {
        steady++
        if (outcome.found.size > 0) steadyFlagged++
      }
    }
    perSeed.push({ seed, steadyFlagged, steady })
  }
  const pct = (a: number, b: number) => (b === 0 ? '-' : (a / b).toFixed(3))

  console.log(`population: ${IDENTITIES} identities x ${SEEDS.length} seeds; ${HISTORY_DAYS}d history + ${RANGE_DAYS}d range; default policy (burst_windows [${d.burst_windows.map((w) => w.text).join(', ')}], burst_factor ${d.burst_factor}, burst_min_events ${d.burst_min_events}, burst_false_alarms ${d.burst_false_alarms})`)
  console.log('\nrecall over detectable cases (found / detectable), by kind and tier; [undetectable cases, and how many were found anyway]')
  console.log(`| kind | ${TIERS.join(' | ')} |`)
  console.log(`|---|${TIERS.map(() => '---').join('|')}|`)
  for (const kind of KINDS) {
    const cells = TIERS.map((_, tier) => {
      const cases = outcomes.filter((o) => o.label === kind && o.tier === tier)
      const detectable = cases.filter((o) => o.detectable)
      const hits = detectable.filter((o) => o.hit).length
      const undetectable = cases.filter((o) => !o.detectable)
      return `${pct(hits, detectable.length)} (${hits}/${detectable.length}) [${undetectable.length}, ${undetectable.filter((o) => o.hit).length} found]`
    })
    console.log(`| ${kind} | ${cells.join(' | ')} |`)
  }

  console.log('\nprecision (findings that match a labelled case / all findings of the kind), by kind and tier')
  console.log(`| kind | ${TIERS.join(' | ')} |`)
  console.log(`|---|${TIERS.map(() => '---').join('|')}|`)
  for (const kind of KINDS) {
    const cells = TIERS.map((_, tier) => {
      const mine = outcomes.filter((o) => o.tier === tier)
      const tp = mine.filter((o) => o.label === kind && o.hit).length
      const fp = mine.filter((o) => o.label !== kind && o.found.has(kind)).length + mine.filter((o) => o.label === kind).reduce((n, o) => n + o.misplaced, 0)
      return `${pct(tp, tp + fp)} (${fp} false)`
    })
    console.log(`| ${kind} | ${cells.join(' | ')} |`)
  }

  console.log('\nsteady identities (near misses included) with any behavioural finding')
  const steady = outcomes.filter((o) => o.label === 'steady')
  console.log(`| tier | ${TIERS.join(' | ')} | all |`)
  console.log(`|---|${TIERS.map(() => '---').join('|')}|---|`)
  const share = (list: Outcome[]) => `${((100 * list.filter((o) => o.found.size > 0).length) / Math.max(1, list.length)).toFixed(2)} % of ${list.length}`
  console.log(`| steady | ${TIERS.map((_, t) => share(steady.filter((o) => o.tier === t))).join(' | ')} | ${share(steady)} |`)
  for (const shape of ['steady', 'blip3', 'weekly_job', 'daily_cron', 'holiday_dip']) {
    const list = steady.filter((o) => o.detail === shape)
    const kinds = [...new Set(list.flatMap((o) => [...o.found]))].join(', ')
    console.log(`  ${shape}: ${share(list)}${kinds ? ` (${kinds})` : ''}`)
  }
  console.log(`  per seed: ${perSeed.map((s) => `seed ${s.seed} ${((100 * s.steadyFlagged) / s.steady).toFixed(2)} %`).join(', ')}`)

  console.log('\nmissed detectable cases, by shape:')
  const missed = new Map<string, number>()
  for (const o of outcomes.filter((o) => o.label !== 'steady' && o.detectable && !o.hit)) missed.set(`${o.label} ${o.detail} (${TIERS[o.tier]})`, (missed.get(`${o.label} ${o.detail} (${TIERS[o.tier]})`) ?? 0) + 1)
  for (const [shape, n] of [...missed].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${n} x ${shape}`)
  console.log('undetectable cases, by shape (why: the oracle with the true expected counts finds them less than 99 % of the time):')
  const undetectable = new Map<string, number>()
  for (const o of outcomes.filter((o) => o.label !== 'steady' && !o.detectable)) undetectable.set(`${o.label} ${o.detail} (${TIERS[o.tier]})`, (undetectable.get(`${o.label} ${o.detail} (${TIERS[o.tier]})`) ?? 0) + 1)
  for (const [shape, n] of [...undetectable].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${n} x ${shape}`)
  console.log(`true bursts the screen would have dropped: ${outcomes.filter((o) => o.screenDropped).length}`)
  console.log(`\n${((performance.now() - started) / 1000).toFixed(0)} s`)
}

main()
