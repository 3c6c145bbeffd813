import { describe, expect, it } from 'vitest'
import { promqlMetricNames } from '../../dashboards/promql.js'

describe('the metric names a PromQL expression reads', () => {
  it('are the series selectors, not functions, labels, matchers, durations or Grafana variables', () => {
    const expr = 'sum by (error_type) (rate(nhi_meter_otlp_spans_refused_total{job="nhi-meter",x=~"a|b"}[$__rate_interval])) / on() group_left sum(rate(foo_total[5m] offset 1m)) > bool 0.5'
    expect(promqlMetricNames(expr)).toEqual(['nhi_meter_otlp_spans_refused_total', 'foo_total'])
  })

  it('include each metric once, in the order they appear', () => {
    const expr = 'histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[5m]))) or http_server_request_duration_seconds_bucket or vector(0)'
    expect(promqlMetricNames(expr)).toEqual(['http_server_request_duration_seconds_bucket'])
  })
})
