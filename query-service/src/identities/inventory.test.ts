import { describe, expect, it } from 'vitest'
import { CsvError, formatCsv, parseCsv } from '../http/csv.js'
import { inventoryFromCsv } from './csv.js'
import { InventorySyntaxError, parseInventoryText } from './inventory-file.js'
import { InventoryValidationError, validateInventory } from './inventory.js'

function problemsOf(value: unknown, maxItems?: number): string {
  try {
    validateInventory(value, maxItems)
  } catch (error) {
    expect(error).toBeInstanceOf(InventoryValidationError)
    return (error as Error).message
  }
  throw new Error('expected the batch to be refused')
}

describe('inventory validation', () => {
  it('fills defaults for optional fields', () => {
    expect(validateInventory([{ id: 'agent-1', type: 'ai_agent' }])).toEqual([
      { id: 'agent-1', type: 'ai_agent', owner: '', business_unit: '', tier: '', approved_activities: [] },
    ])
  })

  it('accepts activity types and type:name-glob entries', () => {
    const [item] = validateInventory([{ id: 'a', type: 'bot', approved_activities: ['api_call', 'tool_invocation:search_*', 'custom_thing:a:b?'] }])
    expect(item!.approved_activities).toEqual(['api_call', 'tool_invocation:search_*', 'custom_thing:a:b?'])
  })

  it.each([
    [[{ id: 'a', type: 'robot' }], '[0].type: must be one of service_account, api_key, ai_agent, workload, integration, bot, other, got "robot"'],
    [[{ type: 'bot' }], '[0].id: must be an identity id (a non-empty string), got nothing'],
    [[{ id: '', type: 'bot' }], '[0].id: must not be empty'],
    [[{ id: 12, type: 'bot' }], '[0].id: must be an identity id (a non-empty string), got 12 (a number)'],
    [[{ id: 'a\u202eb', type: 'bot' }], '[0].id: must contain only visible characters'],
    [[{ id: ' a', type: 'bot' }], '[0].id: must not start or end with spaces'],
    [[{ id: 'a', type: 'bot', colour: 'red' }], '[0]: unknown key "colour"'],
    [[{ id: 'a', type: 'bot' }, { id: 'b', type: 'bot', approved_activities: ['Tool Invocation'] }], '[1].approved_activities[0]: must be an activity type'],
    [[{ id: 'a', type: 'bot', approved_activities: ['api_call:'] }], '[0].approved_activities[0]: name glob must not be empty'],
    [[{ id: 'a', type: 'bot', approved_activities: 'api_call' }], '[0].approved_activities: must be a list'],
    [[{ id: 'a', type: 'bot', approved_activities: Array.from({ length: 101 }, () => 'api_call') }], '[0].approved_activities: must list at most 100 entries'],
    [[{ id: 'a', type: 'bot', tier: 'gold; DROP' }], '[0].tier: must be letters, digits'],
    [[{ id: 'a', type: 'bot' }, { id: 'a', type: 'bot' }], '[1].id: "a" is already declared at [0]'],
    [['a'], '[0]: must be a mapping'],
    [{ id: 'a' }, '(top level): must be a list of identities, got a mapping'],
  ])('refuses %j naming the field', (value, message) => {
    expect(problemsOf(value)).toContain(message)
  })

  it('reports every problem of the batch, not only the first', () => {
    const message = problemsOf([{ id: 'a', type: 'x' }, { id: 'b', type: 'bot' }, { id: 'c', type: 'bot', owner: 5 }])
    expect(message).toMatch(/^\[0\]\.type: .*; \[2\]\.owner: must be a team or person/)
  })

  it('refuses a batch over the item limit before looking at the items', () => {
    expect(problemsOf([{}, {}, {}], 2)).toBe('(top level): must list at most 2 identities, got 3')
  })
})

describe('inventory documents', () => {
  it('read the same identities from JSON, YAML and CSV', () => {
    const json = '[{"id":"etl","type":"service_account","owner":"data","business_unit":"finance","tier":"gold","approved_activities":["workflow_execution","api_call:/v1/*"]}]'
    const yaml = '- id: etl\n  type: service_account\n  owner: data\n  business_unit: finance\n  tier: gold\n  approved_activities: [workflow_execution, "api_call:/v1/*"]\n'
    const csv = 'id,type,owner,business_unit,tier,approved_activities\r\netl,service_account,data,finance,gold,workflow_execution; api_call:/v1/*\r\n'
    const expected = validateInventory(JSON.parse(json))
    expect(validateInventory(parseInventoryText(json, 'json'))).toEqual(expected)
    expect(validateInventory(parseInventoryText(yaml, 'yaml'))).toEqual(expected)
    expect(validateInventory(parseInventoryText(csv, 'csv'))).toEqual(expected)
  })

  it('read YAML 1.2, so no and on stay strings, and refuse tags, duplicate keys and alias bombs', () => {
    expect(parseInventoryText('- id: no\n  type: bot\n  owner: on\n', 'yaml')).toEqual([{ id: 'no', type: 'bot', owner: 'on' }])
    expect(() => parseInventoryText('- id: !!js/function "x"\n  type: bot\n', 'yaml')).toThrow(InventorySyntaxError)
    expect(() => parseInventoryText('- id: a\n  id: b\n', 'yaml')).toThrow(/a key appears twice in one mapping \(line 2\)/)
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]'].join('\n')
    expect(() => parseInventoryText(bomb, 'yaml')).toThrow(InventorySyntaxError)
  })

  it('read CSV columns in any order, quoted fields, and leave empty cells to defaults', () => {
    expect(inventoryFromCsv('type,id,owner\nbot,"a,""b""",\n\nbot,c,team\n')).toEqual([
      { type: 'bot', id: 'a,"b"' },
      { type: 'bot', id: 'c', owner: 'team' },
    ])
  })

  it.each([
    ['id,type,colour\na,bot,red\n', /line 1: unknown column "colour"/],
    ['id,owner\na,x\n', /line 1: the header must name the type column/],
    ['id,type\na,bot,extra\n', /line 2: 3 fields, but the header names 2 columns/],
    ['id,type\n"a,bot\n', /line 2: a quoted field is not closed/],
    ['id,type\na"b,bot\n', /line 2: a quote inside an unquoted field/],
  ])('refuse a malformed CSV naming the line (%#)', (text, message) => {
    expect(() => inventoryFromCsv(text)).toThrow(CsvError)
    expect(() => inventoryFromCsv(text)).toThrow(message)
  })

  it('write CSV that reads back to the same cells and that spreadsheets do not run as formulas', () => {
    const text = formatCsv(['a', 'b'], [['x,y', 'say "hi"'], ['=SUM(A1)', -3], ['line\nbreak', null]])
    expect(text).toBe('a,b\n"x,y","say ""hi"""\n\'=SUM(A1),-3\n"line\nbreak",\n')
    expect(parseCsv(text).map((r) => r.fields)).toEqual([['a', 'b'], ['x,y', 'say "hi"'], ["'=SUM(A1)", '-3'], ['line\nbreak', '']])
  })
})
