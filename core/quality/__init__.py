"""Quality dashboards: read-only, server-computed aggregates for QC officers and administrators.

Each module answers one dashboard from ``DashboardFilters`` and returns ``Table`` objects (rows
for the page and the CSV export) and a Chart.js-ready series. See docs/dashboards.md.
"""
