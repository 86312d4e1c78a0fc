"""FleetMeter benchmarks: each measures one path against a bare baseline in the same run.

``python -m bench.poll_fleet`` polls a simulated fleet through the collector; see
docs/performance.md for what is measured and the latest results.
"""
